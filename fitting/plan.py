"""Budget planning under a fitted law: decide, before spending the compute, how long to train,
which schedule to use and how long to cool down.

Five questions, each one pure function of a :class:`FittedLaw` (a law record, its fitted
parameters and the warmup treatment they were fitted with):

* :func:`compare_schedules`: the predicted curve and final loss of candidate schedules, ranked
  (with a prediction band when the fitted law carries an uncertainty, see
  :mod:`fitting.intervals`).
* :func:`best_cooldown`: for warmup-stable-decay at a fixed length, the final loss on a grid of
  cooldown fractions for each decay shape, the best one, and how flat the optimum is.
* :func:`steps_to_target`: for a family whose length scales with the budget (``cosine``,
  ``wsd`` with ``decay_fraction``, ``wsd`` with a fixed ``num_decay_steps``, ``constant``, ...),
  the smallest ``total_steps`` whose predicted final loss reaches a target;
  :func:`loss_for_budget` is the reverse (the final loss a number of steps, tokens or FLOPs
  buys).
* :func:`optimise_schedule`: the monotone per-step schedule with a fixed peak, length and floor
  that minimises the predicted final loss (gradient descent through the law), compared with
  cosine and the best WSD of the same length.

Conventions are :mod:`fitting.schedules`' (``lr[i]`` is the rate of update ``i``; the warmup ramp
ends on the peak at step ``W - 1``) and :mod:`fitting.areas`' (the loss logged at step ``s`` has
seen ``lr[0..s]``). The **final loss** of a schedule of ``T`` steps is the prediction at step
``T - 1``. Every question is answered through the law record only, so it holds for any law in
:data:`fitting.laws.LAWS`.

Schedules are evaluated in batches through :func:`fitting.fit.predict_losses` (padded to shape
buckets, one compiled kernel per law and bucket). The searches pad every candidate to one length
themselves (repeating the last rate changes no prediction before it), so a whole search shares
one compiled kernel. The optimiser differentiates the law's ``predict`` with respect to the
per-step rates (one jitted value-and-gradient per law and length bucket); the chain rule through
the knot parameterisation is done in numpy.

Nothing here imports web, storage or HTTP code.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from fitting.compiled import bounded_jit
from fitting.errors import InvalidInput
from fitting.fit import (
    DEFAULT_WARMUP,
    WARMUP_TREATMENTS,
    FitResult,
    count_traces,
    predict_losses,
    ramp_end_of,
)
from fitting.laws import Law, get_law
from fitting.padding import pad_schedule, schedule_length_bucket
from fitting.schedules import MAX_TOTAL_STEPS, learning_rates, warmup_steps_of

__all__ = [
    "COOLDOWN_SHAPES",
    "DEFAULT_COOLDOWN_FRACTIONS",
    "CooldownPlan",
    "FittedLaw",
    "OptimisedSchedule",
    "ScheduleForecast",
    "StepsToTarget",
    "TrainingScale",
    "best_cooldown",
    "compare_schedules",
    "curve_steps",
    "final_losses",
    "frame_of",
    "loss_for_budget",
    "optimise_schedule",
    "planned_run",
    "steps_to_target",
]

#: Points of a predicted curve when none are asked for (the service's default too).
DEFAULT_NUM_POINTS = 300
#: The cooldown shapes :func:`best_cooldown` compares (``decay_type`` of ``wsd``).
COOLDOWN_SHAPES = ("linear", "cosine", "1-sqrt")
#: Cooldown fractions of ``total_steps`` tried by default: 0, 0.02, ..., 0.5.
DEFAULT_COOLDOWN_FRACTIONS = tuple(round(0.02 * k, 2) for k in range(26))
#: A final loss within this of the best counts as "as good" (about the noise of a logged loss).
NEAR_OPTIMAL_TOLERANCE = 1e-3
#: Knots of the optimised schedule (a piecewise-linear schedule through them).
DEFAULT_NUM_KNOTS = 256
#: Candidates evaluated per call of a steps-to-target search (grid and each refinement).
SEARCH_POINTS = 24
#: Longest schedule a steps-to-target search tries unless told otherwise.
DEFAULT_MAX_STEPS = 1_000_000
#: (candidates) x (padded schedule length) evaluated in one call, to bound memory.
ELEMENTS_PER_CALL = 2**23
#: Families whose length cannot be scaled by changing ``total_steps`` alone.
UNSCALABLE_TYPES = ("explicit", "piecewise")


# ---------------------------------------------------------------------------------------------
# Inputs: the fitted law, and the conversion of steps into tokens and FLOPs.


@dataclass(frozen=True)
class FittedLaw:
    """A law with fitted parameters: what every planning question is answered under.

    Attributes:
      law: a record of :data:`fitting.laws.LAWS` (or its name).
      params: natural parameter values by name (all of the law's, no others).
      warmup: the warmup treatment the parameters were fitted with ("include" or "exclude").
      uncertainty: optional :class:`fitting.intervals.Uncertainty` of the fit; when given,
        :func:`compare_schedules` and :func:`loss_for_budget` add prediction bands.
    """

    law: Law
    params: Mapping[str, float]
    warmup: str = DEFAULT_WARMUP
    uncertainty: Any = None

    def __post_init__(self):
        law = get_law(self.law) if isinstance(self.law, str) else self.law
        if self.warmup not in WARMUP_TREATMENTS:
            raise InvalidInput(
                f"warmup must be one of {WARMUP_TREATMENTS}, got warmup={self.warmup!r}"
            )
        unknown = sorted(set(self.params) - set(law.names))
        missing = [name for name in law.names if name not in self.params]
        if unknown or missing:
            raise InvalidInput(
                f"params of law {law.name!r} must name exactly {list(law.names)}; "
                f"missing {missing}, unknown {unknown}"
            )
        params = {name: _finite(f"params[{name!r}]", self.params[name]) for name in law.names}
        object.__setattr__(self, "law", law)
        object.__setattr__(self, "params", params)

    @classmethod
    def from_fit(cls, law: Law | str, result: FitResult, uncertainty: Any = None) -> FittedLaw:
        """The law as :func:`fitting.fit.fit_law` fitted it."""
        return cls(law, result.params, result.warmup, uncertainty)


@dataclass(frozen=True)
class TrainingScale:
    """What a step costs: tokens per step and model size, when the run metadata gives them.

    ``tokens = steps * tokens_per_step`` and ``flops = 6 * n_params * tokens`` (the usual
    forward-and-backward estimate for a dense transformer).

    Example:
      >>> TrainingScale(tokens_per_step=524288, n_params=4e8).cost(24000)["flops"]
      3.01989888e+19
    """

    tokens_per_step: float | None = None
    n_params: float | None = None

    def __post_init__(self):
        for name in ("tokens_per_step", "n_params"):
            value = getattr(self, name)
            if value is not None:
                value = _finite(name, value)
                if value <= 0:
                    raise InvalidInput(f"{name} must be > 0, got {name}={value}")
                object.__setattr__(self, name, value)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> TrainingScale:
        """From run metadata: ``tokens_per_step``, and ``n_params`` (or ``model_size``, a number
        or a string such as ``"400M"`` or ``"1.3B"``). Absent or unreadable keys stay unknown.

        >>> TrainingScale.from_metadata({"model_size": "25M", "tokens_per_step": 524288})
        TrainingScale(tokens_per_step=524288.0, n_params=25000000.0)
        """
        metadata = metadata or {}
        tokens = metadata.get("tokens_per_step")
        size = metadata.get("n_params", metadata.get("model_size"))
        return cls(_positive_or_none(tokens), _positive_or_none(parse_model_size(size)))

    @property
    def known(self) -> bool:
        return self.tokens_per_step is not None

    def cost(self, steps: int) -> dict[str, float | int | None]:
        """``{"steps", "tokens", "flops"}`` of a run of ``steps`` updates (None: unknown)."""
        tokens = None if self.tokens_per_step is None else float(steps) * self.tokens_per_step
        flops = None if tokens is None or self.n_params is None else 6.0 * self.n_params * tokens
        return {"steps": int(steps), "tokens": tokens, "flops": flops}

    def steps_for(self, *, tokens: float | None = None, flops: float | None = None) -> int:
        """The number of steps (rounded up) that ``tokens`` or ``flops`` pay for."""
        if (tokens is None) == (flops is None):
            raise InvalidInput("give exactly one of tokens or flops")
        if self.tokens_per_step is None:
            raise InvalidInput("a budget in tokens or FLOPs needs tokens_per_step")
        if flops is not None:
            if self.n_params is None:
                raise InvalidInput("a budget in FLOPs needs n_params (the model size)")
            tokens = _finite("flops", flops) / (6.0 * self.n_params)
        tokens = _finite("tokens", tokens)
        if tokens <= 0:
            raise InvalidInput(f"the budget must be positive, got {tokens} tokens")
        # A budget that is a whole number of steps up to rounding is that number of steps.
        return max(1, math.ceil(tokens / self.tokens_per_step * (1 - 1e-12)))


_SIZE_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_model_size(value: Any) -> float | None:
    """``400M`` -> 4e8, ``1.3B`` -> 1.3e9, a number -> itself; None when unreadable.

    >>> parse_model_size("1.3B"), parse_model_size("25M"), parse_model_size(7e9)
    (1300000000.0, 25000000.0, 7000000000.0)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("params").strip()
        factor = _SIZE_SUFFIXES.get(text[-1:], None)
        try:
            return float(text[:-1]) * factor if factor else float(text)
        except ValueError:
            return None
    return None


def _positive_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be finite, got {name}={value}")
    return value


def planned_run(
    name: str, total_steps: int | None, final_loss: float, spec: dict, cost: dict
) -> dict[str, Any]:
    """The run a plan recommends (or evaluates), in one shape for every question: ``name``,
    ``total_steps`` (None when a target was not reached), its predicted ``final_loss``, its
    schedule ``spec`` and its ``cost``. A CI gate compares ``final_loss`` with a limit."""
    return _jsonable(
        {
            "name": name,
            "total_steps": total_steps,
            "final_loss": final_loss,
            "spec": spec,
            "cost": cost,
        }
    )


# ---------------------------------------------------------------------------------------------
# Evaluation: curves and final losses of many schedules at once.


def curve_steps(lr: np.ndarray, num_points: int = DEFAULT_NUM_POINTS) -> np.ndarray:
    """``num_points`` steps evenly spaced from the first step after the warmup ramp (or 1) to the
    last step ``T - 1``, duplicates removed (the grid of the service's predicted curves).

    >>> curve_steps(np.ones(10), 4).tolist()
    [1, 4, 6, 9]
    """
    if num_points < 1:
        raise InvalidInput(f"num_points must be >= 1, got num_points={num_points}")
    last = lr.size - 1
    ramp_end = warmup_steps_of(lr)
    first = min(ramp_end + 1 if ramp_end > 0 else 1, last)
    return np.unique(np.round(np.linspace(first, last, num_points)).astype(np.int64))


def final_losses(
    model: FittedLaw,
    schedules: Sequence[np.ndarray],
    length: int | None = None,
    count: int | None = None,
) -> np.ndarray:
    """Predicted final loss (at step ``T_j - 1``) of each per-step schedule.

    Every schedule is padded to ``length`` (default: the bucket of the longest) by repeating its
    last rate, which changes no prediction before its end; with ``count``, every call holds
    exactly that many schedules (repeating the first). So the calls of a search, with one
    ``length`` and one ``count``, share one compiled kernel. Calls hold at most
    :data:`ELEMENTS_PER_CALL` rates; below that, all schedules go through one call of
    :func:`fitting.fit.predict_losses`.

    Returns:
      ``(len(schedules),)`` float64 array.
    """
    schedules = [np.asarray(lr, dtype=np.float64) for lr in schedules]
    if not schedules:
        return np.zeros(0)
    longest = max(lr.size for lr in schedules)
    length = schedule_length_bucket(longest) if length is None else int(length)
    if length < longest:
        raise ValueError(f"length={length} is shorter than the longest schedule ({longest})")
    per_call = max(1, ELEMENTS_PER_CALL // length)
    if count is not None:
        per_call = min(per_call, int(count))
    losses = []
    for start in range(0, len(schedules), per_call):
        chunk = schedules[start : start + per_call]
        size = per_call if (count is not None or len(schedules) > per_call) else len(chunk)
        rows = chunk + [chunk[0]] * (size - len(chunk))
        predicted = predict_losses(
            model.law,
            model.params,
            [pad_schedule(lr, length) for lr in rows],
            [np.array([lr.size - 1]) for lr in rows],
            model.warmup,
        )
        losses.extend(float(p[0]) for p in predicted[: len(chunk)])
    return np.asarray(losses)


def _schedule_of(item: Mapping[str, Any] | np.ndarray | Sequence[float], where: str):
    """(lr, spec or None) of a candidate given as a spec or as per-step rates."""
    try:
        if isinstance(item, Mapping):
            return learning_rates(item), dict(item)
        return learning_rates({"type": "explicit", "lr_per_step": item}), None
    except (InvalidInput, TypeError) as error:
        raise InvalidInput(f"{where}: {error}") from None


def _default_name(spec: Mapping[str, Any] | None, lr: np.ndarray, j: int) -> str:
    if spec is None:
        return f"candidate {j} (explicit, {lr.size} steps)"
    return f"{spec.get('type')}_{lr.size}"


# ---------------------------------------------------------------------------------------------
# 1. Compare candidate schedules.


@dataclass
class ScheduleForecast:
    """One schedule's predicted curve and final loss under the fitted law.

    Attributes:
      name: the candidate's name.
      rank: 1 for the lowest predicted final loss.
      final_loss: the prediction at the last step ``T - 1``.
      gap_to_best: ``final_loss`` minus the best candidate's (0 for the best).
      total_steps: ``T``.
      warmup_end: the step where the warmup ramp ends (0: no ramp).
      steps, loss, lr: the predicted curve and the schedule's rate on :func:`curve_steps`.
      spec: the schedule spec, or None for an explicit per-step schedule.
      cost: steps, tokens and FLOPs of the run (:class:`TrainingScale`).
      interval: None without an uncertainty; else ``{"level", "lower", "upper",
        "final": [lower, upper]}``, the prediction band on ``steps``.
    """

    name: str
    rank: int
    final_loss: float
    gap_to_best: float
    total_steps: int
    warmup_end: int
    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    spec: dict | None
    cost: dict
    interval: dict | None = None

    def planned(self) -> dict[str, Any]:
        """This run as the plan's answer (see :func:`planned_run`)."""
        spec = self.spec if self.spec is not None else {"type": "explicit"}
        return planned_run(self.name, self.total_steps, self.final_loss, spec, self.cost)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def compare_schedules(
    model: FittedLaw,
    schedules: Sequence[Mapping[str, Any] | np.ndarray | Sequence[float]],
    names: Sequence[str] | None = None,
    *,
    num_points: int = DEFAULT_NUM_POINTS,
    scale: TrainingScale | None = None,
    level: float = 0.9,
) -> list[ScheduleForecast]:
    """Predicted curve and final loss of each candidate, ranked best (lowest final loss) first.

    Args:
      model: the fitted law.
      schedules: specs in :mod:`fitting.schedules`' vocabulary or per-step rate arrays.
      names: one per candidate (default: ``<type>_<T>``).
      num_points: points of each predicted curve (always ending at the last step).
      scale: for the cost of each run in tokens and FLOPs.
      level: the prediction band's level, when ``model.uncertainty`` is given.

    Returns:
      One :class:`ScheduleForecast` per candidate, sorted by ``rank``. All candidates go
      through one call of :func:`fitting.fit.predict_losses`.

    Raises:
      InvalidInput: a bad spec (the message says which candidate), or a non-finite prediction.
    """
    if not schedules:
        raise InvalidInput("compare needs at least one schedule")
    if names is not None and len(names) != len(schedules):
        raise InvalidInput(f"got {len(names)} names for {len(schedules)} schedules")
    scale = scale or TrainingScale()
    built = [_schedule_of(item, f"schedules[{j}]") for j, item in enumerate(schedules)]
    lrs = [lr for lr, _ in built]
    grids = [curve_steps(lr, num_points) for lr in lrs]
    losses = predict_losses(model.law, model.params, lrs, grids, model.warmup)
    bands = _intervals(model, lrs, grids, level)
    forecasts = []
    for j, ((lr, spec), steps, loss) in enumerate(zip(built, grids, losses, strict=True)):
        if not np.all(np.isfinite(loss)):
            bad = int(np.flatnonzero(~np.isfinite(loss))[0])
            raise InvalidInput(
                f"schedules[{j}]: the law predicts a non-finite loss at step {int(steps[bad])}"
            )
        forecasts.append(
            ScheduleForecast(
                name=names[j] if names is not None else _default_name(spec, lr, j),
                rank=0,
                final_loss=float(loss[-1]),
                gap_to_best=0.0,
                total_steps=int(lr.size),
                warmup_end=warmup_steps_of(lr),
                steps=steps,
                loss=np.asarray(loss),
                lr=lr[steps],
                spec=spec,
                cost=scale.cost(lr.size),
                interval=bands[j] if bands else None,
            )
        )
    ranked = sorted(forecasts, key=lambda f: f.final_loss)
    for rank, forecast in enumerate(ranked, start=1):
        forecast.rank = rank
        forecast.gap_to_best = forecast.final_loss - ranked[0].final_loss
    return ranked


def _intervals(model: FittedLaw, lrs, grids, level) -> list[dict] | None:
    if model.uncertainty is None:
        return None
    from fitting.intervals import predict_intervals  # only fits with an uncertainty need it

    bands = predict_intervals(
        model.law, model.params, model.uncertainty, lrs, grids, model.warmup, level
    )
    return [
        {
            "level": level,
            "lower": band["lower"],
            "upper": band["upper"],
            "final": [float(band["lower"][-1]), float(band["upper"][-1])],
        }
        for band in bands
    ]


# ---------------------------------------------------------------------------------------------
# The frame of a schedule: what the cooldown search and the optimiser hold fixed.


def frame_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The peak, length, warmup and floor of a schedule spec, as keyword arguments of
    :func:`best_cooldown` and :func:`optimise_schedule`.

    The floor is the spec's ``min_lr`` (or ``end_value``, or ``min_lr_ratio`` times the peak);
    0 when it has none, as in :mod:`fitting.schedules`.

    >>> frame_of({"type": "cosine", "peak_lr": 3e-4, "total_steps": 24000,
    ...           "num_warmup_steps": 2160, "min_lr": 3e-5})["min_lr"]
    3e-05
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"schedule: requires a mapping, got {type(spec).__name__}")
    missing = [key for key in ("peak_lr", "total_steps") if key not in spec]
    if missing:
        raise InvalidInput(f"schedule: requires {missing} to plan a cooldown or optimise")
    peak = _finite("peak_lr", spec["peak_lr"])
    if "min_lr" in spec and spec["min_lr"] is not None:
        floor = _finite("min_lr", spec["min_lr"])
    elif "end_value" in spec and spec["end_value"] is not None:
        floor = _finite("end_value", spec["end_value"])
    elif "min_lr_ratio" in spec and spec["min_lr_ratio"] is not None:
        floor = _finite("min_lr_ratio", spec["min_lr_ratio"]) * peak
    else:
        floor = 0.0
    return {
        "peak_lr": peak,
        "total_steps": spec["total_steps"],
        "num_warmup_steps": spec.get("num_warmup_steps", 0),
        "warmup_init_value": spec.get("warmup_init_value", 0.0),
        "min_lr": floor,
    }


def _floor_of(peak_lr: float, min_lr: float | None, min_lr_ratio: float | None) -> float:
    if min_lr is not None and min_lr_ratio is not None:
        raise InvalidInput(f"give min_lr or min_lr_ratio, not both: {min_lr}, {min_lr_ratio}")
    if min_lr_ratio is not None:
        return _finite("min_lr_ratio", min_lr_ratio) * peak_lr
    return 0.0 if min_lr is None else _finite("min_lr", min_lr)


# ---------------------------------------------------------------------------------------------
# 2. Best cooldown of warmup-stable-decay.


@dataclass
class CooldownPlan:
    """Final loss of WSD at a fixed length over cooldown fractions and shapes.

    Attributes:
      total_steps: ``T``.
      fractions: the cooldown fractions of ``T`` tried (``decay_fraction``).
      final_loss: per shape (``decay_type``), the final loss at each fraction.
      best: the best shape and fraction: ``decay_type``, ``decay_fraction``,
        ``num_decay_steps``, ``final_loss``, ``spec``.
      near_optimal: per shape, ``[lowest, highest]`` fraction whose final loss is within
        ``tolerance`` of that shape's best (how flat the optimum is).
      tolerance: that tolerance, in loss.
      skipped_fractions: fractions left out because cooldown and warmup would overlap.
      notes: e.g. the optimum lies at the edge of the grid.
      cost: steps, tokens and FLOPs of the run.
    """

    total_steps: int
    fractions: list[float]
    final_loss: dict[str, list[float]]
    best: dict[str, Any]
    near_optimal: dict[str, list[float]]
    tolerance: float
    skipped_fractions: list[float]
    notes: list[str]
    cost: dict

    def planned(self) -> dict[str, Any]:
        """The best cooldown as the plan's answer (see :func:`planned_run`)."""
        best = self.best
        name = f"wsd, {best['decay_type']} cooldown over {best['decay_fraction']:g} of the steps"
        return planned_run(name, self.total_steps, best["final_loss"], best["spec"], self.cost)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _wsd(
    peak_lr, total_steps, num_warmup_steps, warmup_init_value, min_lr, fraction, decay_type
) -> dict:
    return {
        "type": "wsd",
        "peak_lr": peak_lr,
        "total_steps": int(total_steps),
        "num_warmup_steps": int(num_warmup_steps),
        "warmup_init_value": warmup_init_value,
        "min_lr": min_lr,
        "decay_fraction": float(fraction),
        "decay_type": decay_type,
    }


def best_cooldown(
    model: FittedLaw,
    *,
    peak_lr: float,
    total_steps: int,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    fractions: Sequence[float] = DEFAULT_COOLDOWN_FRACTIONS,
    decay_types: Sequence[str] = COOLDOWN_SHAPES,
    tolerance: float = NEAR_OPTIMAL_TOLERANCE,
    scale: TrainingScale | None = None,
) -> CooldownPlan:
    """The cooldown fraction and shape of WSD that minimise the predicted final loss at
    ``total_steps``, with the whole final-loss-versus-fraction curve of each shape.

    The schedules are ``wsd`` specs (warmup, stable at ``peak_lr``, cooldown over the last
    ``round(fraction * T)`` steps to ``min_lr``); all ``len(fractions) * len(decay_types)`` of
    them are evaluated in one batched call.

    Args:
      model: the fitted law.
      peak_lr, total_steps, num_warmup_steps, warmup_init_value: the frame, as in ``wsd``.
      min_lr, min_lr_ratio: the floor the cooldown ends on (default 0).
      fractions: cooldown fractions in ``[0, 1]``; those that would overlap the warmup are
        skipped (and listed).
      decay_types: ``wsd`` decay shapes.
      tolerance: the loss margin that defines :attr:`CooldownPlan.near_optimal`.
      scale: for the run's cost in tokens and FLOPs.

    Returns:
      A :class:`CooldownPlan`.
    """
    floor = _floor_of(peak_lr, min_lr, min_lr_ratio)
    frame = {"peak_lr": peak_lr, "total_steps": total_steps, "num_warmup_steps": num_warmup_steps}
    learning_rates({"type": "constant", **frame, "warmup_init_value": warmup_init_value})
    decay_types = list(dict.fromkeys(decay_types))
    if not decay_types:
        raise InvalidInput("decay_types must name at least one shape")
    grid = sorted({_finite("fractions", f) for f in fractions})
    if not grid or grid[0] < 0 or grid[-1] > 1:
        raise InvalidInput(f"fractions must be a non-empty list in [0, 1], got {list(fractions)}")
    if not tolerance >= 0:
        raise InvalidInput(f"tolerance must be >= 0, got tolerance={tolerance}")
    total = int(total_steps)
    kept = [f for f in grid if int(num_warmup_steps) + round(f * total) <= total]
    skipped = [f for f in grid if f not in kept]
    if not kept:
        raise InvalidInput(
            f"no cooldown fraction in {grid} fits after {num_warmup_steps} warmup steps of "
            f"total_steps={total_steps}"
        )
    specs = [
        _wsd(peak_lr, total, num_warmup_steps, warmup_init_value, floor, f, shape)
        for shape in decay_types
        for f in kept
    ]
    lrs = [
        _schedule_of(spec, f"wsd {spec['decay_type']} at {spec['decay_fraction']}")[0]
        for spec in specs
    ]
    losses = final_losses(model, lrs).reshape(len(decay_types), len(kept))
    if not np.all(np.isfinite(losses)):
        raise InvalidInput("the law predicts a non-finite final loss for some cooldown")
    i, j = np.unravel_index(np.argmin(losses), losses.shape)
    best_spec = specs[i * len(kept) + j]
    notes = []
    if kept[j] == kept[-1] and len(kept) > 1:
        notes.append(
            f"the best fraction is the largest tried ({kept[j]}): longer cooldowns may be better"
        )
    if kept[j] == kept[0] and len(kept) > 1:
        notes.append(f"the best fraction is the smallest tried ({kept[j]})")
    near = {}
    for k, shape in enumerate(decay_types):
        good = np.flatnonzero(losses[k] <= losses[k].min() + tolerance)
        near[shape] = [kept[good[0]], kept[good[-1]]]
    return CooldownPlan(
        total_steps=total,
        fractions=kept,
        final_loss={shape: losses[k].tolist() for k, shape in enumerate(decay_types)},
        best={
            "decay_type": decay_types[i],
            "decay_fraction": kept[j],
            "num_decay_steps": round(kept[j] * total),
            "final_loss": float(losses[i, j]),
            "spec": best_spec,
        },
        near_optimal=near,
        tolerance=float(tolerance),
        skipped_fractions=skipped,
        notes=notes,
        cost=(scale or TrainingScale()).cost(total),
    )


# ---------------------------------------------------------------------------------------------
# 3. Steps to a target loss, and the loss a budget buys.


@dataclass
class StepsToTarget:
    """The smallest length of a schedule family whose predicted final loss reaches a target.

    Attributes:
      target_loss: the target.
      reached: whether some length up to ``searched[1]`` reaches it.
      total_steps: the answer (None when not reached).
      final_loss: the predicted final loss at ``total_steps`` (or at ``searched[1]`` when not
        reached).
      spec: the family's spec at ``total_steps`` (or at ``searched[1]``).
      cost: steps, tokens and FLOPs of that run.
      searched: ``[shortest, longest]`` total steps considered.
      grid: the coarse search: ``{"total_steps": [...], "final_loss": [...]}``.
      monotone: whether the final loss fell (weakly) with every longer schedule of the grid;
        when not, the answer is the first crossing found.
      evaluations: schedules evaluated in all.
      message: how the search ended.
    """

    target_loss: float
    reached: bool
    total_steps: int | None
    final_loss: float
    spec: dict
    cost: dict
    searched: list[int]
    grid: dict[str, list]
    monotone: bool
    evaluations: int
    message: str

    def planned(self) -> dict[str, Any]:
        """The answer (or the longest length tried, when not reached) as the plan's answer."""
        name = f"{self.spec.get('type')} to loss {self.target_loss:g}"
        return planned_run(name, self.total_steps, self.final_loss, self.spec, self.cost)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _family_template(schedule: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(schedule, Mapping) or "type" not in schedule:
        raise InvalidInput("schedule: requires a spec mapping with a 'type'")
    if schedule["type"] in UNSCALABLE_TYPES:
        raise InvalidInput(
            f"schedule: a {schedule['type']!r} schedule has a fixed length; give a family whose "
            "length scales with total_steps (cosine, wsd with decay_fraction, constant, ...)"
        )
    return {key: value for key, value in schedule.items() if key != "total_steps"}


def _shortest(template: Mapping[str, Any]) -> int:
    """The shortest total_steps the family allows (warmup and a fixed cooldown fit)."""
    warmup = template.get("num_warmup_steps", 0) or 0
    decay = template.get("num_decay_steps", 0) or 0
    if not isinstance(warmup, numbers.Real) or not isinstance(decay, numbers.Real):
        return 1
    return max(1, int(warmup) + int(decay) + 1)


def _at_length(template: Mapping[str, Any], total: int) -> dict[str, Any]:
    return {**template, "total_steps": int(total)}


def steps_to_target(
    model: FittedLaw,
    schedule: Mapping[str, Any],
    target_loss: float,
    *,
    min_steps: int | None = None,
    max_steps: int | None = None,
    scale: TrainingScale | None = None,
) -> StepsToTarget:
    """The smallest ``total_steps`` of a schedule family whose predicted final loss is at most
    ``target_loss``.

    The family is ``schedule`` with ``total_steps`` replaced: everything else is held (peak,
    warmup steps, floor, ``decay_fraction`` -- a cooldown that scales with the run -- or
    ``num_decay_steps`` -- a fixed cooldown after a constant phase). The search evaluates
    :data:`SEARCH_POINTS` geometrically spaced lengths in one call, moving to longer ones
    (four times longer each time, up to ``max_steps``) until one reaches the target; then it
    narrows the bracket around the first crossing with batches of evenly spaced lengths, down to
    one step. Every call of a search shares one compiled kernel.

    Args:
      model: the fitted law.
      schedule: the family, a spec (its ``total_steps``, if any, is ignored).
      target_loss: the final loss to reach.
      min_steps: shortest length considered (default: the shortest the family allows).
      max_steps: longest length considered (default :data:`DEFAULT_MAX_STEPS`).
      scale: for the answer's cost in tokens and FLOPs.

    Returns:
      A :class:`StepsToTarget`; ``reached`` is False when even ``max_steps`` falls short.
    """
    target = _finite("target_loss", target_loss)
    template = _family_template(schedule)
    shortest = _shortest(template)
    lo = shortest if min_steps is None else int(min_steps)
    hi = min(DEFAULT_MAX_STEPS, MAX_TOTAL_STEPS) if max_steps is None else int(max_steps)
    if lo < 1 or hi > MAX_TOTAL_STEPS or lo > hi:
        raise InvalidInput(
            f"requires 1 <= min_steps <= max_steps <= {MAX_TOTAL_STEPS}, got min_steps={lo}, "
            f"max_steps={hi}"
        )
    scale = scale or TrainingScale()
    lrs_of = functools.partial(_family_lrs, template)
    evaluations = 0

    # Coarse: geometric grids over [start, upper], moving to lengths four times longer until
    # one reaches the target (each move compiles for the new length bucket, once).
    reference = schedule.get("total_steps")
    reference = int(reference) if isinstance(reference, numbers.Integral) else 0
    upper = min(hi, max(lo * 8, 2 * reference, lo + SEARCH_POINTS))
    start = lo
    totals_seen: list[int] = []
    losses_seen: list[float] = []
    while True:
        totals = _geometric(start, upper, SEARCH_POINTS)
        totals = totals[totals > start] if totals_seen else totals  # start was evaluated
        length = schedule_length_bucket(upper)
        losses = final_losses(model, lrs_of(totals), length, SEARCH_POINTS)
        evaluations += totals.size
        if not np.all(np.isfinite(losses)):
            bad = int(np.flatnonzero(~np.isfinite(losses))[0])
            raise InvalidInput(f"the law predicts a non-finite final loss at {totals[bad]} steps")
        totals_seen.extend(totals.tolist())
        losses_seen.extend(losses.tolist())
        below = np.flatnonzero(losses <= target)
        if below.size or upper >= hi:
            break
        start, upper = upper, min(hi, upper * 4)
    grid = {"total_steps": totals_seen, "final_loss": losses_seen}
    order = np.argsort(totals_seen, kind="stable")
    monotone = bool(np.all(np.diff(np.asarray(losses_seen)[order]) <= 1e-12))
    searched = [lo, int(max(totals_seen))]

    if not below.size:
        return StepsToTarget(
            target_loss=target,
            reached=False,
            total_steps=None,
            final_loss=float(losses[-1]),
            spec=_at_length(template, totals[-1]),
            cost=scale.cost(int(totals[-1])),
            searched=searched,
            grid=grid,
            monotone=monotone,
            evaluations=evaluations,
            message=(
                f"not reached: the predicted final loss at max_steps={int(totals[-1])} is "
                f"{losses[-1]:.5g} > target {target:.5g}"
            ),
        )

    first = int(below[0])
    if first == 0:  # only possible on the first grid, which starts at lo
        answer, answer_loss = int(totals[0]), float(losses[0])
        message = f"reached already at the shortest length considered ({answer} steps)"
    else:
        # Narrow (a, b]: a misses the target, b reaches it; the grid is padded as before.
        a, b, answer_loss = int(totals[first - 1]), int(totals[first]), float(losses[first])
        while b - a > 1:
            candidates = np.unique(np.linspace(a, b, SEARCH_POINTS + 2).round().astype(np.int64))
            candidates = candidates[(candidates > a) & (candidates < b)]
            losses = final_losses(model, lrs_of(candidates), length, SEARCH_POINTS)
            evaluations += candidates.size
            hit = np.flatnonzero(losses <= target)
            if hit.size:
                b, answer_loss = int(candidates[hit[0]]), float(losses[hit[0]])
                a = int(candidates[hit[0] - 1]) if hit[0] > 0 else a
            else:
                a = int(candidates[-1])
        answer = b
        message = f"reached: {answer} steps is the shortest length whose final loss <= target"
    return StepsToTarget(
        target_loss=target,
        reached=True,
        total_steps=answer,
        final_loss=answer_loss,
        spec=_at_length(template, answer),
        cost=scale.cost(answer),
        searched=searched,
        grid=grid,
        monotone=monotone,
        evaluations=evaluations,
        message=message,
    )


def _geometric(lo: int, hi: int, count: int) -> np.ndarray:
    return np.unique(np.geomspace(lo, hi, count).round().astype(np.int64))


def _family_lrs(template: Mapping[str, Any], totals: np.ndarray) -> list[np.ndarray]:
    lrs = []
    for total in totals:
        try:
            lrs.append(learning_rates(_at_length(template, int(total))))
        except (InvalidInput, TypeError) as error:
            raise InvalidInput(f"schedule at total_steps={int(total)}: {error}") from None
    return lrs


def loss_for_budget(
    model: FittedLaw,
    schedule: Mapping[str, Any],
    *,
    total_steps: int | None = None,
    tokens: float | None = None,
    flops: float | None = None,
    scale: TrainingScale | None = None,
    num_points: int = DEFAULT_NUM_POINTS,
    level: float = 0.9,
) -> ScheduleForecast:
    """The predicted curve and final loss a budget buys with a schedule family (the reverse of
    :func:`steps_to_target`).

    Args:
      model: the fitted law.
      schedule: the family, a spec (its ``total_steps``, if any, is replaced).
      total_steps, tokens, flops: the budget, exactly one; tokens and FLOPs are converted to
        steps (rounded up) with ``scale``.
      scale: tokens per step and model size.
      num_points, level: as for :func:`compare_schedules`.

    Returns:
      The :class:`ScheduleForecast` of the family at that length.
    """
    scale = scale or TrainingScale()
    budgets = {"total_steps": total_steps, "tokens": tokens, "flops": flops}
    given = [name for name, value in budgets.items() if value is not None]
    if len(given) != 1:
        raise InvalidInput(
            f"give exactly one of total_steps, tokens or flops, got {given or 'none'}"
        )
    if total_steps is None:
        total_steps = scale.steps_for(tokens=tokens, flops=flops)
    template = _family_template(schedule)
    spec = _at_length(template, total_steps)
    _schedule_of(spec, "schedule")  # a bad spec is reported as the request's schedule
    name = f"{template['type']}_{int(total_steps)}"
    return compare_schedules(
        model, [spec], [name], num_points=num_points, scale=scale, level=level
    )[0]


# ---------------------------------------------------------------------------------------------
# 4. The optimised schedule.


@dataclass
class OptimisedSchedule:
    """The per-step schedule that minimises the predicted final loss, and how it compares.

    Attributes:
      spec: the schedule as a ``piecewise`` spec (linear between the knots, the warmup ramp
        before them): ``learning_rates(spec)`` gives :attr:`lr` back exactly.
      lr: ``(T,)`` per-step rates.
      knot_steps, knot_lr: the knots.
      final_loss: its predicted final loss.
      baselines: ``{"cosine": {...}, "best_wsd": {...}}``, each with ``final_loss`` and ``spec``.
      gap_to_cosine, gap_to_best_wsd: ``final_loss`` minus theirs (negative: better).
      at_min_lr, at_peak: share of the steps after the warmup that sit on the floor / at the
        peak.
      constraints: the constraints the optimum sits on, each with ``name``, ``share`` of the
        steps on it, ``binding`` (the law's gradient pushes past it: without it the predicted
        loss would fall further) and a ``note``.
      converged, message, iterations, evaluations: the optimiser's account (best start).
      optimiser_seconds: time of the gradient descent (both starts, compilation included).
      seconds: total time, baselines included.
      cost: steps, tokens and FLOPs of the run.
    """

    spec: dict
    lr: np.ndarray
    knot_steps: list[int]
    knot_lr: list[float]
    final_loss: float
    baselines: dict[str, dict]
    gap_to_cosine: float
    gap_to_best_wsd: float
    at_min_lr: float
    at_peak: float
    constraints: list[dict]
    converged: bool
    message: str
    iterations: int
    evaluations: int
    optimiser_seconds: float
    seconds: float
    cost: dict

    @property
    def on_constraint(self) -> bool:
        return bool(self.constraints)

    def planned(self) -> dict[str, Any]:
        """The optimised schedule as the plan's answer (see :func:`planned_run`)."""
        return planned_run("optimised", int(self.lr.size), self.final_loss, self.spec, self.cost)

    def to_dict(self, include_lr: bool = False) -> dict:
        values = asdict(self)
        if not include_lr:
            values.pop("lr")
        return _jsonable(values)


@bounded_jit(static_argnums=0, name="plan.final_loss_and_gradient")
@count_traces("plan.final_loss_and_gradient")
def _final_loss_and_gradient(law: Law, params, lr, last_step, ramp_end):
    """The prediction at ``last_step`` and its gradient with respect to every rate (by the
    law's ``exact_predict`` when it has one: a descent needs a loss smooth in the rates)."""
    predict = law.exact_predict or law.predict

    def final(rates):
        return predict(params, rates, last_step[None], ramp_end)[0]

    return jax.value_and_grad(final)(lr)


class _KnotSchedule:
    """Per-step rates from knot decrements ``d`` (in units of ``peak - floor``):

    ``v_0 = peak``, ``v_k = max(floor, peak - (peak - floor) * sum_{j<=k} d_j)``, ``d >= 0``,
    linear between knots on steps ``W .. T-1`` after the fixed warmup ramp. So the schedule is
    non-increasing after the warmup, never above the peak and never below the floor, whatever
    ``d`` the optimiser tries within its bounds ``0 <= d_k <= 1``.
    """

    def __init__(self, ramp, peak, floor, total, warmup, num_knots):
        self.ramp, self.peak, self.floor, self.total, self.warmup = ramp, peak, floor, total, warmup
        self.span = peak - floor
        self.knots = np.unique(np.linspace(warmup, total - 1, num_knots + 1).round()).astype(
            np.int64
        )
        post = np.arange(warmup, total)
        self.index = np.clip(
            np.searchsorted(self.knots, post, side="right") - 1, 0, self.knots.size - 2
        )
        left, right = self.knots[self.index], self.knots[self.index + 1]
        self.weight = (post - left) / (right - left)

    @property
    def size(self) -> int:
        return self.knots.size - 1

    def values(self, d: np.ndarray) -> np.ndarray:
        drop = self.span * np.concatenate([[0.0], np.cumsum(d)])
        return np.maximum(self.peak - drop, self.floor)

    def rates(self, d: np.ndarray) -> np.ndarray:
        # np.interp, as the piecewise family computes it: flat stays exactly flat.
        post = np.interp(np.arange(self.warmup, self.total), self.knots, self.values(d))
        return np.concatenate([self.ramp, post])

    def decrements_of(self, lr: np.ndarray) -> np.ndarray:
        """The ``d`` whose knots sample ``lr`` (a non-increasing schedule after the warmup)."""
        v = np.clip(np.minimum.accumulate(lr[self.knots]), self.floor, self.peak)
        v[0] = self.peak
        return np.clip(-np.diff(v) / self.span, 0.0, 1.0)

    def pull_back(self, d: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """The gradient with respect to ``d`` from the gradient with respect to the rates."""
        g = gradient[self.warmup : self.total]
        size = self.knots.size
        g_v = np.bincount(self.index, g * (1 - self.weight), size) + np.bincount(
            self.index + 1, g * self.weight, size
        )
        free = self.peak - self.span * np.concatenate([[0.0], np.cumsum(d)]) > self.floor
        g_v = np.where(free, g_v, 0.0)
        return -self.span * np.cumsum(g_v[::-1])[::-1][1:]


def optimise_schedule(
    model: FittedLaw,
    *,
    peak_lr: float,
    total_steps: int,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_knots: int = DEFAULT_NUM_KNOTS,
    max_iterations: int = 1000,
    scale: TrainingScale | None = None,
) -> OptimisedSchedule:
    """The non-increasing schedule (after a fixed warmup ramp) with a fixed peak, length and
    floor that minimises the predicted final loss.

    The schedule is piecewise linear through ``num_knots + 1`` knots evenly spaced over steps
    ``W .. T - 1``, the first at ``peak_lr``; the free parameters are the knots' non-negative
    decrements (:class:`_KnotSchedule`). L-BFGS-B descends on the exact gradient of the law's
    final-loss prediction (JAX), from two starts -- the cosine and the best WSD of the same frame
    -- and keeps the better optimum.

    The constraints are what keeps the optimum meaningful. Both laws have degenerate optima: the
    LR-annealing law keeps lowering its prediction as the rate drops to 0 and stays there (its
    annealing term grows while the forward area stops), and for every law a larger peak looks
    better. So the length is fixed, the rate never exceeds ``peak_lr`` nor falls below the floor,
    and the result says in :attr:`OptimisedSchedule.constraints` when the optimum sits on one of
    them and whether the law would push past it.

    Args:
      model: the fitted law.
      peak_lr, total_steps, num_warmup_steps, warmup_init_value: the frame (the warmup ramp is
        that of every family in :mod:`fitting.schedules`).
      min_lr, min_lr_ratio: the floor (default 0).
      num_knots: knots after the warmup (fewer when the schedule is shorter).
      max_iterations: L-BFGS-B iterations per start.
      scale: for the run's cost in tokens and FLOPs.

    Returns:
      An :class:`OptimisedSchedule`.
    """
    began = time.perf_counter()
    floor = _floor_of(peak_lr, min_lr, min_lr_ratio)
    frame = {
        "peak_lr": peak_lr,
        "total_steps": total_steps,
        "num_warmup_steps": num_warmup_steps,
        "warmup_init_value": warmup_init_value,
    }
    cosine_spec = {"type": "cosine", **frame, "min_lr": floor}
    cosine = learning_rates(cosine_spec)  # checks the frame
    peak, total, warmup = float(peak_lr), int(total_steps), int(num_warmup_steps)
    if not floor < peak:
        raise InvalidInput(
            f"requires min_lr < peak_lr to optimise, got min_lr={floor}, peak_lr={peak}"
        )
    if total - warmup < 3:
        raise InvalidInput(f"requires at least 3 steps after the warmup, got {total - warmup}")
    if int(num_knots) < 1:
        raise InvalidInput(f"requires num_knots >= 1, got num_knots={num_knots}")
    cooldown = best_cooldown(model, **frame, min_lr=floor)
    best_wsd = learning_rates(cooldown.best["spec"])

    knots = _KnotSchedule(cosine[:warmup], peak, floor, total, warmup, int(num_knots))
    length = schedule_length_bucket(total)
    params = jnp.asarray([model.params[name] for name in model.law.names], dtype=jnp.float64)
    ramp_end = jnp.asarray(ramp_end_of(cosine, model.warmup))
    last = jnp.asarray(total - 1)

    def loss_and_rate_gradient(lr):
        value, gradient = _final_loss_and_gradient(
            model.law, params, jnp.asarray(pad_schedule(lr, length)), last, ramp_end
        )
        return float(value), np.asarray(gradient)

    def objective(d):
        value, gradient = loss_and_rate_gradient(knots.rates(d))
        return value, knots.pull_back(d, gradient)

    optimised = time.perf_counter()
    baseline_losses = {
        "cosine": loss_and_rate_gradient(cosine)[0],
        "best_wsd": loss_and_rate_gradient(best_wsd)[0],
    }
    best = None
    for start in (cosine, best_wsd):
        outcome = scipy.optimize.minimize(
            objective,
            knots.decrements_of(start),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * knots.size,
            options={"maxiter": int(max_iterations), "ftol": 1e-15, "gtol": 1e-10, "maxcor": 30},
        )
        if best is None or outcome.fun < best.fun:
            best = outcome
    optimiser_seconds = time.perf_counter() - optimised

    lr = knots.rates(best.x)
    final_loss, gradient = loss_and_rate_gradient(lr)
    values = knots.values(best.x)
    spec = {
        "type": "piecewise",
        "total_steps": total,
        "steps": knots.knots.tolist(),
        "values": values.tolist(),
        "num_warmup_steps": warmup,
        "warmup_init_value": warmup_init_value,
    }
    after = lr[warmup:]
    tol = 1e-9 * knots.span
    on_floor = after <= floor + tol
    on_peak = after >= peak - tol
    constraints = _constraints_met(on_floor, on_peak, gradient[warmup:total], floor, peak)
    converged, message = _converged(best, knots, objective)
    return OptimisedSchedule(
        spec=spec,
        lr=lr,
        knot_steps=knots.knots.tolist(),
        knot_lr=values.tolist(),
        final_loss=final_loss,
        baselines={
            "cosine": {"final_loss": baseline_losses["cosine"], "spec": cosine_spec},
            "best_wsd": {"final_loss": baseline_losses["best_wsd"], "spec": cooldown.best["spec"]},
        },
        gap_to_cosine=final_loss - baseline_losses["cosine"],
        gap_to_best_wsd=final_loss - baseline_losses["best_wsd"],
        at_min_lr=float(on_floor.mean()),
        at_peak=float(on_peak.mean()),
        constraints=constraints,
        converged=converged,
        message=message,
        iterations=int(best.nit),
        evaluations=int(best.nfev),
        optimiser_seconds=optimiser_seconds,
        seconds=time.perf_counter() - began,
        cost=(scale or TrainingScale()).cost(total),
    )


def _constraints_met(on_floor, on_peak, gradient, floor, peak) -> list[dict]:
    """The bounds the optimum sits on, and whether the law pushes past them (a positive
    gradient on the floor: a lower rate would lower the loss; a negative one at the peak)."""
    met = []
    if on_floor.any():
        binding = bool(np.sum(gradient[on_floor]) > 0)
        met.append(
            {
                "name": "min_lr",
                "share": float(on_floor.mean()),
                "binding": binding,
                "note": (
                    f"{on_floor.mean():.1%} of the steps after the warmup sit on the floor "
                    f"min_lr={floor:.3g}"
                    + (
                        "; the law would lower the loss further with a lower floor (the floor "
                        "is a constraint, not the law's optimum)"
                        if binding
                        else ""
                    )
                ),
            }
        )
    if on_peak.any():
        binding = bool(np.sum(gradient[on_peak]) < 0)
        met.append(
            {
                "name": "peak_lr",
                "share": float(on_peak.mean()),
                "binding": binding,
                "note": (
                    f"{on_peak.mean():.1%} of the steps after the warmup stay at the peak "
                    f"peak_lr={peak:.3g}"
                    + (
                        "; the law would lower the loss further with a higher peak (the peak "
                        "is fixed, not the law's optimum)"
                        if binding
                        else ""
                    )
                ),
            }
        )
    return met


def _converged(outcome, knots: _KnotSchedule, objective) -> tuple[bool, str]:
    """L-BFGS-B's verdict; a line-search failure is accepted when the projected gradient is
    negligible (the objective is flat to rounding there)."""
    message = str(outcome.message)
    if outcome.success:
        return True, message
    _, gradient = objective(outcome.x)
    projected = np.where(
        ((outcome.x <= 0) & (gradient > 0)) | ((outcome.x >= 1) & (gradient < 0)), 0.0, gradient
    )
    size = float(np.max(np.abs(projected), initial=0.0))
    if size <= 1e-7:
        return True, f"{message} (accepted: projected gradient {size:.1e})"
    return False, message


# ---------------------------------------------------------------------------------------------
# JSON.


def _jsonable(value: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value
