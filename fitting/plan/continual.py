"""Planning a continuation (continual pre-training) under a continual law (``cpt``): for a budget
of steps from a base run's checkpoint, the re-warm peak, the decay shape and the replay share
that minimise the new domain's final loss, with what each costs on the old domain.

:func:`plan_continuation` evaluates a grid -- every peak x shape x replay share -- in one batch
(two histories per option, one per domain, :mod:`fitting.continual`), and returns the whole
trade-off: every option's final loss on both domains, which options are on the Pareto front
(no other option is lower on both), and the best one under an optional ceiling on the old
domain's final loss (without a ceiling: the lowest new-domain final).

A continuation of ``T`` steps re-warms linearly from the rate at the branch to ``peak_lr`` over
``num_warmup_steps`` updates, then follows its shape to the floor ``min_lr`` at ``T``:
``cosine``, ``linear``, ``wsd`` (constant, then a linear decay over the last 20%) or
``constant`` (no decay). Its rate ``j`` is that of update ``j + 1`` of the phase, as a run that
continues another declares it. The final loss of a domain is the prediction after the phase's
last update. Nothing here imports web, storage or HTTP code.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitting.continual import continual_schedule
from fitting.errors import InvalidInput
from fitting.laws import is_continual
from fitting.plan.cost import TrainingScale
from fitting.plan.planned import PlannedRun
from fitting.predict import FittedLaw, final_losses
from fitting.schedules import learning_rates

__all__ = [
    "CONTINUATION_SHAPES",
    "DEFAULT_REPLAYS",
    "ContinuationOption",
    "ContinuationPlan",
    "continuation_schedule",
    "default_peaks",
    "plan_continuation",
]

#: The decay shapes a continuation plan tries.
CONTINUATION_SHAPES = ("cosine", "linear", "wsd", "constant")
#: The replay shares a plan tries by default.
DEFAULT_REPLAYS = (0.0, 0.05, 0.1, 0.25)
#: The share of the phase a ``wsd`` continuation spends decaying.
WSD_DECAY_FRACTION = 0.2
#: Re-warm peaks tried by default: this many, log-spaced from the rate at the branch to the base
#: run's peak.
DEFAULT_PEAK_COUNT = 5


def default_peaks(base_lr: np.ndarray) -> list[float]:
    """Log-spaced peaks from the base's last rate (no re-warm) to its largest.

    >>> [round(p, 6) for p in default_peaks(np.array([3e-3, 3e-4]))]
    [0.0003, 0.000533, 0.000949, 0.001687, 0.003]
    """
    low, high = float(base_lr[-1]), float(np.max(base_lr))
    if not low > 0:
        raise InvalidInput(f"the base's rate at the branch must be > 0 to re-warm from, got {low}")
    return np.geomspace(low, max(high, low), DEFAULT_PEAK_COUNT).tolist()


def continuation_schedule(
    shape: str,
    peak_lr: float,
    total_steps: int,
    num_warmup_steps: int,
    start_lr: float,
    min_lr: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The rates of a continuation (see the module docstring) and their schedule spec.

    The spec's warmup holds ``num_warmup_steps + 1`` points from ``start_lr`` (the rate at the
    branch, already spent) to the peak; the phase's rates are its updates 1..T, so the first
    point is dropped.

    >>> lr, spec = continuation_schedule("cosine", 3e-3, 1000, 50, 3e-4, 3e-4)
    >>> [round(float(lr[i]), 6) for i in (0, 49, -1)], lr.size
    ([0.000354, 0.003, 0.0003], 1000)
    """
    if shape not in CONTINUATION_SHAPES:
        raise InvalidInput(f"shape must be one of {CONTINUATION_SHAPES}, got shape={shape!r}")
    if not 0 <= num_warmup_steps < total_steps:
        raise InvalidInput(
            f"num_warmup_steps must lie in [0, total_steps), got {num_warmup_steps} for "
            f"total_steps={total_steps}"
        )
    start = min(float(start_lr), float(peak_lr))
    floor = min(float(min_lr), float(peak_lr))
    spec: dict[str, Any] = {
        "type": shape,
        "peak_lr": float(peak_lr),
        "total_steps": int(total_steps) + 1,
        "num_warmup_steps": int(num_warmup_steps) + 1,
        "warmup_init_value": start,
    }
    if shape == "wsd":
        spec.update(decay_fraction=WSD_DECAY_FRACTION, decay_type="linear", min_lr=floor)
    elif shape == "linear":
        spec["end_value"] = floor
    elif shape == "cosine":
        spec["min_lr"] = floor
    return learning_rates(spec)[1:], spec


