"""Forecasts of running jobs, measured through the HTTP API (the live-forecast protocol).

For each model size of ``tests/data/mpl`` and each job (``cosine_72000``, ``wsd_20000_24000``,
``wsdld_20000_24000``, ``wsdcon_3``, ``constant_72000``) cut at 30%, 50%, 70% and 90% of its
schedule's length (points logged before the cut only; the whole declared schedule known), in two
settings:

- **alone**: the cut job is posted and fitted by itself;
- **with history**: the cut job is posted in the group of complete ``cosine_24000`` and
  ``constant_24000`` runs and fitted with ``with_group``;

``POST /v1/runs``, ``POST /v1/fits`` (``law: auto``) and ``GET /v1/runs/{id}/forecast``. Truth:
the mean of the job's last 5 logged losses; prediction: the forecast curve's last point; band:
its lower and upper there (90%). Reported per size and setting: median and worst |final error|,
the share of cuts whose band holds the truth, the median and largest relative half-width, and
the targets:

- with history: median |error| <= 0.15%, coverage >= 80%, median half-width <= 1.0%;
- alone: worst |error| <= 2.0%, coverage >= 80%;
- every band's half-width <= 10% of the loss.

The truth is measured where the job was last logged (its last 5 points, about 320 steps before
the schedule's end on the MPL curves, 2,100 for the 25M ``wsdcon_3``, whose log stops at step
14,144 of 16,000) and the prediction at the schedule's end, so on a job still cooling down a law
that is exactly right shows an error (about -0.1% to -0.3% on the cooldown jobs, from the curves'
own slope there). Each cut therefore also reports, not as a target, the same forecast read at the
truth's steps (the mean of the curve there): what the law got wrong, without that offset.

The same protocol, setting alone, on a run unlike the MPL ones (``tiny``: tinycpt's base run,
another model size, data and lab, logged from the first steps), checks that the method carries
over; its job is the run itself.

Runs in-process against the app (``--url`` for a running server instead); ``--without-prior``
measures the same without the laws' annealing prior (``fitting/priors.py``). Exit status 1 when
a target is missed. ``python -m bench.live_forecast [--sizes 25M,400M,tiny] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MPL = ROOT / "tests" / "data" / "mpl"
#: A run of another lab's kind and size, for generality: tinycpt's base run (a 0.8M-parameter
#: byte-level GPT, 1,400 steps of cosine, validation loss every 25 steps), alone only.
TINYCPT = ROOT / "tests" / "data" / "tinycpt"
TINY, TINY_JOB = "tiny", "base"
JOBS = ("cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "constant_72000")
HISTORY = ("cosine_24000", "constant_24000")
CUTS = (0.3, 0.5, 0.7, 0.9)
SETTINGS = ("alone", "history")
TRUTH_POINTS = 5
#: Points of the forecast curve asked for: dense enough (every 36 steps of a 72k-step schedule)
#: that reading it between its points, at the truth's steps, changes nothing that matters.
CURVE_POINTS = 2000
TARGETS = {
    "history": {"median_error": 0.0015, "coverage": 0.8, "median_half_width": 0.010},
    "alone": {"worst_error": 0.020, "coverage": 0.8},
}
MAX_HALF_WIDTH = 0.10


@functools.cache
def tiny_table() -> np.ndarray:
    """tinycpt's ``base.csv`` (read once)."""
    return np.genfromtxt(TINYCPT / "base.csv", delimiter=",", names=True)


