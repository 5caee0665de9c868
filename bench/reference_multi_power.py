"""A plain numpy/scipy implementation of the multi-power law: the yardstick for its JAX kernel.

Written independently of :mod:`fitting.laws.multi_power` and :mod:`fitting.fit`, in the most
direct way a numpy user would write it, so that benchmarks (``make bench``) and tests can check
the JAX core against it, for speed and for the quality of the optimum. It shares only the
*problem* with the core (and, as data, the law record's bounds, starting values and coordinates,
the prior's constants and the rate floor), not its numerics:

* the index convention: the loss logged at step ``s`` has seen ``lr[0..s]``;
* rates in units of ``lr_ref``, the largest rate of the fitting runs: ``u = lr / lr_ref``;
  drops ``d_i = u[i-1] - u[i]`` for ``i > ramp_end`` (0 otherwise; ``ramp_end = 0`` lets the
  warmup ramp's negative drops in, the default "include");
* the law

  .. math::

      L(s) = L_0 + A\\, S_1(s)^{-\\alpha} - B \\sum_{i \\le s} d_i \\big(1 - (1 + C\\,
             u_i^{-\\gamma} \\textstyle\\sum_{i \\le \\tau \\le s} u_\\tau)^{-\\beta}\\big),

  with ``S1 = cumsum(lr)`` in absolute rates (not in units of ``lr_ref``), and ``u_i`` floored
  at ``RATE_FLOOR`` inside ``u_i**(-gamma)`` (a drop to a rate of 0 saturates at once);
* the objective: Huber (``delta = 1e-3``) on ``log(loss) - log(prediction)``, each run's mean,
  summed over runs, divided by ``delta**2``, plus the law's weak prior
  ``sum_j ((v_j - centre_j) / width_j)**2 / 2`` over ``log C``, ``log beta`` and ``gamma``.

The drop sum is evaluated by the direct double sum: for each requested step, every nonzero drop
at or before it, as a (steps x drops) array (chunks of at most :data:`CHUNK_ELEMENTS` elements, so
memory stays bounded). The fit is a plain multi-start: the law record's grid over the nonlinear
parameters (``alpha, C, beta, gamma``; 24 starts), the linear ones (``L0, A, B``) solved at each
start by numpy least squares on relative residuals; the best start(s) refined by
``scipy.optimize.minimize(method="L-BFGS-B")`` over all seven free parameters with
finite-difference gradients, in the record's coordinates (log for the scale parameters), within
its bounds; ``lr_ref`` stays fixed at the runs' peak rate. What does not depend on the parameters
(``S1`` at the logged steps, the nonzero drops, the area from each drop to each logged step) is
computed once per run, as any numpy user would.

Importing this module has no side effects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.optimize

from bench import reference
from bench.reference import HUBER_DELTA, _huber_mean, drops, forward_area
from bench.reference import ramp_end as ramp_end_of
from fitting.laws.multi_power import MULTI_POWER, PRIOR_CENTRE, PRIOR_WIDTH, RATE_FLOOR

NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma", "lr_ref")
FITTED = NAMES[:-1]  # lr_ref is fixed by the data
LINEAR = ("L0", "A", "B")  # the prediction is affine in these
SHAPE = ("alpha", "C", "beta", "gamma")  # the nonlinear ones: the start grid's axes
CHUNK_ELEMENTS = 2**22  # (requested steps) x (drops) evaluated at once

_RECORD = {p.name: p for p in MULTI_POWER.parameters}


def reference_rate(runs: Sequence) -> float:
    """``lr_ref``: the largest rate of the fitting runs."""
    return max(float(np.max(run.lr)) for run in runs)


def drop_areas(
    u: np.ndarray, steps: np.ndarray, ramp_end: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parameter-free part of the drop sum of one schedule at ``steps``.

    Returns ``(d, rate, area)``: the nonzero drops ``d`` ``(k,)``, the rate after each drop
    ``rate = u_i`` ``(k,)``, and ``area[j, m] = sum_{i_m <= tau <= s_j} u_tau`` ``(n, k)`` for
    drop ``i_m <= s_j``, else 0 (where the saturation ``1 - (1 + C x)**(-beta)`` is 0 too).
    Only the drops at or before the last requested step are kept.
    """
    u = np.asarray(u, dtype=np.float64)
    steps = np.asarray(steps)
    d = drops(u, ramp_end)
    index = np.flatnonzero(d[: int(steps.max()) + 1]) if steps.size else np.zeros(0, int)
    cumulative = np.cumsum(u)
    before = cumulative[index] - u[index]  # sum_{tau < i} u_tau
    area = cumulative[steps][:, None] - before[None, :]
    area = np.where(index[None, :] <= steps[:, None], area, 0.0)
    return d[index], u[index], area


