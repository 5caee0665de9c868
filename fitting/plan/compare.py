"""Compare candidate schedules under a fitted law: each one's predicted curve and final loss,
ranked, with a prediction band when the fit carries an uncertainty (:mod:`fitting.intervals`).

The **final loss** of a schedule of ``T`` steps is the prediction at step ``T - 1``. All
candidates go through one call of :func:`fitting.fit.predict_losses`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fitting.errors import InvalidInput
from fitting.fit import predict_losses
from fitting.intervals import DEFAULT_LEVEL
from fitting.plan.cost import TrainingScale
from fitting.plan.planned import PlannedRun
from fitting.predict import DEFAULT_NUM_POINTS, FittedLaw, curve_steps
from fitting.schedules import learning_rates, warmup_steps_of

__all__ = ["ScheduleForecast", "compare_schedules"]


def candidate_schedule(item: Mapping[str, Any] | np.ndarray | Sequence[float], where: str):
    """``(lr, spec)`` of a candidate given as a spec (``spec`` a copy of it) or as per-step
    rates (``spec`` None); a bad one is :class:`InvalidInput` that starts with ``where``."""
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


@dataclass(frozen=True)
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

    def planned(self) -> PlannedRun:
        """This run as the plan's answer."""
        spec = self.spec if self.spec is not None else {"type": "explicit"}
        return PlannedRun(self.name, self.total_steps, self.final_loss, spec, self.cost)


def compare_schedules(
    model: FittedLaw,
    schedules: Sequence[Mapping[str, Any] | np.ndarray | Sequence[float]],
    names: Sequence[str] | None = None,
    *,
    num_points: int = DEFAULT_NUM_POINTS,
    scale: TrainingScale | None = None,
    level: float = DEFAULT_LEVEL,
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
    built = [candidate_schedule(item, f"schedules[{j}]") for j, item in enumerate(schedules)]
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
    best = ranked[0].final_loss
    return [
        replace(forecast, rank=rank, gap_to_best=forecast.final_loss - best)
        for rank, forecast in enumerate(ranked, start=1)
    ]


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
