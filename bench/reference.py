"""A plain numpy/scipy implementation of the LR-annealing law: the yardstick for losscast's core.

Written independently of :mod:`fitting.areas` and :mod:`fitting.fit`, in the most direct way a
numpy user would write it, so that benchmarks (``make bench``) and tests can check the JAX core
against it, for speed and for the quality of the optimum. It shares only the *problem* with the
core, not its numerics:

* the index convention: the loss logged at step ``s`` has seen ``lr[0..s]``;
* the law ``L(s) = L0 + A * S1(s)**(-alpha) - C * S2(s)`` with ``S1 = cumsum(lr)``, the momentum
  ``m_i = decay * m_{i-1} + (lr[i-1] - lr[i])`` (drops at or before ``ramp_end`` ignored,
  ``m_{-1} = 0``) computed by ``scipy.signal.lfilter`` over every step, and ``S2 = cumsum(m)``;
* the objective: Huber (``delta = 1e-3``) on ``log(loss) - log(prediction)``, each run's mean,
  summed over runs, divided by ``delta**2``;
* the parameter box: the law record's natural bounds narrowed by the bounds its data imposes
  (``LR_ANNEALING.data_bounds``), so both fitters solve the same problem.

The fit is a plain multi-start: a small grid over all five parameters, every start refined by
``scipy.optimize.minimize(method="L-BFGS-B")`` with finite-difference gradients (in log
coordinates for the scale parameters and ``log(1 - decay)`` for the decay, the natural choice
for parameters spanning decades), the best refinement kept. What does not depend on the parameters
(``S1`` at the logged steps, the drops) is computed once per run, as any numpy user would; each
evaluation filters the drops and sums the momentum over every step up to the last logged one.

Importing this module has no side effects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.optimize
import scipy.signal

from fitting.laws.lr_annealing import LR_ANNEALING

NAMES = ("L0", "A", "alpha", "C", "decay")
HUBER_DELTA = 1e-3
PEAK_RTOL = 1e-12


def ramp_end(lr: np.ndarray, warmup: str = "include") -> int:
    """0 when the warmup ramp counts as logged ("include"), else the first index of the peak."""
    if warmup == "include":
        return 0
    if warmup != "exclude":
        raise ValueError(f"warmup must be 'include' or 'exclude', got {warmup!r}")
    lr = np.asarray(lr, dtype=np.float64)
    peak = lr.max()
    return int(np.argmax(lr >= peak - PEAK_RTOL * abs(peak)))


def forward_area(lr: np.ndarray) -> np.ndarray:
    """``S1`` at every step: ``cumsum(lr)`` along the last axis."""
    return np.cumsum(lr, axis=-1)


def drops(lr: np.ndarray, ramp_end: np.ndarray | int = 0) -> np.ndarray:
    """``d_i = lr[i-1] - lr[i]`` for ``i > ramp_end``, else 0, along the last axis."""
    lr = np.asarray(lr, dtype=np.float64)
    d = np.zeros_like(lr)
    np.subtract(lr[..., :-1], lr[..., 1:], out=d[..., 1:])
    ramp_end = np.asarray(ramp_end)
    if ramp_end.ndim == 0:
        d[..., : int(ramp_end) + 1] = 0.0
    else:
        d *= np.arange(lr.shape[-1]) > ramp_end[..., None]
    return d


def annealing_momentum(lr: np.ndarray, decay: float, ramp_end: np.ndarray | int = 0) -> np.ndarray:
    """``m`` at every step, ``m_i = decay * m_{i-1} + d_i``, by ``scipy.signal.lfilter``."""
    return scipy.signal.lfilter([1.0], [1.0, -decay], drops(lr, ramp_end), axis=-1)


def annealing_area(lr: np.ndarray, decay: float, ramp_end: np.ndarray | int = 0) -> np.ndarray:
    """``S2`` at every step: ``cumsum(m)`` along the last axis."""
    return np.cumsum(annealing_momentum(lr, decay, ramp_end), axis=-1)


def reference_predict(
    params: Mapping[str, float],
    lr_matrix: np.ndarray,
    steps: np.ndarray | None,
    ramp_end: np.ndarray | int = 0,
) -> np.ndarray:
    """The law's loss at ``steps``, from both areas over every step.

    Args:
      params: ``L0, A, alpha, C, decay`` by name.
      lr_matrix: per-step rates, ``(T,)`` or ``(R, T)``.
      steps: integer steps, ``(n,)`` (the same for every row) or ``(R, n)``; ``None`` for every
        step.
      ramp_end: per row (or one for all): drops at or before it are ignored.

    Returns:
      ``(..., n)`` predicted losses (``(..., T)`` when ``steps`` is None).
    """
    lr = np.asarray(lr_matrix, dtype=np.float64)
    s1 = forward_area(lr)
    s2 = annealing_area(lr, params["decay"], ramp_end)
    if steps is not None:
        steps = np.asarray(steps)
        s1 = np.take_along_axis(s1, np.broadcast_to(steps, (*lr.shape[:-1], steps.shape[-1])), -1)
        s2 = np.take_along_axis(s2, np.broadcast_to(steps, (*lr.shape[:-1], steps.shape[-1])), -1)
    return params["L0"] + params["A"] * np.maximum(s1, 1e-30) ** -params["alpha"] - params["C"] * s2


def _huber_mean(loss: np.ndarray, predicted: np.ndarray, huber_delta: float) -> float:
    """Mean Huber loss of the log residuals of one run."""
    residual = np.log(loss) - np.log(np.maximum(predicted, 1e-12))
    size = np.abs(residual)
    huber = np.where(
        size <= huber_delta, 0.5 * residual**2, huber_delta * (size - 0.5 * huber_delta)
    )
    return float(huber.mean())


def reference_objective(
    params: Mapping[str, float],
    runs: Sequence,
    warmup: str = "include",
    huber_delta: float = HUBER_DELTA,
    predict=reference_predict,
) -> float:
    """Huber on log residuals, each run's mean, summed over runs, over ``huber_delta**2``.

    ``runs`` are objects with ``lr``, ``steps`` and ``loss`` arrays (e.g. ``fitting.fit.Run``);
    ``predict(params, lr, steps, ramp_end)`` is the law's (default: this module's).
    """
    total = sum(
        _huber_mean(
            run.loss,
            predict(params, run.lr, run.steps, ramp_end(run.lr, warmup)),
            huber_delta,
        )
        for run in runs
    )
    return total / huber_delta**2


# The optimiser's coordinates: log for scale parameters, log(1 - decay) for the decay.
_TO_FIT = {
    "L0": lambda x: x,
    "A": np.log,
    "alpha": lambda x: x,
    "C": np.log,
    "decay": lambda x: np.log1p(-x),
}
_FROM_FIT = {
    "L0": lambda u: u,
    "A": np.exp,
    "alpha": lambda u: u,
    "C": np.exp,
    "decay": lambda u: -np.expm1(u),
}


def reference_bounds(runs: Sequence) -> dict[str, tuple[float, float]]:
    """The law record's natural bounds, narrowed by the bounds its data imposes."""
    box = {p.name: (p.lower, p.upper) for p in LR_ANNEALING.parameters}
    box.update(LR_ANNEALING.data_bounds([r.lr for r in runs], [r.steps for r in runs]))
    return box