def curve(size: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A job's logged steps and losses. ``tiny``: the validation loss of tinycpt's base run on
    its own data, logged after update ``s`` (1-based) and so at step ``s - 1`` here, the index of
    the last update it has seen."""
    if size == TINY:
        table = tiny_table()
        logged = ~np.isnan(table["val_a"])
        return table["step"][logged].astype(np.int64) - 1, table["val_a"][logged]
    table = np.loadtxt(MPL / size / f"{name}.csv", delimiter=",", skiprows=1)
    return table[:, 0].astype(np.int64), table[:, 2]


def learning_rate(size: str, name: str, specs: dict) -> dict:
    """The body's learning rate: the MPL schedule's spec, or the tiny run's logged rates."""
    if size == TINY:
        return {"lr_per_step": tiny_table()["lr"].tolist()}
    return {"schedule": specs[name]}


def schedule_length(rate: dict) -> int:
    return (
        len(rate["lr_per_step"]) if "lr_per_step" in rate else int(rate["schedule"]["total_steps"])
    )


def post_run(client, name, rate, steps, loss, group=None) -> str:
    body = {"name": name, **rate, "points": {"step": steps.tolist(), "loss": loss.tolist()}}
    if group:
        body["group"] = group
    response = client.post("/v1/runs", json=body)
    response.raise_for_status()
    return response.json()["id"]


def forecast_cut(client, size, job, cut, specs, group) -> dict:
    steps, loss = curve(size, job)
    rate = learning_rate(size, job, specs)
    keep = steps < cut * schedule_length(rate)
    run_id = post_run(client, f"{size}-{job}@{cut:.0%}", rate, steps[keep], loss[keep], group)
    began = time.perf_counter()
    fit = client.post(
        "/v1/fits", json={"run_ids": [run_id], "law": "auto", "with_group": group is not None}
    )
    fit.raise_for_status()
    fit_seconds = time.perf_counter() - began
    answer = client.get(
        f"/v1/runs/{run_id}/forecast",
        params={"fit_id": fit.json()["id"], "num_points": CURVE_POINTS},
    )
    answer.raise_for_status()
    out = answer.json()
    predicted = out["curve"]["loss"][-1]
    lower, upper = out["curve"]["lower"], out["curve"]["upper"]
    truth = float(np.mean(loss[-TRUTH_POINTS:]))
    # The same forecast read where the truth was logged (its mean over those steps), not at the
    # schedule's last step: what the law got wrong, without the protocol's offset.
    where_logged = float(
        np.mean(np.interp(steps[-TRUTH_POINTS:], out["curve"]["steps"], out["curve"]["loss"]))
    )
    low, high = (None, None) if lower is None else (lower[-1], upper[-1])
    return {
        "size": size,
        "job": job,
        "cut": cut,
        "law": out["law"],
        "identification": (out.get("identification") or {}).get("source"),
        "runs": len(out.get("fit_run_ids") or []),
        "truth": truth,
        "predicted": predicted,
        "error": predicted / truth - 1.0,
        "error_where_logged": where_logged / truth - 1.0,
        "lower": low,
        "upper": high,
        "holds": low is not None and low <= truth <= high,
        "half_width": None if low is None else (high - low) / 2 / predicted,
        "interval_note": out.get("interval_note"),
        "fit_seconds": fit_seconds,
    }


def summary(rows: list[dict]) -> dict:
    errors = [abs(r["error"]) for r in rows]
    where_logged = [abs(r["error_where_logged"]) for r in rows]
    widths = [r["half_width"] if r["half_width"] is not None else float("inf") for r in rows]
    return {
        "cuts": len(rows),
        "median_error": statistics.median(errors),
        "worst_error": max(errors),
        "median_error_where_logged": statistics.median(where_logged),
        "worst_error_where_logged": max(where_logged),
        "coverage": sum(r["holds"] for r in rows) / len(rows),
        "median_half_width": statistics.median(widths),
        "largest_half_width": max(widths),
    }


def verdicts(setting: str, figures: dict) -> list[tuple[str, bool]]:
    checks = []
    for name, limit in TARGETS[setting].items():
        ok = figures[name] >= limit if name == "coverage" else figures[name] <= limit
        checks.append((f"{name} {'>=' if name == 'coverage' else '<='} {limit:g}", ok))
    checks.append(
        (
            f"largest_half_width <= {MAX_HALF_WIDTH:g}",
            figures["largest_half_width"] <= MAX_HALF_WIDTH,
        )
    )
    return checks


def run_protocol(client, sizes, settings, jobs, cuts, log) -> list[dict]:
    specs = json.loads((MPL / "schedules.json").read_text())
    rows = []
    for size in sizes:
        for setting in settings:
            if size == TINY and setting != "alone":
                continue  # the tiny model has no other runs on its data
            for job in [TINY_JOB] if size == TINY else jobs:
                for cut in cuts:
                    group = None
                    if setting == "history":  # a group of its own: the cut job and the history
                        group = f"{size}-{job}-{cut}-{os.getpid()}-{time.time_ns()}"
                        for name in HISTORY:
                            post_run(
                                client,
                                f"{size}-{name}",
                                learning_rate(size, name, specs),
                                *curve(size, name),
                                group,
                            )
                    row = {"setting": setting, **forecast_cut(client, size, job, cut, specs, group)}
                    rows.append(row)
                    band = "no band" if row["half_width"] is None else f"±{row['half_width']:.2%}"
                    log(
                        f"{size:>4} {setting:<7} {job:<18} {cut:.0%}  {row['law']:<12} "
                        f"{row['identification'] or '-':<5} err {row['error']:+.3%} "
                        f"(where logged {row['error_where_logged']:+.3%})  {band:<9} "
                        f"{'holds' if row['holds'] else 'MISSES'}  ({row['fit_seconds']:.1f} s)"
                    )
    return rows


def report(rows: list[dict], log) -> bool:
    ok = True
    for size in sorted({r["size"] for r in rows}):
        for setting in SETTINGS:
            chosen = [r for r in rows if r["size"] == size and r["setting"] == setting]
            if not chosen:
                continue
            figures = summary(chosen)
            log(
                f"{size} {setting}: median |error| {figures['median_error']:.3%}, worst "
                f"{figures['worst_error']:.3%}, coverage {figures['coverage']:.0%}, median "
                f"half-width {figures['median_half_width']:.2%}, largest "
                f"{figures['largest_half_width']:.2%}"
            )
            log(
                f"    read where the truth was logged (not a target): median |error| "
                f"{figures['median_error_where_logged']:.3%}, worst "
                f"{figures['worst_error_where_logged']:.3%}"
            )
            for label, passed in verdicts(setting, figures):
                log(f"    {'ok  ' if passed else 'MISS'} {label}")
                ok &= passed
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=f"25M,400M,{TINY}")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--cuts", default=",".join(str(c) for c in CUTS))
    parser.add_argument("--url", help="a running service (default: the app in-process)")
    parser.add_argument("--json", type=Path, help="write every cut's figures here")
    parser.add_argument(
        "--without-prior",
        action="store_true",
        help="for comparison: the laws without their annealing prior (in-process only)",
    )
    args = parser.parse_args(argv)
    if args.without_prior:
        import dataclasses

        from fitting.laws import LAWS

        for name, law in list(LAWS.items()):
            LAWS[name] = dataclasses.replace(law, annealing_prior=None)
    sizes, settings = args.sizes.split(","), args.settings.split(",")
    jobs, cuts = args.jobs.split(","), [float(c) for c in args.cuts.split(",")]

    def log(line: str) -> None:
        print(line, flush=True)

    if args.url:
        with httpx.Client(base_url=args.url, timeout=600) as client:
            rows = run_protocol(client, sizes, settings, jobs, cuts, log)
    else:
        from fastapi.testclient import TestClient

        from app.main import create_app
        from app.settings import Settings

        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(
                Settings(
                    database_url=f"sqlite:///{tmp}/bench.db",
                    warmup=False,
                    jax_cache_dir=os.environ.get("LOSSCAST_JAX_CACHE_DIR", ""),
                    refit=False,
                    sync_fit_seconds=3600.0,  # the fit is timed on the request path
                )
            )
            with TestClient(app) as client:
                rows = run_protocol(client, sizes, settings, jobs, cuts, log)
    ok = report(rows, log)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