@dataclass(frozen=True)
class ContinuationOption:
    """One continuation of the grid and its predicted final losses.

    Attributes:
      peak_lr, shape, replay: the re-warm peak, the decay shape, the share of old data.
      new_final, old_final: the predicted final loss on the new and the old domain.
      pareto: no other option of the grid is at most as high on both domains and lower on one
        (of options with equal finals, the first).
      feasible: ``old_final`` is within the plan's ceiling (True without one).
      spec: the phase's schedule spec (its rate ``j`` is update ``j + 1``: see
        :func:`continuation_schedule`).
    """

    peak_lr: float
    shape: str
    replay: float
    new_final: float
    old_final: float
    pareto: bool
    feasible: bool
    spec: dict[str, Any]


@dataclass(frozen=True)
class ContinuationPlan:
    """The trade-off of a continuation budget (:func:`plan_continuation`).

    Attributes:
      total_steps: the phase's steps.
      num_warmup_steps: the re-warm's length.
      min_lr: the floor the decays end at.
      old_ceiling: the ceiling on the old domain's final loss, or None.
      options: every option of the grid, in grid order (peak, shape, replay).
      best: the option with the lowest new-domain final among the feasible ones (None: none is).
      pareto_front: the Pareto options, by increasing new-domain final (the curve to plot).
      note: why no option is best, or None.
    """

    total_steps: int
    num_warmup_steps: int
    min_lr: float
    old_ceiling: float | None
    options: tuple[ContinuationOption, ...]
    best: ContinuationOption | None
    pareto_front: tuple[ContinuationOption, ...]
    note: str | None
    scale: TrainingScale = TrainingScale()

    def planned(self) -> PlannedRun:
        chosen = self.best or min(self.options, key=lambda o: o.old_final)
        words = "" if self.best else " (no option meets the ceiling: the least forgetting)"
        name = (
            f"{chosen.shape} continuation, peak {chosen.peak_lr:.3g}, replay {chosen.replay:g}"
            f"{words}"
        )
        return PlannedRun(
            name, self.total_steps, chosen.new_final, chosen.spec, self.scale.cost(self.total_steps)
        )


