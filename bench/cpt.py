"""The continual-pre-training law (:mod:`fitting.laws.cpt`) on the tinycpt study, leave one branch
out (issue 14's acceptance protocol).

For each branch of ``../shared/data/tinycpt`` (or ``tests/data/tinycpt``): fit ``cpt`` on the base
run (both domains) and the other branches (both domains), predict the held-out branch on both
domains, and report PredE per domain, the error of each final loss, whether the 90% band
(:mod:`fitting.intervals`, with the leave-one-run-out folds of the same fit) holds the finals,
and the ordering of the branches by predicted final new-domain loss against the measured one.
The baseline is what a user has today: ``lr_annealing`` and ``multi_power`` fitted on the other
branches' continuations alone (each a fresh run from step 0), predicting the held-out one.

Measured (2026-12-02, 2 cores, ``--bands``, the law of the logarithmic forgetting): ``cpt``
new-domain PredE 0.0064 (per fold 0.0041 / 0.0066 / 0.0087 / 0.0053 / 0.0074 for const_1.5e-3 /
replay25 / cos_3e-3 / cos_7.5e-4 / none), old-domain 0.0134 (0.0145 / 0.0196 / 0.0140 / 0.0078 /
0.0110), finals within -1.07% .. +0.38% (new) and -2.37% .. +1.03% (old), every final of the ten
inside its 90% band (half-widths 1.8% .. 5.2% of the loss, median 3.2%), the ordering of the
new-domain finals right; today's ``lr_annealing`` / ``multi_power`` on the continuations: new
0.0156 / 0.0160, old 0.096 / 0.096. The bands' cross-validation holds out one branch (its two
curves) at a time and never the base, as the service does (``app.services.continual.groups_of``).

Not a test: it asserts nothing, it reports. Run as ``python bench/cpt.py [--data DIR] [--json]``
(``--bands`` adds the 90% bands, a cross-validation per fold: 20 minutes on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

import fitting  # noqa: E402,F401  (float64)
from fitting.continual import continual_run  # noqa: E402
from fitting.fit import Run, fit_law, predict_runs  # noqa: E402
from fitting.intervals import estimate_uncertainty, predict_intervals  # noqa: E402
from fitting.laws import LAWS  # noqa: E402
from fitting.laws.cpt import CPT  # noqa: E402
from fitting.metrics import curve_metrics  # noqa: E402
from fitting.select import cross_validate  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "tinycpt"
BUNDLED = ROOT / "tests" / "data" / "tinycpt"
BASE = "base"
#: Replay share of each branch, from the study's README (the file names say it too).
REPLAY = {"cos_1.5e-3_replay25": 0.25}
DOMAIN_COLUMNS = {"old": "val_a", "new": "val_b"}


@dataclass(frozen=True)
class Curve:
    """One CSV of the study: per-update rates, and each domain's logged (step, loss)."""

    name: str
    lr: np.ndarray
    logged: dict[str, tuple[np.ndarray, np.ndarray]]