def reference_grid(runs: Sequence) -> dict[str, tuple[float, ...]]:
    """Two starting values per parameter (32 starts); ``L0`` relative to the lowest logged loss.

    On the MPL curves (25M and 400M, warmup included or excluded) every start of a finer grid
    (72 starts) but a few reaches the same optimum, so two values each are enough here.
    """
    lowest = min(float(np.min(r.loss)) for r in runs)
    return {
        "L0": (0.6 * lowest, 0.9 * lowest),
        "A": (0.1, 1.0),
        "alpha": (0.3, 0.7),
        "C": (0.1, 3.0),
        "decay": (0.99, 0.999),
    }


def reference_fit(
    runs: Sequence,
    warmup: str = "include",
    *,
    huber_delta: float = HUBER_DELTA,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> tuple[dict[str, float], float]:
    """Multi-start L-BFGS-B fit (finite-difference gradients) of the law to ``runs``.

    Args:
      runs: objects with ``lr``, ``steps`` and ``loss`` (e.g. ``fitting.fit.Run``); the
        parameters are shared by all runs.
      warmup: "include" (the ramp's changes count in ``S2``) or "exclude".
      huber_delta: the Huber threshold on log residuals.
      grid: starting values per parameter (default :func:`reference_grid`); every point of their
        product is refined.

    Returns:
      ``(params, objective)`` of the best refinement.
    """
    box = reference_bounds(runs)
    grid = dict(reference_grid(runs) if grid is None else grid)
    fit_box = []
    for name in NAMES:
        low, high = sorted(_TO_FIT[name](np.array(box[name], dtype=np.float64)))
        fit_box.append((float(low), float(high)))
    # What does not depend on the parameters is computed once per run: S1 at the logged steps
    # and the drops; each evaluation then filters the drops and sums the momentum.
    prepared = []
    for run in runs:
        last = int(run.steps[-1]) + 1
        prepared.append(
            (
                np.asarray(run.loss, dtype=np.float64),
                np.asarray(run.steps),
                forward_area(run.lr[:last])[run.steps],
                drops(run.lr[:last], ramp_end(run.lr, warmup)),
            )
        )

    def natural(u: np.ndarray) -> dict[str, float]:
        return {n: float(np.clip(_FROM_FIT[n](u[i]), *box[n])) for i, n in enumerate(NAMES)}

    def objective(u: np.ndarray) -> float:
        p = natural(u)
        total = 0.0
        for loss, steps, s1, d in prepared:
            momentum = scipy.signal.lfilter([1.0], [1.0, -p["decay"]], d)
            s2 = np.cumsum(momentum)[steps]
            predicted = p["L0"] + p["A"] * np.maximum(s1, 1e-30) ** -p["alpha"] - p["C"] * s2
            total += _huber_mean(loss, predicted, huber_delta)
        return total / huber_delta**2

    best = None
    for start in itertools.product(*(grid[n] for n in NAMES)):
        u0 = np.array([_TO_FIT[n](np.clip(v, *box[n])) for n, v in zip(NAMES, start, strict=True)])
        u0 = np.clip(u0, [b[0] for b in fit_box], [b[1] for b in fit_box])
        outcome = scipy.optimize.minimize(objective, u0, method="L-BFGS-B", bounds=fit_box)
        if best is None or outcome.fun < best.fun:
            best = outcome
    return natural(best.x), float(best.fun)
