"""``make bench``: losscast's numerical core against a plain numpy/scipy reference.

Times, as medians of repeats measured in the same process and interleaved with the reference
(:mod:`bench.reference`), so that the load of a shared machine hits both alike:

1. the fit of the held-out split's fitting runs (25M ``cosine_24000``, ``constant_24000``,
   ``wsdcon_9``): warm, and the one-off cost of the first fit in a fresh process (imports and
   compilation); and the same with the 72k-step runs;
2. the fit of one dense, noisy, per-step curve (~34k points) and of 1/2 and 1/4 of its points;
3. the prediction of 1,000 schedules x 24,000 steps at 300 steps each, and at every step;
4. the multi-power law (against :mod:`bench.reference_multi_power`): the fit of the same split
   (warm, and the first call in this process), and the prediction of 100 of those schedules at
   300 steps each.

Wall-clock medians are what a user waits for; CPU-time medians (all threads of this process)
are less disturbed by other work on the machine. Not a test: it asserts nothing, it reports.
Run as ``python bench/core.py`` (``--help`` for the numbers of repeats; about 5 minutes on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import fitting  # noqa: E402,F401  (switches on float64 before any array is made)
from bench import reference, reference_multi_power  # noqa: E402
from fitting import fit as fitting_fit  # noqa: E402
from fitting.fit import Run, fit_law, predict_losses  # noqa: E402
from fitting.laws import LAWS  # noqa: E402
from fitting.schedules import learning_rates  # noqa: E402

DATA = ROOT / "tests" / "data" / "mpl"
SPLIT = ("cosine_24000", "constant_24000", "wsdcon_9")
SPLIT_72K = ("cosine_72000", "constant_72000", "wsdcon_9")
LAW = LAWS["lr_annealing"]
PREDICT_SCHEDULES, PREDICT_LENGTH, PREDICT_POINTS = 1000, 24_000, 300
MPL = LAWS["multi_power"]
MPL_PREDICT_SCHEDULES = 100


# ---------------------------------------------------------------------------------------------
# Measuring.


def measure(fn, cpu: bool = True) -> tuple[float, float, object]:
    """Wall and CPU seconds of one call (results are made concrete before the clock stops)."""
    wall, clock = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - wall, time.process_time() - clock, out


def interleaved(candidates: dict, repeats: dict[str, int]) -> dict[str, dict]:
    """Run each candidate ``repeats[name]`` times, round-robin; medians of wall and CPU time."""
    walls = {name: [] for name in candidates}
    cpus = {name: [] for name in candidates}
    last = {}
    for round_ in range(max(repeats.values())):
        for name, fn in candidates.items():
            if round_ < repeats[name]:
                wall, cpu, last[name] = measure(fn)
                walls[name].append(wall)
                cpus[name].append(cpu)
    return {
        name: {
            "wall": statistics.median(walls[name]),
            "cpu": statistics.median(cpus[name]),
            "n": len(walls[name]),
            "out": last[name],
        }
        for name in candidates
    }


# ---------------------------------------------------------------------------------------------
# Printing.

TARGETS: list[tuple[str, bool, str]] = []  # (what, met, the measured figure)


def section(title: str) -> None:
    print(f"\n{title}\n{'-' * len(title)}", flush=True)


def seconds(value: float) -> str:
    return f"{value * 1e3:8.1f} ms" if value < 10 else f"{value:8.2f} s "


def row(label: str, ours: dict | None, ref: dict | None = None, note: str = "") -> None:
    """One line: losscast wall (cpu) [n], reference wall (cpu) [n], speed-up (wall, cpu)."""

    def cell(m):
        if not m:
            return ""
        cpu = f" ({seconds(m['cpu']).strip()} cpu)" if m.get("cpu") is not None else ""
        return f"{seconds(m['wall'])}{cpu} [{m['n']}]"

    ratio = ""
    if ours and ref:
        ratio = f"{ref['wall'] / ours['wall']:5.1f}x ({ref['cpu'] / ours['cpu']:.1f}x cpu)"
    print(f"  {label:38s} {cell(ours):34s} {cell(ref):34s} {ratio:18s} {note}".rstrip(), flush=True)


def header() -> None:
    print(
        f"  {'':38s} {'losscast: wall (cpu) [repeats]':34s} {'reference: wall (cpu) [repeats]':34s}"
        f" {'speed-up':18s}",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# Data.


def load_run(size: str, name: str) -> Run:
    specs = json.loads((DATA / "schedules.json").read_text())
    table = np.loadtxt(DATA / size / f"{name}.csv", delimiter=",", skiprows=1)
    return Run(learning_rates(specs[name]), table[:, 0].astype(np.int64), table[:, 2], name)


def dense_curve(params: dict[str, float], seed: int = 0) -> Run:
    """A cosine run of 36k steps logged at every step after warmup (33,840 points), losses from
    the law with ``params`` times log-normal per-step noise (sd 1%, like a small model's
    batch-to-batch noise) and rare upward spikes (0.1% of steps, +5%)."""
    lr = learning_rates(
        {
            "type": "cosine",
            "peak_lr": 3e-4,
            "total_steps": 36_000,
            "num_warmup_steps": 2160,
            "min_lr": 3e-5,
        }
    )
    steps = np.arange(2160, lr.size)
    clean = reference.reference_predict(params, lr, steps, 0)
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, 0.01, steps.size)) * (1 + 0.05 * (rng.random(steps.size) < 1e-3))
    return Run(lr, steps, clean * noise, "dense_cosine_36000")


def prediction_schedules(seed: int = 0) -> np.ndarray:
    """``(1000, 24000)`` rates: half cosine (peak 1e-4..1e-3, floor 0..20% of peak), half WSD
    (cooldown 5..30% of the run, linear / cosine / 1-sqrt / exponential), 2k warmup steps."""
    rng = np.random.default_rng(seed)
    shapes = ("linear", "cosine", "1-sqrt", "exponential")
    rows = []
    for j in range(PREDICT_SCHEDULES):
        common = {
            "peak_lr": float(rng.uniform(1e-4, 1e-3)),
            "total_steps": PREDICT_LENGTH,
            "num_warmup_steps": 2000,
        }
        if j % 2:
            spec = {"type": "cosine", **common, "min_lr_ratio": float(rng.uniform(0.0, 0.2))}
        else:
            spec = {
                "type": "wsd",
                **common,
                "decay_fraction": float(rng.uniform(0.05, 0.3)),
                "decay_type": shapes[(j // 2) % 4],
                "min_lr_ratio": 0.1,
            }
        rows.append(learning_rates(spec))
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------
# Sections.

FIRST_FIT = """
import json, sys, time
began = time.perf_counter()
sys.path.insert(0, {root!r})
from bench.core import load_run, LAW, SPLIT
from fitting.fit import fit_law
runs = [load_run("25M", name) for name in SPLIT]
imported = time.perf_counter()
fit_law(LAW, runs)
first = time.perf_counter()
print(json.dumps({{"imports": imported - began, "first_fit": first - imported}}))
"""


def first_fit_in_fresh_process() -> dict[str, float]:
    code = FIRST_FIT.format(root=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_split_fit(args) -> dict[str, float]:
    section("1. Fit of the split (3 runs, shared parameters, warmup included)")
    header()
    params = {}
    for label, names in (("16k-24k steps", SPLIT), ("16k-72k steps", SPLIT_72K)):
        runs = [load_run("25M", name) for name in names]
        points = sum(r.steps.size for r in runs)
        first_wall, first_cpu, _ = measure(lambda runs=runs: fit_law(LAW, runs))
        candidates = {"ours": lambda runs=runs: fit_law(LAW, runs)}
        repeats = {"ours": args.repeats}
        reference_repeats = args.reference_repeats if names == SPLIT else args.reference_72k
        if reference_repeats:
            candidates["ref"] = lambda runs=runs: reference.reference_fit(runs)
            repeats["ref"] = reference_repeats
        result = interleaved(candidates, repeats)
        ours, ref = result["ours"], result.get("ref")
        fitted = ours["out"]
        note = f"objective {fitted.objective:.9f}"
        if ref:
            note += f" vs reference {ref['out'][1]:.9f}"
        row(f"warm, {label}, {points} points", ours, ref, note)
        if ref:
            TARGETS.append(
                (
                    f"fit, {label}: >= 10x the reference (warm, wall)",
                    ref["wall"] / ours["wall"] >= 10,
                    f"{ref['wall'] / ours['wall']:.1f}x",
                )
            )
            TARGETS.append(
                (
                    f"fit, {label}: objective no worse than the reference",
                    fitted.objective <= ref["out"][1] * (1 + 1e-9),
                    f"{fitted.objective:.10f} vs {ref['out'][1]:.10f}",
                )
            )
        row(
            "  first call in this process",
            {"wall": first_wall, "cpu": first_cpu, "n": 1},
            note=f"compilation ~ {first_wall - ours['wall']:.1f} s (new shape buckets)",
        )
        if label == "16k-24k steps":
            params = fitted.params
            fresh = first_fit_in_fresh_process()
            row(
                "  first call in a fresh process",
                {"wall": fresh["first_fit"], "cpu": None, "n": 1},
                note=f"compilation ~ {fresh['first_fit'] - ours['wall']:.1f} s, after "
                f"{fresh['imports']:.1f} s of imports",
            )
    grid = np.prod([len(v) for v in reference.reference_grid(runs).values()])
    print(
        f"  (reference: {grid}-start grid over all five parameters, each refined by L-BFGS-B "
        "with finite-difference gradients; losscast: vectorised grid, 4 refined starts, exact "
        "JAX gradients)"
    )
    return params


def bench_dense_fit(args, params: dict[str, float]) -> None:
    section("2. Fit of one dense noisy per-step curve (cosine, 36k steps)")
    header()
    full = dense_curve(params)
    timings = []
    for every in (4, 2, 1):
        run = Run(full.lr, full.steps[::every], full.loss[::every], full.name)
        first_wall, first_cpu, _ = measure(lambda run=run: fit_law(LAW, [run]))
        result = interleaved({"ours": lambda run=run: fit_law(LAW, [run])}, {"ours": args.repeats})
        fitted = result["ours"]["out"]
        per_evaluation = result["ours"]["wall"] / fitted.evaluations
        # CPU time for the growth: less disturbed than wall time by other work on the machine.
        cpu = result["ours"]["cpu"]
        timings.append((run.steps.size, cpu, cpu / fitted.evaluations))
        row(
            f"{run.steps.size} points (every {every} step{'s' if every > 1 else ''})",
            result["ours"],
            note=f"{fitted.evaluations} evaluations, {per_evaluation * 1e3:.2f} ms each; "
            f"first call {first_wall:.1f} s; converged {fitted.converged}",
        )
    (n0, t0, e0), (n1, t1, e1) = timings[0], timings[-1]
    print(
        f"  {n1 / n0:.1f}x the points: {t1 / t0:.2f}x the fit's CPU time, {e1 / e0:.2f}x the CPU "
        "time per evaluation (the schedule-length part of each evaluation is fixed)"
    )
    TARGETS.append(
        (
            "dense fit: time per evaluation grows at most linearly with the points",
            e1 / e0 <= 1.25 * n1 / n0,
            f"{n1 / n0:.1f}x points -> {e1 / e0:.2f}x CPU per evaluation, {t1 / t0:.2f}x per fit",
        )
    )


def bench_prediction(args, params: dict[str, float]) -> None:
    section(
        f"3. Prediction: {PREDICT_SCHEDULES} schedules x {PREDICT_LENGTH} steps "
        "(schedules built once, not timed)"
    )
    header()
    lr = prediction_schedules()
    steps = np.linspace(0, PREDICT_LENGTH - 1, PREDICT_POINTS).astype(np.int64)
    schedules = list(lr)
    candidates = {
        "ref": lambda: reference.reference_predict(params, lr, steps, 0),
        "shipped": lambda: predict_losses(LAW, params, schedules, [steps] * len(schedules)),
    }
    first = {name: measure(fn)[0] for name, fn in candidates.items() if name != "ref"}
    result = interleaved(candidates, {name: args.repeats for name in candidates})
    want = result["ref"]["out"]
    labels = {
        "shipped": (f"at {PREDICT_POINTS} steps: predict_losses", "predict_losses"),
    }
    for name, (label, short) in labels.items():
        out = result[name]["out"]
        got = np.stack(out) if isinstance(out, list) else np.asarray(out)
        error = float(np.max(np.abs(got - want) / want))
        row(
            label,
            result[name],
            result["ref"],
            f"max rel. diff {error:.1e}; first call {first[name]:.2f} s",
        )
        speed_up = result["ref"]["wall"] / result[name]["wall"]
        TARGETS.append(
            (
                f"predict {PREDICT_SCHEDULES} x {PREDICT_LENGTH} at {PREDICT_POINTS} steps, "
                f"{short}: >= 5x the reference",
                speed_up >= 5,
                f"{speed_up:.1f}x ({result['ref']['cpu'] / result[name]['cpu']:.1f}x cpu)",
            )
        )
        TARGETS.append(
            (
                f"predict {PREDICT_SCHEDULES} x {PREDICT_LENGTH} at {PREDICT_POINTS} steps, "
                f"{short}: under 0.5 s",
                result[name]["wall"] < 0.5,
                f"{result[name]['wall']:.3f} s",
            )
        )
    del result

    every_step = [np.arange(PREDICT_LENGTH)] * len(schedules)
    full = lambda: predict_losses(LAW, params, schedules, every_step)  # noqa: E731
    first_wall, _, _ = measure(full)
    result = interleaved(
        {"ref": lambda: reference.reference_predict(params, lr, None, 0), "ours": full},
        {"ref": args.full_repeats, "ours": args.full_repeats},
    )
    error = float(
        np.max(
            np.abs(np.stack(result["ours"]["out"]) - result["ref"]["out"]) / result["ref"]["out"]
        )
    )
    row(
        f"at every step ({PREDICT_LENGTH}): predict_losses",
        result["ours"],
        result["ref"],
        f"max rel. diff {error:.1e}; first call {first_wall:.2f} s",
    )


def bench_multi_power(args) -> None:
    section("4. Multi-power law: fit of the split, and prediction")
    header()
    runs = [load_run("25M", name) for name in SPLIT]
    points = sum(r.steps.size for r in runs)
    first_wall, first_cpu, _ = measure(lambda: fit_law(MPL, runs))
    candidates = {"ours": lambda: fit_law(MPL, runs)}
    repeats = {"ours": args.repeats}
    if args.mpl_reference_repeats:
        candidates["ref"] = lambda: reference_multi_power.reference_fit(runs)
        repeats["ref"] = args.mpl_reference_repeats
    result = interleaved(candidates, repeats)
    ours, ref = result["ours"], result.get("ref")
    fitted = ours["out"]
    # Our objective is computed with our drop sum, within ~1e-6 of the exact one; to compare the
    # two optima on one yardstick, ours is also evaluated by the reference's exact double sum.
    exact = reference_multi_power.reference_objective(fitted.params, runs)
    note = f"objective {fitted.objective:.9f} (exact double sum: {exact:.9f})"
    if ref:
        note += f" vs reference {ref['out'][1]:.9f}"
    row(f"fit, warm, 16k-24k steps, {points} points", ours, ref, note)
    row(
        "  first call in this process",
        {"wall": first_wall, "cpu": first_cpu, "n": 1},
        note=f"compilation ~ {first_wall - ours['wall']:.1f} s",
    )
    print(
        "  (reference: the record's 24-start grid over alpha, C, beta, gamma with L0, A, B by "
        "least squares, the best start refined by L-BFGS-B with finite-difference gradients, the "
        "drop sum by the direct double sum; the paper's torch pipeline: ~37 s per fit)"
    )
    TARGETS.append(
        ("multi-power fit: under 2 s (warm, wall)", ours["wall"] < 2, f"{ours['wall']:.2f} s")
    )
    if ref:
        TARGETS.append(
            (
                "multi-power fit: >= 10x the reference (warm, wall)",
                ref["wall"] / ours["wall"] >= 10,
                f"{ref['wall'] / ours['wall']:.1f}x",
            )
        )
        TARGETS.append(
            (
                "multi-power fit: objective (exact double sum) no worse than the reference",
                exact <= ref["out"][1] * (1 + 1e-6),
                f"{exact:.10f} vs {ref['out'][1]:.10f}",
            )
        )
    del result

    lr = prediction_schedules()[:MPL_PREDICT_SCHEDULES]
    steps = np.linspace(0, PREDICT_LENGTH - 1, PREDICT_POINTS).astype(np.int64)
    schedules = list(lr)
    params = fitted.params
    candidates = {
        "ref": lambda: reference_multi_power.reference_predict(params, lr, steps, 0),
        "ours": lambda: predict_losses(MPL, params, schedules, [steps] * len(schedules)),
    }
    first_wall, _, _ = measure(candidates["ours"])
    result = interleaved(candidates, {"ref": args.mpl_predict_repeats, "ours": args.repeats})
    got, want = np.stack(result["ours"]["out"]), result["ref"]["out"]
    error = float(np.max(np.abs(got - want) / want))
    row(
        f"predict {MPL_PREDICT_SCHEDULES} x {PREDICT_LENGTH} at {PREDICT_POINTS} steps",
        result["ours"],
        result["ref"],
        f"max rel. diff {error:.1e}; first call {first_wall:.2f} s",
    )
    speed_up = result["ref"]["wall"] / result["ours"]["wall"]
    TARGETS.append(
        (
            f"multi-power predict {MPL_PREDICT_SCHEDULES} x {PREDICT_LENGTH} at {PREDICT_POINTS} "
            "steps: >= 10x the reference",
            speed_up >= 10,
            f"{speed_up:.1f}x ({result['ref']['cpu'] / result['ours']['cpu']:.1f}x cpu)",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of losscast")
    parser.add_argument(
        "--reference-repeats", type=int, default=3, help="timed reference fits (slow)"
    )
    parser.add_argument("--full-repeats", type=int, default=3, help="timed every-step predictions")
    parser.add_argument(
        "--reference-72k", type=int, default=1, help="timed reference fits of the 72k runs"
    )
    parser.add_argument(
        "--mpl-reference-repeats",
        type=int,
        default=1,
        help="timed reference fits of the multi-power law (~30 s each; 0 skips them)",
    )
    parser.add_argument(
        "--mpl-predict-repeats",
        type=int,
        default=3,
        help="timed reference predictions of the multi-power law (~3 s each)",
    )
    args = parser.parse_args()

    began = time.perf_counter()
    print("losscast core benchmark")
    print(
        f"  JAX {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}; "
        f"numpy {np.__version__}; {os.cpu_count()} CPUs; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    params = bench_split_fit(args)
    bench_dense_fit(args, params)
    bench_prediction(args, params)
    bench_multi_power(args)
    section("Compilations in this process (fitting.fit.COMPILATIONS)")
    print(f"  {dict(fitting_fit.COMPILATIONS)}")
    section("Targets (issues 2 and 4), as measured in this run")
    for label, met, figure in TARGETS:
        print(f"  {'met    ' if met else 'NOT MET'}  {label}: {figure}")
    print(
        f"\n  total {time.perf_counter() - began:.0f} s; load average now "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
