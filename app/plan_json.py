"""The JSON of the planner's records (:mod:`fitting.plan`), as ``POST /v1/plans`` and the CLI's
``losscast plan`` answer them: one conversion, so the two cannot drift.

A record becomes the dict of its fields, in their order and under their names (the wire's
names); arrays become lists, numpy scalars Python numbers, and non-finite floats None (JSON has
no NaN). No numerics here: the records hold the numbers.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app.domain import json_safe
from fitting.plan import ContinuationPlan, OptimisedSchedule

__all__ = ["continuation_json", "optimised_json", "record_json"]


def record_json(record: Any) -> dict[str, Any]:
    """A planner's record (a ``PlannedRun``, ``ScheduleForecast``, ``CooldownPlan``,
    ``StepsToTarget``) as JSON: every field under its name."""
    return json_safe(asdict(record))


def optimised_json(result: OptimisedSchedule, include_lr: bool = False) -> dict[str, Any]:
    """An :class:`~fitting.plan.OptimisedSchedule` as JSON; its per-step ``lr`` (one number per
    step: 24,000 for a 24k-step run) only when asked for."""
    values = asdict(result)
    if not include_lr:
        values.pop("lr")
    return json_safe(values)


def continuation_json(result: ContinuationPlan) -> dict[str, Any]:
    """A :class:`~fitting.plan.ContinuationPlan` as JSON, without its cost model (the plan's
    ``tokens_per_step`` and ``n_params`` say it)."""
    values = asdict(result)
    values.pop("scale")
    return json_safe(values)