def _pareto(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Whether each point is on the Pareto front of minimising both. Of points with equal
    values (e.g. every shape of a peak equal to the rate at the branch: one schedule), only the
    first is on it."""
    same = (new[None, :] == new[:, None]) & (old[None, :] == old[:, None])
    earlier = np.arange(new.size)[None, :] < np.arange(new.size)[:, None]
    dominated = (
        (new[None, :] <= new[:, None])
        & (old[None, :] <= old[:, None])
        & ((new[None, :] < new[:, None]) | (old[None, :] < old[:, None]))
    ) | (same & earlier)
    return ~dominated.any(axis=1)


def plan_continuation(
    model: FittedLaw,
    base_lr: np.ndarray,
    total_steps: int,
    *,
    peaks: Sequence[float] | None = None,
    shapes: Sequence[str] = CONTINUATION_SHAPES,
    replays: Sequence[float] = DEFAULT_REPLAYS,
    num_warmup_steps: int | None = None,
    min_lr: float | None = None,
    old_ceiling: float | None = None,
    scale: TrainingScale | None = None,
) -> ContinuationPlan:
    """The trade-off of continuing the base run whose rates up to the checkpoint are
    ``base_lr`` for ``total_steps`` steps (see the module docstring).

    Args:
      model: a fitted continual law (``cpt``).
      base_lr: the base run's rates ``lr[0 .. at_step]``.
      total_steps: the continuation's steps ``T``.
      peaks: re-warm peaks (default :func:`default_peaks`).
      shapes: decay shapes of :data:`CONTINUATION_SHAPES`.
      replays: shares of old data in ``[0, 1)``.
      num_warmup_steps: the re-warm's length (default 5% of ``T``).
      min_lr: the decays' floor (default the rate at the branch).
      old_ceiling: the most the old domain's final loss may be, or None.
      scale: what a step costs (for ``planned().cost``).
    """
    if not is_continual(model.law):
        raise InvalidInput(
            f"a continuation plan needs a continual law (cpt), got law {model.law.name!r}"
        )
    base_lr = np.asarray(base_lr, dtype=np.float64)
    if base_lr.ndim != 1 or base_lr.size == 0:
        raise InvalidInput("base_lr must be a non-empty 1-D array")
    total_steps = int(total_steps)
    if total_steps < 2:
        raise InvalidInput(f"total_steps must be >= 2, got total_steps={total_steps}")
    warmup = max(1, round(0.05 * total_steps)) if num_warmup_steps is None else num_warmup_steps
    start = float(base_lr[-1])
    floor = start if min_lr is None else float(min_lr)
    if not floor >= 0:
        raise InvalidInput(f"min_lr must be >= 0, got min_lr={floor}")
    peaks = default_peaks(base_lr) if peaks is None else [float(p) for p in peaks]
    if not peaks or not all(p > 0 for p in peaks):
        raise InvalidInput(f"peaks must be > 0, got {peaks}")
    if not replays or not all(0 <= r < 1 for r in replays):
        raise InvalidInput(f"replays must lie in [0, 1), got {list(replays)}")
    grid = list(itertools.product(peaks, dict.fromkeys(shapes), dict.fromkeys(replays)))
    schedules = {}
    histories = []
    for peak, shape, replay in grid:
        if (peak, shape) not in schedules:
            schedules[peak, shape] = continuation_schedule(
                shape, peak, total_steps, warmup, start, floor
            )
        lr = schedules[peak, shape][0]
        for domain in ("new", "old"):
            histories.append(continual_schedule(base_lr, lr, domain=domain, replay=replay))
    finals = final_losses(model, histories).reshape(len(grid), 2)
    new, old = finals[:, 0], finals[:, 1]
    if not np.all(np.isfinite(finals)):
        raise InvalidInput("the law predicts a non-finite final loss on this grid")
    on_front = _pareto(new, old)
    feasible = np.ones(len(grid), bool) if old_ceiling is None else old <= old_ceiling
    options = tuple(
        ContinuationOption(
            peak_lr=float(peak),
            shape=shape,
            replay=float(replay),
            new_final=float(new[i]),
            old_final=float(old[i]),
            pareto=bool(on_front[i]),
            feasible=bool(feasible[i]),
            spec=schedules[peak, shape][1],
        )
        for i, (peak, shape, replay) in enumerate(grid)
    )
    best, note = None, None
    if feasible.any():
        best = options[int(np.flatnonzero(feasible)[np.argmin(new[feasible])])]
    else:
        note = (
            f"no option keeps the old domain's final loss within {old_ceiling:g} (the lowest is "
            f"{float(old.min()):.4f}): planned is the option that forgets least"
        )
    front = tuple(sorted((o for o in options if o.pareto), key=lambda o: o.new_final))
    return ContinuationPlan(
        total_steps=total_steps,
        num_warmup_steps=int(warmup),
        min_lr=floor,
        old_ceiling=old_ceiling,
        options=options,
        best=best,
        pareto_front=front,
        note=note,
        scale=scale or TrainingScale(),
    )
