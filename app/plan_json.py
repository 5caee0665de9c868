"""The JSON of the planner's records (:mod:`fitting.plan`), as ``POST /v1/plans`` and the CLI's
``losscast plan`` answer them: one conversion, so the two cannot drift.

A record becomes the dict of its fields, in their order and under their names (the wire's
names); arrays become lists, numpy scalars Python numbers, and non-finite floats None (JSON has
no NaN). No numerics here: the records hold the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from fitting.plan import OptimisedSchedule

__all__ = ["jsonable", "optimised_json", "record_json"]


def jsonable(value: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, non-finite floats to None.

    >>> jsonable({"loss": np.array([2.5, np.inf]), "steps": np.int64(3), "ok": np.bool_(True)})
    {'loss': [2.5, None], 'steps': 3, 'ok': True}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def record_json(record: Any) -> dict[str, Any]:
    """A planner's record (a ``PlannedRun``, ``ScheduleForecast``, ``CooldownPlan``,
    ``StepsToTarget``) as JSON: every field under its name."""
    return jsonable(asdict(record))


def optimised_json(result: OptimisedSchedule, include_lr: bool = False) -> dict[str, Any]:
    """An :class:`~fitting.plan.OptimisedSchedule` as JSON; its per-step ``lr`` (one number per
    step: 24,000 for a 24k-step run) only when asked for."""
    values = asdict(result)
    if not include_lr:
        values.pop("lr")
    return jsonable(values)
