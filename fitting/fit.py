"""Fit a law jointly to one or more logged runs (shared parameters), and predict with it.

The objective is a Huber loss on log residuals, each run weighted equally whatever its number of
points:

.. math::

    J(\\theta) = \\frac{1}{\\delta^2} \\sum_{r} \\frac{1}{n_r} \\sum_{i \\le n_r}
        \\mathrm{huber}_\\delta\\big(\\log y_{r,i} - \\log L_\\theta(s_{r,i})\\big)

(the ``1/delta**2`` keeps the optimiser's tolerances meaningful for residuals of 1e-3), plus the
law's ``penalty`` of the parameters when it has one (e.g. a weak prior, see
:class:`fitting.laws.Law`).

Fitting is two stages. (1) A multi-start grid over the law's non-linear parameters, evaluated in
one vectorised batch: at each start the linear parameters are solved by weighted least squares
(the prediction is affine in them: its values at zero and at unit coefficients give the design
exactly), then every start's objective is computed. (2) The best few distinct starts are refined
with L-BFGS-B (scipy) on the exact jitted value-and-gradient from JAX, in the law's fit
coordinates, within bounds; the best refinement wins.

Arrays are padded to shape buckets (:mod:`fitting.padding`) so a new curve length rarely means a
new compilation; :data:`COMPILATIONS` counts the traces of each kernel, and each kernel keeps at
most :data:`fitting.compiled.MAX_EXECUTABLES` executables loaded (least recently used evicted).
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from fitting.compiled import bounded_jit
from fitting.errors import InvalidInput
from fitting.laws import Law, from_fit_coordinates, natural_bounds, to_fit_coordinates
from fitting.metrics import curve_metrics
from fitting.padding import (
    bucket_size,
    fit_shape,
    pad_points,
    pad_schedule,
    prediction_shape,
    stacked_schedules,
)
from fitting.priors import Prior, identifies_annealing, reference_of
from fitting.schedules import warmup_steps_of

WARMUP_TREATMENTS = ("exclude", "include")
DEFAULT_WARMUP = "include"
DEFAULT_HUBER_DELTA = 1e-3
DEFAULT_REFINED_STARTS = 4
GRADIENT_TOLERANCE = 1e-4

# Number of times each jitted kernel was traced (= compiled) in this process.
COMPILATIONS: collections.Counter[str] = collections.Counter()


@dataclass(frozen=True)
class Run:
    """One logged training run: its per-step learning rate and the losses logged at some steps.

    Attributes:
      lr: ``(T,)`` rate of every update ``0 .. T-1`` (float64).
      steps: ``(n,)`` strictly increasing logged steps in ``[0, T)``.
      loss: ``(n,)`` positive finite losses at those steps.
      name: for reports.
    """

    lr: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    name: str = ""

    def __post_init__(self):
        lr = np.asarray(self.lr, dtype=np.float64)
        steps = np.asarray(self.steps)
        loss = np.asarray(self.loss, dtype=np.float64)
        label = f"run {self.name!r}" if self.name else "run"
        if lr.ndim != 1 or lr.size == 0:
            raise InvalidInput(f"{label}: lr must be a non-empty 1-D array, got shape {lr.shape}")
        if not np.all(np.isfinite(lr)) or np.any(lr < 0):
            bad = int(np.flatnonzero(~np.isfinite(lr) | (lr < 0))[0])
            raise InvalidInput(f"{label}: lr must be finite and >= 0, got lr[{bad}]={lr[bad]}")
        if steps.ndim != 1 or loss.ndim != 1 or steps.shape != loss.shape:
            raise InvalidInput(
                f"{label}: steps and loss must be 1-D of equal length, got {steps.shape} and "
                f"{loss.shape}"
            )
        if steps.size == 0:
            raise InvalidInput(f"{label}: no logged points")
        if not np.issubdtype(steps.dtype, np.integer):
            if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
                raise InvalidInput(f"{label}: steps must be integers")
            steps = steps.astype(np.int64)
        if np.any(np.diff(steps) <= 0):
            bad = int(np.flatnonzero(np.diff(steps) <= 0)[0])
            raise InvalidInput(
                f"{label}: steps must be strictly increasing, got steps[{bad}]={steps[bad]} then "
                f"steps[{bad + 1}]={steps[bad + 1]}"
            )
        if steps[0] < 0 or steps[-1] >= lr.size:
            raise InvalidInput(
                f"{label}: logged steps must lie in [0, {lr.size}) (the schedule's length), got "
                f"{steps[0]}..{steps[-1]}"
            )
        if not np.all(np.isfinite(loss)) or np.any(loss <= 0):
            bad = int(np.flatnonzero(~np.isfinite(loss) | (loss <= 0))[0])
            raise InvalidInput(f"{label}: loss must be finite and > 0, got loss[{bad}]={loss[bad]}")
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "steps", steps.astype(np.int64))
        object.__setattr__(self, "loss", loss)


@dataclass
class FitResult:
    """What a fit did, honestly (like scipy's OptimizeResult).

    Attributes:
      law: the law's name.
      params: fitted natural parameter values by name.
      objective: the final value of the objective ``J`` (see module docstring).
      converged: whether the refinement of the winning start met its tolerance.
      message: the optimiser's reason for stopping.
      iterations: L-BFGS-B iterations of the winning start.
      gradient_norm: largest |gradient| of the objective over free parameters off their bounds,
        in fit coordinates, at the returned parameters.
      evaluations: objective evaluations in total (grid and all refinements).
      at_bounds: names of parameters that ended on a bound (their value is a constraint, not an
        estimate).
      fixed: parameters held at a value by the caller.
      bounds: the natural bounds in force, after the data's (``Law.data_bounds``) and the
        caller's; equal bounds mean the parameter was held (e.g. a decay the runs cannot
        identify).
      warmup: "exclude" or "include": how the warmup ramp entered the annealing terms.
      min_step: logged points before it were skipped.
      metrics: per fitted run, the metrics of :mod:`fitting.metrics`.
      seconds: wall time of the fit.
      identification: what the runs identify (:func:`identify`): the law's annealing
        parameters, the runs whose decay of the rate identifies them, the prior they were held
        at otherwise (``prior``, see :class:`fitting.priors.Prior`) and a note in words.
    """

    law: str
    params: dict[str, float]
    objective: float
    converged: bool
    message: str
    iterations: int
    gradient_norm: float
    evaluations: int
    at_bounds: list[str]
    fixed: dict[str, float]
    bounds: dict[str, list[float]]
    warmup: str
    min_step: int
    huber_delta: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    identification: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------
# Batching: runs padded to one shape bucket.


#: The least predicted loss whose logarithm is taken (fit residuals, bands, cross-validation):
#: a non-positive prediction gets a large, finite log error instead of NaN.
LOSS_FLOOR = 1e-12


def ramp_end_of(lr: np.ndarray, warmup: str) -> int:
    """Index before which annealing terms ignore rate changes (the warmup ramp's end, or 0)."""
    if warmup not in WARMUP_TREATMENTS:
        raise InvalidInput(f"warmup must be one of {WARMUP_TREATMENTS}, got warmup={warmup!r}")
    return warmup_steps_of(lr) if warmup == "exclude" else 0


def _batch(runs: Sequence[Run], warmup: str, like: Sequence[Run] = ()) -> dict[str, np.ndarray]:
    """Stack runs into padded arrays: lr (R, T), steps/loss/mask (R, N), ramp_end (R,); sized
    for the largest of ``runs`` and ``like`` (number of runs, length, points)."""
    every = [*runs, *like]
    # The number of runs is padded too, with copies of the first run whose points are all masked
    # out (they weigh nothing), so fits of 3 and 4 runs share one compilation.
    length, points, count = fit_shape(
        max(run.lr.size for run in every),
        max(run.steps.size for run in every),
        max(len(runs), len(like)),
    )
    rows = list(runs) + [runs[0]] * (count - len(runs))
    return {
        "lr": np.stack([pad_schedule(run.lr, length) for run in rows]),
        "steps": np.stack([pad_points(run.steps, points) for run in rows]),
        "loss": np.stack([pad_points(run.loss, points, 1.0) for run in rows]),
        "mask": np.stack(
            [
                pad_points(np.full(run.steps.size, float(i < len(runs))), points)
                for i, run in enumerate(rows)
            ]
        ),
        "ramp_end": np.array([ramp_end_of(run.lr, warmup) for run in rows]),
    }


# ---------------------------------------------------------------------------------------------
# Jitted kernels (one trace per law and shape bucket).


def _predict_batch(law: Law, params, lr, steps, ramp_end):
    return jax.vmap(law.predict, in_axes=(None, 0, 0, 0))(params, lr, steps, ramp_end)


def _huber(residual, delta):
    size = jnp.abs(residual)
    return jnp.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta))


