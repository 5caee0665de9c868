"""What the laws themselves can do on the live-forecast protocol's with-history setting: the
ceiling under any choice between them.

``bench/live_forecast.py`` measures the service (``law: auto``, its choice, its bands). This
script asks a narrower question: for each cut job fitted with the complete ``cosine_24000`` and
``constant_24000`` of its model (the same runs and cuts), what final-loss error does *each*
registered law give, and what would the median be if the better law were chosen every time (an
oracle no selection rule can beat)? And, as the laws' best case, how far off are the jobs' finals
when every complete run of the model, the jobs included, is fitted at once (in-sample)?

If the oracle's median misses the protocol's target, no choice between these laws meets it; a
closer forecast needs a different law form, not a better selection or prior. Fits run in-process
with :func:`fitting.fit.fit_law` (the service's defaults); truth and prediction as in the
protocol (mean of the last 5 logged losses; the predicted loss at the last logged step).

``python -m bench.forecast_ceiling [--sizes 25M,400M] [--json out.json]``; it reports and asserts
nothing (40 fits per size per law; about 15 minutes per size on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

import fitting  # noqa: F401  (float64)
from bench.live_forecast import CUTS, HISTORY, JOBS, MPL, TARGETS, TRUTH_POINTS, curve
from fitting.fit import Run, fit_law, predict_runs
from fitting.laws import LAWS
from fitting.schedules import learning_rates


def mpl_run(size: str, name: str, specs: dict, before: float | None = None) -> Run:
    """The MPL curve ``name`` with its whole declared schedule; only the points logged before
    ``before`` x its length when given (a cut job)."""
    lr = learning_rates(specs[name])
    steps, loss = curve(size, name)
    keep = steps < before * lr.size if before is not None else np.ones(steps.size, bool)
    return Run(lr, steps[keep], loss[keep], name)


def final_error(law, params, full: Run) -> float:
    predicted = predict_runs(law, params, [full])[0][-1]
    return float(predicted / np.mean(full.loss[-TRUTH_POINTS:]) - 1.0)


def ceiling(size: str, specs: dict, log) -> dict:
    history = [mpl_run(size, name, specs) for name in HISTORY]
    complete = {job: mpl_run(size, job, specs) for job in JOBS}
    cuts = []
    for job in JOBS:
        for cut in CUTS:
            row = {"job": job, "cut": cut}
            for name, law in LAWS.items():
                fitted = fit_law(law, [*history, mpl_run(size, job, specs, cut)])
                row[name] = final_error(law, fitted.params, complete[job])
            row["oracle"] = min(abs(row[name]) for name in LAWS)
            cuts.append(row)
            errors = "  ".join(f"{name} {row[name]:+.3%}" for name in LAWS)
            log(f"{size:>4} {job:<18} {cut:.0%}  {errors}")
    in_sample = {}
    for name, law in LAWS.items():
        fitted = fit_law(law, [*history, *complete.values()])
        in_sample[name] = {
            job: final_error(law, fitted.params, run) for job, run in complete.items()
        }
        log(
            f"{size:>4} {name} fitted to all {len(history) + len(JOBS)} complete runs, finals: "
            + "  ".join(f"{job} {error:+.3%}" for job, error in in_sample[name].items())
        )
    medians = {
        name: statistics.median(abs(row[name]) for row in cuts) for name in [*LAWS, "oracle"]
    }
    target = TARGETS["history"]["median_error"]
    log(
        f"{size} median |final error| with history: "
        + ", ".join(f"{name} {value:.3%}" for name, value in medians.items())
        + f" (target {target:.2%})"
    )
    return {"size": size, "cuts": cuts, "medians": medians, "in_sample": in_sample}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25M,400M")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    specs = json.loads((MPL / "schedules.json").read_text())

    def log(line: str) -> None:
        print(line, flush=True)

    results = [ceiling(size, specs, log) for size in args.sizes.split(",")]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
