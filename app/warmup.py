"""The JIT warm-up at start: compile the kernels typical requests use before the first one
comes, so that ``/healthz`` turns 200 when requests no longer compile."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app import schemas
from fitting.fit import COMPILATIONS, Run, fit_law, predict_losses
from fitting.intervals import estimate_uncertainty, predict_intervals
from fitting.laws import LAWS
from fitting.predict import curve_steps
from fitting.schedules import learning_rates
from fitting.select import cross_validate

logger = logging.getLogger("losscast")


def configure_jax_cache(directory: str) -> None:
    """JAX's persistent compilation cache in ``directory`` (``LOSSCAST_JAX_CACHE_DIR``; empty:
    off), shared by the server and its workers."""
    if not directory:
        return
    import jax

    if jax.config.jax_compilation_cache_dir:  # set already (by the environment, or an app)
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    # Our kernels compile in 0.5-15 s: cache all of them.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


# The shapes warmed (fitting.padding): a joint fit of three runs (padded to four) of up to 32,768
# steps with up to 256 logged points each (the three MPL fitting runs are of this size), and
# predictions at 300 points (the default grid, padded to 512) for schedules of up to 32,768 and
# up to 131,072 steps.
WARMUP_SCHEDULES = (
    {
        "type": "cosine",
        "peak_lr": 3e-4,
        "total_steps": 24000,
        "num_warmup_steps": 2160,
        "min_lr": 3e-5,
    },
    {"type": "constant", "peak_lr": 3e-4, "total_steps": 24000, "num_warmup_steps": 2160},
    {
        "type": "multistep",
        "peak_lr": 3e-4,
        "total_steps": 16000,
        "num_warmup_steps": 2160,
        "milestones": [8000],
        "values": [9e-5],
    },
)
WARMUP_PREDICTION_LENGTHS = (24000, 72000)


def synthetic_run(spec: Mapping[str, Any], num_points: int) -> Run:
    """A run whose loss falls as a power of the rate's running sum: enough to compile on."""
    lr = learning_rates(spec)
    steps = curve_steps(lr, num_points)
    area = np.cumsum(lr)[steps] / lr.max()
    return Run(lr, steps, 3.0 + 5.0 * area**-0.3, spec["type"])


def warm_up(law_names: Sequence[str] = ("lr_annealing",)) -> dict[str, int]:
    """Compile the kernels typical requests use for the laws named (``"all"``: every registered
    law): a fit of three runs with its cross-validation (fits of two, held-out predictions) and
    uncertainty, and one-curve predictions with their bands. Returns the compilation counts
    after. Unknown names are skipped with a warning."""
    began = time.perf_counter()
    before = sum(COMPILATIONS.values())
    runs = [synthetic_run(spec, 171) for spec in WARMUP_SCHEDULES]
    names = list(LAWS) if "all" in law_names else list(law_names)
    for name in names:
        if name not in LAWS:
            logger.warning("warm-up: no law %r registered (known: %s)", name, sorted(LAWS))
            continue
        law = LAWS[name]
        fit = fit_law(law, runs)
        uncertainty = estimate_uncertainty(law, fit, runs, cross_validate(law, runs))
        for length in WARMUP_PREDICTION_LENGTHS:
            lr = learning_rates({**WARMUP_SCHEDULES[0], "total_steps": length})
            steps = curve_steps(lr, schemas.DEFAULT_NUM_POINTS)
            predict_losses(law, fit.params, [lr], [steps], fit.warmup)
            predict_intervals(law, fit.params, uncertainty, [lr], [steps], fit.warmup)
    logger.info(
        "JIT warm-up of %s done in %.1f s: %d compilations (%s)",
        names,
        time.perf_counter() - began,
        sum(COMPILATIONS.values()) - before,
        dict(COMPILATIONS),
    )
    return dict(COMPILATIONS)
