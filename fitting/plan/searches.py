"""Searches over schedules under a fitted law: the best cooldown of warmup-stable-decay at a fixed
length, the fewest steps of a schedule family that reach a target loss, and the reverse, the
final loss a budget of steps, tokens or FLOPs buys.

The **final loss** of a schedule of ``T`` steps is the prediction at step ``T - 1``. A search
evaluates its candidates in batches through :func:`fitting.predict.final_losses`, every one
padded to one length and every batch to one count, so a whole search shares one compiled kernel.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitting.errors import InvalidInput, finite_number
from fitting.intervals import DEFAULT_LEVEL
from fitting.padding import schedule_length_bucket
from fitting.plan.compare import ScheduleForecast, candidate_schedule, compare_schedules
from fitting.plan.cost import TrainingScale
from fitting.plan.planned import PlannedRun
from fitting.predict import DEFAULT_NUM_POINTS, FittedLaw, final_losses
from fitting.schedules import MAX_TOTAL_STEPS, floor_rate, learning_rates

__all__ = [
    "COOLDOWN_SHAPES",
    "DEFAULT_COOLDOWN_FRACTIONS",
    "DEFAULT_MAX_STEPS",
    "NEAR_OPTIMAL_TOLERANCE",
    "SEARCH_POINTS",
    "CooldownPlan",
    "StepsToTarget",
    "best_cooldown",
    "frame_of",
    "loss_for_budget",
    "steps_to_target",
]

#: The cooldown shapes :func:`best_cooldown` compares (``decay_type`` of ``wsd``).
COOLDOWN_SHAPES = ("linear", "cosine", "1-sqrt")
#: Cooldown fractions of ``total_steps`` tried by default: 0, 0.02, ..., 0.5.
DEFAULT_COOLDOWN_FRACTIONS = tuple(round(0.02 * k, 2) for k in range(26))
#: A final loss within this of the best counts as "as good" (about the noise of a logged loss).
NEAR_OPTIMAL_TOLERANCE = 1e-3
#: Candidates evaluated per call of a steps-to-target search (grid and each refinement).
SEARCH_POINTS = 24
#: Longest schedule a steps-to-target search tries unless told otherwise.
DEFAULT_MAX_STEPS = 1_000_000
#: Families whose length cannot be scaled by changing ``total_steps`` alone.
UNSCALABLE_TYPES = ("explicit", "piecewise")


# ---------------------------------------------------------------------------------------------
# The frame of a schedule: what the cooldown search and the optimiser hold fixed.


def frame_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The peak, length, warmup and floor of a schedule spec, as keyword arguments of
    :func:`best_cooldown` and :func:`fitting.plan.optimise_schedule`.

    The floor is the spec's ``min_lr`` (or ``end_value``, or ``min_lr_ratio`` times the peak);
    0 when it has none (:func:`fitting.schedules.floor_rate`).

    >>> frame_of({"type": "cosine", "peak_lr": 3e-4, "total_steps": 24000,
    ...           "num_warmup_steps": 2160, "min_lr": 3e-5})["min_lr"]
    3e-05
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"schedule: requires a mapping, got {type(spec).__name__}")
    missing = [key for key in ("peak_lr", "total_steps") if key not in spec]
    if missing:
        raise InvalidInput(f"schedule: requires {missing} to plan a cooldown or optimise")
    peak = finite_number("peak_lr", spec["peak_lr"])
    floor = floor_rate(
        peak, spec.get("min_lr"), spec.get("min_lr_ratio"), spec.get("end_value"), "schedule"
    )
    return {
        "peak_lr": peak,
        "total_steps": spec["total_steps"],
        "num_warmup_steps": spec.get("num_warmup_steps", 0),
        "warmup_init_value": spec.get("warmup_init_value", 0.0),
        "min_lr": floor,
    }


# ---------------------------------------------------------------------------------------------
# The best cooldown of warmup-stable-decay.


@dataclass(frozen=True)
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

    def planned(self) -> PlannedRun:
        """The best cooldown as the plan's answer."""
        best = self.best
        name = f"wsd, {best['decay_type']} cooldown over {best['decay_fraction']:g} of the steps"
        return PlannedRun(name, self.total_steps, best["final_loss"], best["spec"], self.cost)


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
    ``total_steps``, with the whole final-loss-versus-fraction curve of each shape:
    ``argmin over (shape, f) of L(wsd(shape, f))``, ``L`` the prediction at step ``T - 1``.

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
    floor = floor_rate(peak_lr, min_lr, min_lr_ratio)
    frame = {"peak_lr": peak_lr, "total_steps": total_steps, "num_warmup_steps": num_warmup_steps}
    learning_rates({"type": "constant", **frame, "warmup_init_value": warmup_init_value})
    decay_types = list(dict.fromkeys(decay_types))
    if not decay_types:
        raise InvalidInput("decay_types must name at least one shape")
    grid = sorted({finite_number("fractions", f) for f in fractions})
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
        candidate_schedule(spec, f"wsd {spec['decay_type']} at {spec['decay_fraction']}")[0]
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
# Steps to a target loss, and the loss a budget buys.


@dataclass(frozen=True)
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

    def planned(self) -> PlannedRun:
        """The answer (or the longest length tried, when not reached) as the plan's answer."""
        name = f"{self.spec.get('type')} to loss {self.target_loss:g}"
        return PlannedRun(name, self.total_steps, self.final_loss, self.spec, self.cost)


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
    ``target_loss``: with ``L(T)`` the prediction at step ``T - 1`` of the family at length
    ``T``, ``T* = min {T in [min_steps, max_steps] : L(T) <= target_loss}`` (the first crossing
    found when ``L`` is not monotone).

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
    target = finite_number("target_loss", target_loss)
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
    level: float = DEFAULT_LEVEL,
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
    candidate_schedule(spec, "schedule")  # a bad spec is reported as the request's schedule
    name = f"{template['type']}_{int(total_steps)}"
    return compare_schedules(
        model, [spec], [name], num_points=num_points, scale=scale, level=level
    )[0]