def saturated_drop_sum(
    d: np.ndarray, rate: np.ndarray, area: np.ndarray, c: float, beta: float, gamma: float
) -> np.ndarray:
    """``sum_m d_m (1 - (1 + C rate_m**(-gamma) area[:, m])**(-beta))`` for each row of
    ``area`` (the output of :func:`drop_areas`)."""
    scale = c * np.maximum(rate, RATE_FLOOR) ** -gamma
    saturation = -np.expm1(-beta * np.log1p(area * scale))
    return saturation @ d


def drop_sum(
    u: np.ndarray, steps: np.ndarray, ramp_end: int, c: float, beta: float, gamma: float
) -> np.ndarray:
    """``sum_{i <= s} d_i (1 - (1 + C u_i**(-gamma) sum_{i <= tau <= s} u_tau)**(-beta))`` at
    each of ``steps`` of one schedule ``u`` (in units of ``lr_ref``), by the double sum in chunks
    of requested steps (sorted, so each chunk needs only the drops up to its last step)."""
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    count = int(np.count_nonzero(drops(np.asarray(u, dtype=np.float64), ramp_end)))
    size = max(1, CHUNK_ELEMENTS // max(count, 1))
    out = np.empty(steps.size)
    for start in range(0, steps.size, size):
        chunk = order[start : start + size]
        out[chunk] = saturated_drop_sum(*drop_areas(u, steps[chunk], ramp_end), c, beta, gamma)
    return out


def reference_predict(
    params: Mapping[str, float],
    lr_matrix: np.ndarray,
    steps: np.ndarray | None,
    ramp_end: np.ndarray | int = 0,
) -> np.ndarray:
    """The law's loss at ``steps``, by the direct double sum over drops.

    Args:
      params: ``L0, A, alpha, B, C, beta, gamma, lr_ref`` by name.
      lr_matrix: per-step rates, ``(T,)`` or ``(R, T)``.
      steps: integer steps, ``(n,)`` (the same for every row) or ``(R, n)``; ``None`` for every
        step (``O(T**2)`` per row).
      ramp_end: per row (or one for all): drops at or before it are ignored.

    Returns:
      ``(..., n)`` predicted losses (``(..., T)`` when ``steps`` is None).
    """
    lr = np.asarray(lr_matrix, dtype=np.float64)
    rows = lr.reshape(-1, lr.shape[-1])
    if steps is None:
        steps = np.arange(lr.shape[-1])
    steps = np.broadcast_to(np.asarray(steps), (rows.shape[0], np.shape(steps)[-1]))
    ramp_ends = np.broadcast_to(np.asarray(ramp_end), (rows.shape[0],))
    out = np.empty(steps.shape)
    for j, (row, at, end) in enumerate(zip(rows, steps, ramp_ends, strict=True)):
        s1 = forward_area(row)[at]
        loss_drop = params["B"] * drop_sum(
            row / params["lr_ref"], at, int(end), params["C"], params["beta"], params["gamma"]
        )
        out[j] = params["L0"] + params["A"] * np.maximum(s1, 1e-30) ** -params["alpha"] - loss_drop
    return out.reshape(*lr.shape[:-1], steps.shape[-1])


def prior_penalty(params: Mapping[str, float]) -> float:
    """``sum_j ((v_j - centre_j) / width_j)**2 / 2`` over ``log C``, ``log beta``, ``gamma``."""
    terms = (
        (np.log(params["C"]) - np.log(PRIOR_CENTRE["C"])) / PRIOR_WIDTH["C"],
        (np.log(params["beta"]) - np.log(PRIOR_CENTRE["beta"])) / PRIOR_WIDTH["beta"],
        (params["gamma"] - PRIOR_CENTRE["gamma"]) / PRIOR_WIDTH["gamma"],
    )
    return float(0.5 * sum(t * t for t in terms))


def reference_objective(
    params: Mapping[str, float],
    runs: Sequence,
    warmup: str = "include",
    huber_delta: float = HUBER_DELTA,
) -> float:
    """:func:`bench.reference.reference_objective` of this law, plus :func:`prior_penalty`."""
    fitted = reference.reference_objective(params, runs, warmup, huber_delta, reference_predict)
    return fitted + prior_penalty(params)


def reference_bounds(runs: Sequence) -> dict[str, tuple[float, float]]:
    """The law record's bounds, with ``lr_ref`` fixed at the runs' peak rate."""
    box = {name: (p.lower, p.upper) for name, p in _RECORD.items()}
    peak = reference_rate(runs)
    box["lr_ref"] = (peak, peak)
    return box


def _to_fit(name: str, value):
    return np.log(value) if _RECORD[name].coordinate == "log" else value


def _from_fit(name: str, value):
    return np.exp(value) if _RECORD[name].coordinate == "log" else value


def reference_fit(
    runs: Sequence,
    warmup: str = "include",
    *,
    huber_delta: float = HUBER_DELTA,
    refined_starts: int = 1,
) -> tuple[dict[str, float], float]:
    """Multi-start fit: grid with least-squares linear parameters, then L-BFGS-B refinement
    (finite-difference gradients) of the best ``refined_starts`` starts.

    Args:
      runs: objects with ``lr``, ``steps`` and ``loss`` (e.g. ``fitting.fit.Run``); the
        parameters are shared by all runs.
      warmup: "include" (the ramp's drops enter the drop sum) or "exclude".
      huber_delta: the Huber threshold on log residuals.
      refined_starts: how many of the best grid starts are refined (the law record refines 1).

    Returns:
      ``(params, objective)`` of the best refinement.
    """
    box = reference_bounds(runs)
    lr_ref = box["lr_ref"][0]
    prepared = []
    for run in runs:
        loss = np.asarray(run.loss, dtype=np.float64)
        steps = np.asarray(run.steps)
        s1 = forward_area(run.lr)[steps]
        d, rate, area = drop_areas(run.lr / lr_ref, steps, ramp_end_of(run.lr, warmup))
        prepared.append((loss, s1, d, rate, area))

    def predictions(p: Mapping[str, float]) -> list[np.ndarray]:
        return [
            p["L0"]
            + p["A"] * s1 ** -p["alpha"]
            - p["B"] * saturated_drop_sum(d, rate, area, p["C"], p["beta"], p["gamma"])
            for _, s1, d, rate, area in prepared
        ]

    def objective_of(p: Mapping[str, float]) -> float:
        fitted = sum(
            _huber_mean(loss, predicted, huber_delta)
            for (loss, *_), predicted in zip(prepared, predictions(p), strict=True)
        )
        return fitted / huber_delta**2 + prior_penalty(p)

    def solved_start(shape: Mapping[str, float]) -> dict[str, float]:
        """``L0, A, B`` by least squares on relative residuals (each run weighted equally)."""
        design, target = [], []
        for loss, s1, d, rate, area in prepared:
            weight = 1.0 / (loss * np.sqrt(loss.size))
            columns = (
                np.ones_like(s1),
                s1 ** -shape["alpha"],
                -saturated_drop_sum(d, rate, area, shape["C"], shape["beta"], shape["gamma"]),
            )
            design.append(np.stack(columns, axis=-1) * weight[:, None])
            target.append(loss * weight)
        solution, *_ = np.linalg.lstsq(np.concatenate(design), np.concatenate(target), rcond=None)
        linear = {n: float(np.clip(v, *box[n])) for n, v in zip(LINEAR, solution, strict=True)}
        return {**shape, **linear, "lr_ref": lr_ref}

    grid = itertools.product(*(_RECORD[n].starts for n in SHAPE))
    starts = [solved_start(dict(zip(SHAPE, values, strict=True))) for values in grid]
    starts.sort(key=objective_of)

    fit_box = [tuple(sorted(_to_fit(n, np.array(box[n])))) for n in FITTED]

    def natural(x: np.ndarray) -> dict[str, float]:
        p = {n: float(np.clip(_from_fit(n, v), *box[n])) for n, v in zip(FITTED, x, strict=True)}
        return {**p, "lr_ref": lr_ref}

    best = None
    for start in starts[:refined_starts]:
        x0 = np.clip([_to_fit(n, start[n]) for n in FITTED], *np.array(fit_box).T)
        outcome = scipy.optimize.minimize(
            lambda x: objective_of(natural(x)),
            x0,
            method="L-BFGS-B",
            bounds=fit_box,
            options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20},
        )
        if best is None or outcome.fun < best.fun:
            best = outcome
    return natural(best.x), float(best.fun)