def load_curve(path: Path) -> Curve:
    """Read ``step,lr,train_loss,val_a,val_b`` (a branch's row 0 holds the checkpoint's losses)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    lr = np.array([float(r["lr"]) for r in rows if r["lr"]], dtype=np.float64)
    logged = {}
    for domain, column in DOMAIN_COLUMNS.items():
        kept = [r for r in rows if r[column]]
        logged[domain] = (
            np.array([int(r["step"]) for r in kept]),
            np.array([float(r[column]) for r in kept]),
        )
    return Curve(path.stem, lr, logged)


def load_study(directory: Path) -> tuple[Curve, dict[str, Curve]]:
    """The base run and the branches (by name) of a tinycpt directory."""
    curves = {p.stem: load_curve(p) for p in sorted(Path(directory).glob("*.csv"))}
    return curves.pop(BASE), curves


def cpt_runs(base: Curve, branch: Curve | None, skip_checkpoint: bool = True) -> list[Run]:
    """The ``cpt`` runs of the base (``branch=None``) or of a branch, one per domain. A branch's
    step 0 repeats the base's last logged losses, so it is left out by default (the base holds
    it)."""
    runs = []
    for domain in ("old", "new"):
        if branch is None:
            steps, loss = base.logged[domain]
            runs.append(
                continual_run(base.lr, (), steps, loss, domain=domain, name=f"{BASE}/{domain}")
            )
            continue
        steps, loss = branch.logged[domain]
        keep = steps > 0 if skip_checkpoint else np.ones(steps.size, bool)
        runs.append(
            continual_run(
                base.lr,
                branch.lr,
                steps[keep],
                loss[keep],
                domain=domain,
                replay=REPLAY.get(branch.name, 0.0),
                name=f"{branch.name}/{domain}",
            )
        )
    return runs


def fresh_run(branch: Curve, domain: str) -> Run:
    """A branch's continuation as a fresh run of today's laws (update ``s`` at index ``s - 1``;
    the checkpoint's step 0 has no update and is left out)."""
    steps, loss = branch.logged[domain]
    keep = steps > 0
    return Run(branch.lr, steps[keep] - 1, loss[keep], f"{branch.name}/{domain}")


def final_error(predicted: np.ndarray, loss: np.ndarray) -> float:
    return float((predicted[-1] - loss[-1]) / loss[-1])


def leave_one_branch_out(base: Curve, branches: dict[str, Curve], bands: bool) -> dict:
    """The protocol for ``cpt``: one fit per held-out branch (see module docstring)."""
    out = {}
    for held in branches:
        others = [name for name in branches if name != held]
        training = cpt_runs(base, None) + [
            run for n in others for run in cpt_runs(base, branches[n])
        ]
        # the service's folds (app.services.continual.groups_of): a branch's two curves together,
        # the base never held out
        curves = [run.name.split("/")[0] for run in training]  # "branch/domain"
        groups = [None if curve == BASE else curve for curve in curves]
        began = time.perf_counter()
        result = fit_law(CPT, training)
        seconds = time.perf_counter() - began
        targets = cpt_runs(base, branches[held])
        predicted = predict_runs(CPT, result.params, targets)
        record = {"converged": result.converged, "seconds": round(seconds, 1), "domains": {}}
        if bands:
            validation = cross_validate(CPT, training, groups)
            uncertainty = estimate_uncertainty(CPT, result, training, validation)
            intervals = predict_intervals(
                CPT,
                result.params,
                uncertainty,
                [r.lr for r in targets],
                [r.steps[-1:] for r in targets],
                result.warmup,
            )
        for j, (run, pred) in enumerate(zip(targets, predicted, strict=True)):
            domain = run.name.split("/")[1]
            entry = {
                "pred_e": curve_metrics(pred, run.loss)["pred_e"],
                "final": float(run.loss[-1]),
                "predicted_final": float(pred[-1]),
                "final_error": final_error(pred, run.loss),
            }
            if bands:
                low, high = float(intervals[j]["lower"][0]), float(intervals[j]["upper"][0])
                entry["band"] = [low, high]
                entry["in_band"] = bool(low <= run.loss[-1] <= high)
            record["domains"][domain] = entry
        record["params"] = result.params
        out[held] = record
        words = ", ".join(
            f"{d} PredE {e['pred_e']:.4f} final {e['final_error']:+.2%}"
            for d, e in record["domains"].items()
        )
        print(f"held out {held} ({seconds:.0f} s): {words}", file=sys.stderr, flush=True)
    return out


def baseline(branches: dict[str, Curve], laws: list[str]) -> dict:
    """Today's ``laws`` on the continuations alone, leave one branch out, per domain."""
    out = {}
    for law_name in laws:
        law = LAWS[law_name]
        per_branch = {}
        for held in branches:
            per_branch[held] = {}
            for domain in ("old", "new"):
                training = [fresh_run(b, domain) for n, b in branches.items() if n != held]
                target = fresh_run(branches[held], domain)
                result = fit_law(law, training)
                pred = predict_runs(law, result.params, [target])[0]
                per_branch[held][domain] = {
                    "pred_e": curve_metrics(pred, target.loss)["pred_e"],
                    "final_error": final_error(pred, target.loss),
                }
        out[law_name] = per_branch
    return out


def summary(records: dict) -> dict:
    """Mean PredE per domain, the largest |final error|, band coverage, and the ordering."""
    domains = ("old", "new")
    out = {
        f"pred_e_{d}": float(np.mean([r["domains"][d]["pred_e"] for r in records.values()]))
        for d in domains
    }
    out["worst_final_error"] = float(
        max(abs(r["domains"][d]["final_error"]) for r in records.values() for d in domains)
    )
    covered = [
        r["domains"][d]["in_band"]
        for r in records.values()
        for d in domains
        if "in_band" in r["domains"][d]
    ]
    if covered:
        out["band_coverage"] = float(np.mean(covered))
    if all("predicted_final" in r["domains"]["new"] for r in records.values()):
        names = list(records)
        measured = sorted(names, key=lambda n: records[n]["domains"]["new"]["final"])
        predicted = sorted(names, key=lambda n: records[n]["domains"]["new"]["predicted_final"])
        out["ordering_measured"] = measured
        out["ordering_predicted"] = predicted
        out["ordering_matches"] = measured == predicted
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else BUNDLED)
    parser.add_argument(
        "--bands", action="store_true", help="also the 90%% bands (a cross-validation per fold)"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--only-baseline", action="store_true")
    parser.add_argument(
        "--laws", default="lr_annealing,multi_power", help="the baseline's laws, comma-separated"
    )
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")
    args = parser.parse_args(argv)
    base, branches = load_study(args.data)
    records = {} if args.only_baseline else leave_one_branch_out(base, branches, args.bands)
    report = {"cpt": records, "cpt_summary": summary(records) if records else {}}
    if not args.no_baseline:
        report["baseline"] = baseline(branches, args.laws.split(","))
        report["baseline_summary"] = {
            law: summary({n: {"domains": d} for n, d in per.items()})
            for law, per in report["baseline"].items()
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{'held-out branch':24} {'dom':4} {'PredE':>7} {'final':>7} {'pred':>7} {'err':>7} band")
    for held, record in records.items():
        for domain, e in record["domains"].items():
            band = ""
            if "band" in e:
                band = f"[{e['band'][0]:.4f}, {e['band'][1]:.4f}] {'in' if e['in_band'] else 'OUT'}"
            print(
                f"{held:24} {domain:4} {e['pred_e']:7.4f} {e['final']:7.4f} "
                f"{e['predicted_final']:7.4f} {e['final_error']:+7.2%} {band}"
            )
    print(json.dumps(report["cpt_summary"], indent=1))
    if "baseline" in report:
        for law, per in report["baseline"].items():
            for held, domains in per.items():
                row = "  ".join(
                    f"{d} PredE {e['pred_e']:.4f} final {e['final_error']:+.2%}"
                    for d, e in domains.items()
                )
                print(f"{law:13} {held:24} {row}")
        print(json.dumps(report["baseline_summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