def _objective(law: Law, params, batch, delta):
    predicted = _predict_batch(law, params, batch["lr"], batch["steps"], batch["ramp_end"])
    return _objective_of_predictions(law, params, predicted, batch, delta)


def _objective_of_predictions(law: Law, params, predicted, batch, delta):
    # A non-positive prediction is pushed back by a large, finite log residual.
    residual = jnp.log(batch["loss"]) - jnp.log(jnp.maximum(predicted, LOSS_FLOOR))
    per_point = _huber(residual, delta) * batch["mask"]
    per_run = jnp.sum(per_point, axis=-1) / jnp.maximum(jnp.sum(batch["mask"], axis=-1), 1.0)
    value = jnp.sum(per_run) / delta**2
    return value if law.penalty is None else value + law.penalty(params)


def _objective_in_fit_coordinates(law: Law, fitted, batch, delta):
    return _objective(law, from_fit_coordinates(law, fitted), batch, delta)


def count_traces(name: str):
    """Decorator under ``jax.jit``: count each trace (= compilation) of the kernel in
    :data:`COMPILATIONS` under ``name``."""

    def count(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            COMPILATIONS[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    return count


@bounded_jit(static_argnums=0, name="fit.value_and_grad")
@count_traces("fit.value_and_grad")
def _value_and_grad(law: Law, fitted, batch, delta):
    return jax.value_and_grad(_objective_in_fit_coordinates, argnums=1)(law, fitted, batch, delta)


@bounded_jit(static_argnums=0, name="fit.starts")
@count_traces("fit.starts")
def _solve_starts(law: Law, starts, batch, delta, lower, upper):
    """For each start (natural values, linear ones ignored), solve the linear parameters by
    weighted least squares on relative residuals, clip them to bounds, return the completed
    starts and their objectives."""
    linear = np.array([p.linear for p in law.parameters])
    linear_index = np.flatnonzero(linear)
    counts = jnp.maximum(jnp.sum(batch["mask"], -1, keepdims=True), 1.0)
    weight = batch["mask"] / (batch["loss"] * jnp.sqrt(counts))

    def complete(start):
        base = start.at[linear_index].set(0.0)

        def predict_linear(coefficients):
            return _predict_batch(
                law,
                base.at[linear_index].set(coefficients),
                batch["lr"],
                batch["steps"],
                batch["ramp_end"],
            )

        # The prediction is affine in the linear parameters, so its values at zero and at each
        # unit vector give the offset and the basis exactly, and the prediction at the solved
        # coefficients is their combination: no derivative through the law, no further call.
        count = linear_index.size
        values = jax.vmap(predict_linear)(jnp.concatenate([jnp.zeros((1, count)), jnp.eye(count)]))
        offset = values[0]
        basis = jnp.moveaxis(values[1:] - offset, 0, -1)  # (R, N, K)
        design = (basis * weight[..., None]).reshape(-1, count)
        target = ((batch["loss"] - offset) * weight).reshape(-1)
        coefficients, *_ = jnp.linalg.lstsq(design, target)
        solved = jnp.clip(base.at[linear_index].set(coefficients), lower, upper)
        predicted = offset + basis @ solved[linear_index]
        return solved, _objective_of_predictions(law, solved, predicted, batch, delta)

    # One start at a time: batching the starts of an expensive law costs more in memory traffic
    # than it saves (2x for multi_power), and a cheap law runs as fast either way.
    return jax.lax.map(complete, starts)


@bounded_jit(static_argnums=0, name="predict")
@count_traces("predict")
def _predict_jit(law: Law, params, lr, steps, ramp_end):
    return _predict_batch(law, params, lr, steps, ramp_end)


# ---------------------------------------------------------------------------------------------
# The fitter.


def _start_grid(law: Law, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Product of the non-linear parameters' starting values (clipped, deduplicated)."""
    axes = []
    for i, p in enumerate(law.parameters):
        if p.linear:
            axes.append([0.0])
        elif lower[i] == upper[i]:
            axes.append([lower[i]])
        else:
            values = np.clip(np.array(p.starts or [(lower[i] + upper[i]) / 2]), lower[i], upper[i])
            axes.append(sorted(set(values.tolist())))
    grid = np.array(list(itertools.product(*axes)), dtype=np.float64)
    # Repeat the first start up to the bucket of the law's full grid: fixing or narrowing a
    # parameter shrinks the grid, and a new grid size would otherwise mean a new compilation.
    full = int(np.prod([1 if p.linear else max(len(p.starts), 1) for p in law.parameters]))
    size = bucket_size(max(full, len(grid)))
    return np.concatenate([grid, np.repeat(grid[:1], size - len(grid), 0)])


def fit_law(
    law: Law,
    runs: Sequence[Run],
    *,
    warmup: str = DEFAULT_WARMUP,
    min_step: int = 0,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    huber_delta: float = DEFAULT_HUBER_DELTA,
    refined_starts: int | None = None,
    max_iterations: int = 2000,
    like: Sequence[Run] = (),
) -> FitResult:
    """Fit ``law`` to ``runs`` with shared parameters.

    Args:
      law: a law record (:data:`fitting.laws.LAWS`).
      runs: one or more :class:`Run`.
      warmup: "exclude" (the ramp before the first peak does not enter annealing terms) or
        "include".
      min_step: skip logged points before this step.
      fixed: parameters held at a value, e.g. ``{"decay": 0.999}``.
      bounds: natural bounds that replace the law's for some parameters.
      huber_delta: the Huber loss's threshold on log residuals.
      refined_starts: how many of the best grid starts L-BFGS-B refines (default: the law's
        ``refined_starts``, else :data:`DEFAULT_REFINED_STARTS`).
      max_iterations: L-BFGS-B iteration limit per start.
      like: runs the arrays are padded for as well (the number of runs, their length and
        points), so that fits of subsets of them share one compilation (cross-validation folds);
        it costs the padded work.

    Returns:
      A :class:`FitResult`; ``converged`` is False (with the reason in ``message``) when the
      optimiser stopped before meeting its tolerance.
    """
    with _FIT_LOCK:
        return _fit_law(
            law,
            runs,
            warmup=warmup,
            min_step=min_step,
            fixed=fixed,
            bounds=bounds,
            huber_delta=huber_delta,
            refined_starts=refined_starts,
            max_iterations=max_iterations,
            like=like,
        )


# Two threads inside the vectorised start grid at once never return on JAX 0.10.2's CPU backend
# (both wait on a result); fits are serialised here, for the service, the CLI and the planner.
_FIT_LOCK = threading.Lock()


def _fit_law(
    law, runs, *, warmup, min_step, fixed, bounds, huber_delta, refined_starts, max_iterations, like
):
    began = time.perf_counter()
    if not runs:
        raise InvalidInput("fit needs at least one run")
    if not huber_delta > 0:
        raise InvalidInput(f"huber_delta must be > 0, got huber_delta={huber_delta}")
    if refined_starts is None:
        refined_starts = law.refined_starts or DEFAULT_REFINED_STARTS
    if refined_starts < 1:
        raise InvalidInput(f"refined_starts must be >= 1, got refined_starts={refined_starts}")
    kept = []
    for run in runs:
        keep = run.steps >= min_step
        if not np.any(keep):
            raise InvalidInput(
                f"run {run.name!r}: no logged point at or after min_step={min_step} "
                f"(last logged step {int(run.steps[-1])})"
            )
        kept.append(Run(run.lr, run.steps[keep], run.loss[keep], run.name))
    runs = kept

    box = natural_bounds(law)
    fixed = dict(fixed or {})
    imposed = (
        law.data_bounds([r.lr for r in runs], [r.steps for r in runs]) if law.data_bounds else {}
    )
    for name, (low, high) in imposed.items():
        if name not in fixed and name not in (bounds or {}):
            box[law.index(name)] = [low, high]
    for name, (low, high) in dict(bounds or {}).items():
        i = _parameter_index(law, name)
        if not low <= high:
            raise InvalidInput(
                f"bounds for {name!r} must satisfy lower <= upper, got {low}, {high}"
            )
        box[i] = [max(low, box[i, 0]), min(high, box[i, 1])]
    for name, value in fixed.items():
        i = _parameter_index(law, name)
        if not box[i, 0] <= value <= box[i, 1]:
            raise InvalidInput(
                f"fixed {name}={value} lies outside its bounds [{box[i, 0]}, {box[i, 1]}]"
            )
        box[i] = [value, value]
    identification, prior = identify(law, runs, set(fixed) | set(bounds or {}))
    if prior is not None:
        natural = natural_bounds(law)
        for name, value in prior.values.items():
            i = law.index(name)
            held = float(np.clip(value, *natural[i]))
            box[i] = [held, held]
    lower, upper = box[:, 0], box[:, 1]

    batch = {k: jnp.asarray(v) for k, v in _batch(runs, warmup, like).items()}
    delta = jnp.float64(huber_delta)

    starts, start_objectives = _solve_starts(
        law, jnp.asarray(_start_grid(law, lower, upper)), batch, delta, lower, upper
    )
    evaluations = int(starts.shape[0])
    order = np.argsort(np.nan_to_num(np.asarray(start_objectives), nan=np.inf))

    fit_box = np.sort(
        np.asarray(to_fit_coordinates(law, jnp.asarray(box.T))).T, axis=1
    )  # log1m reverses the order
    best = None
    for start in np.asarray(starts)[order[:refined_starts]]:
        fitted0 = np.clip(np.asarray(to_fit_coordinates(law, jnp.asarray(start))), *fit_box.T)

        def value_and_grad(fitted):
            value, grad = _value_and_grad(law, jnp.asarray(fitted), batch, delta)
            return float(value), np.asarray(grad, dtype=np.float64)

        outcome = scipy.optimize.minimize(
            value_and_grad,
            fitted0,
            jac=True,
            method="L-BFGS-B",
            bounds=[tuple(b) for b in fit_box],
            options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-9, "maxcor": 20},
        )
        evaluations += int(outcome.nfev)
        if best is None or outcome.fun < best.fun:
            best = outcome

    params = np.clip(np.asarray(from_fit_coordinates(law, jnp.asarray(best.x))), lower, upper)
    fit_span = fit_box[:, 1] - fit_box[:, 0]
    distance = np.minimum(best.x - fit_box[:, 0], fit_box[:, 1] - best.x)
    at_bounds = [
        p.name
        for i, p in enumerate(law.parameters)
        if fit_span[i] > 0 and distance[i] <= 1e-6 * max(1.0, fit_span[i])
    ]
    # L-BFGS-B reports a failed line search when the objective is flat to rounding at the
    # optimum; the projected gradient tells that apart from a real failure.
    _, gradient = _value_and_grad(law, jnp.asarray(best.x), batch, delta)
    free = (fit_span > 0) & ~np.isin(
        np.arange(len(law.parameters)), [law.index(n) for n in at_bounds]
    )
    gradient_norm = float(np.max(np.abs(np.asarray(gradient)[free]), initial=0.0))
    converged = bool(best.success) or gradient_norm <= GRADIENT_TOLERANCE
    message = str(best.message)
    if converged and not best.success:
        message += f" (accepted: projected gradient {gradient_norm:.1e} <= {GRADIENT_TOLERANCE})"
    result = FitResult(
        law=law.name,
        params={name: float(v) for name, v in zip(law.names, params, strict=True)},
        objective=float(best.fun),
        converged=converged,
        message=message,
        iterations=int(best.nit),
        gradient_norm=gradient_norm,
        evaluations=evaluations,
        at_bounds=at_bounds,
        fixed=fixed,
        bounds={
            name: [float(lo), float(hi)] for name, (lo, hi) in zip(law.names, box, strict=True)
        },
        warmup=warmup,
        min_step=int(min_step),
        huber_delta=float(huber_delta),
        identification=identification,
    )
    predictions = predict_runs(law, result.params, runs, warmup, like)
    result.metrics = {
        run.name or f"run{i}": curve_metrics(pred, run.loss)
        for i, (run, pred) in enumerate(zip(runs, predictions, strict=True))
    }
    result.seconds = time.perf_counter() - began
    return result


def identify(
    law: Law, runs: Sequence[Run], chosen: set[str] = frozenset()
) -> tuple[dict, Prior | None]:
    """What ``runs`` identify of ``law``'s annealing response (:mod:`fitting.priors`).

    Returns ``(identification, prior)``: a JSON-ready record -- ``parameters`` (the law's
    annealing parameters), ``identified_by`` (the runs whose rate has dropped enough before
    their last logged point), ``source`` ("data", "prior", "caller" when the caller fixed or
    bounded one of them, or "none" for a law without an annealing response), ``prior`` and
    ``note`` (in words) -- and the :class:`~fitting.priors.Prior` to hold the parameters at, or
    None when the data identify them (or the caller chose them in ``chosen``).
    """
    names = list(law.annealing)
    by = [run.name for run in runs if identifies_annealing(run.lr, int(run.steps[-1]))]
    record = {"parameters": names, "identified_by": by, "source": "data", "prior": None}
    listed = ", ".join(names)
    if not names:
        return {**record, "source": "none", "note": "the law has no annealing response"}, None
    if by:
        note = f"the annealing response ({listed}) is identified by the decay of the rate in {by}"
        return {**record, "note": note}, None
    if chosen & set(names) or law.annealing_prior is None:
        note = (
            f"no decay of the rate observed in the fitted runs: the annealing response ({listed}) "
            "is not identified by them and rests on the values the request fixed or bounded"
        )
        return {**record, "source": "caller", "note": note}, None
    prior = law.annealing_prior(reference_of([r.lr for r in runs], [r.loss for r in runs]))
    note = (
        f"no LR decay observed yet: the cooldown's gain ({listed}) comes from the prior, not "
        f"from these runs ({prior.summary})"
    )
    return {**record, "source": "prior", "prior": prior.to_dict(), "note": note}, prior


def _parameter_index(law: Law, name: str) -> int:
    if name not in law.names:
        raise InvalidInput(f"law {law.name!r} has no parameter {name!r}; it has {list(law.names)}")
    return law.index(name)


def objective_value(
    law: Law,
    params: Mapping[str, float],
    runs: Sequence[Run],
    warmup: str = DEFAULT_WARMUP,
    huber_delta: float = DEFAULT_HUBER_DELTA,
) -> float:
    """The fit objective ``J`` of natural ``params`` on ``runs`` (for comparisons and tests)."""
    batch = {k: jnp.asarray(v) for k, v in _batch(runs, warmup).items()}
    vector = jnp.asarray([params[name] for name in law.names], dtype=jnp.float64)
    delta = jnp.float64(huber_delta)
    value, _ = _value_and_grad(law, to_fit_coordinates(law, vector), batch, delta)
    return float(value)


# ---------------------------------------------------------------------------------------------
# Prediction.


def pad_candidates(
    schedules: Sequence[np.ndarray],
    steps: Sequence[np.ndarray],
    warmup: str,
    at_least: tuple[int, int, int] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate schedules and their requested steps as arrays padded to shape buckets:
    ``lr`` (B, T) in one aligned buffer, ``steps`` (B, N), ``ramp_end`` (B,); rows beyond the
    candidates repeat the first. ``at_least = (T, N, B)`` sizes the buckets for at least that
    schedule length, number of steps and number of candidates."""
    length, points, count = prediction_shape(
        max(at_least[0], *(lr.size for lr in schedules)),
        max(at_least[1], *(s.size for s in steps), 1),
        max(at_least[2], len(schedules)),
    )
    rows = list(range(len(schedules))) + [0] * (count - len(schedules))
    return (
        stacked_schedules(schedules, length, count),
        np.stack([pad_points(steps[j], points) for j in rows]),
        np.array([ramp_end_of(schedules[j], warmup) for j in rows]),
    )


def predict_losses(
    law: Law,
    params: Mapping[str, float],
    schedules: Sequence[np.ndarray],
    steps: Sequence[np.ndarray],
    warmup: str = DEFAULT_WARMUP,
    at_least: tuple[int, int, int] = (0, 0, 0),
) -> list[np.ndarray]:
    """Predicted loss of each schedule at its requested steps.

    Args:
      law, params: a law and its natural parameter values by name.
      schedules: per-step learning rates, one ``(T_j,)`` array per candidate.
      steps: for each candidate, integer steps in ``[0, T_j)``.
      warmup: the warmup treatment the parameters were fitted with.
      at_least: ``(schedule length, number of steps, number of candidates)`` the padded shapes
        must also hold, so that calls of different sizes can share one compiled shape.

    Returns:
      One array of predicted losses per candidate.

    All candidates go through one jitted call, padded to shape buckets (schedule length, number
    of steps, number of candidates), so repeated requests of similar size never recompile.
    """
    if len(schedules) != len(steps):
        raise ValueError(f"got {len(schedules)} schedules but {len(steps)} step arrays")
    if not schedules:
        return []
    missing = [name for name in law.names if name not in params]
    if missing:
        raise InvalidInput(f"params for law {law.name!r} lack {missing}")
    schedules = [np.asarray(lr, dtype=np.float64) for lr in schedules]
    steps = [np.asarray(s, dtype=np.int64) for s in steps]
    for j, (lr, s) in enumerate(zip(schedules, steps, strict=True)):
        if s.size and (s.min() < 0 or s.max() >= lr.size):
            raise InvalidInput(
                f"candidate {j}: steps must lie in [0, {lr.size}), got {s.min()}..{s.max()}"
            )
    padded_lr, padded_steps, ramp_ends = pad_candidates(schedules, steps, warmup, at_least)
    vector = jnp.asarray([params[name] for name in law.names], dtype=jnp.float64)
    predicted = np.asarray(_predict_jit(law, vector, padded_lr, padded_steps, ramp_ends))
    return [predicted[j, : s.size] for j, s in enumerate(steps)]


def predict_runs(
    law: Law,
    params: Mapping[str, float],
    runs: Sequence[Run],
    warmup: str = DEFAULT_WARMUP,
    like: Sequence[Run] = (),
) -> list[np.ndarray]:
    """Predicted loss at each run's logged steps; padded as for the largest of ``runs`` and
    ``like`` and for as many runs as ``like`` (e.g. every run of a cross-validation, so that its
    folds' predictions share the full fit's compiled shape)."""
    every = [*runs, *like]
    at_least = (max(r.lr.size for r in every), max(r.steps.size for r in every), len(like))
    return predict_losses(
        law, params, [r.lr for r in runs], [r.steps for r in runs], warmup, at_least
    )
