"""The run a plan recommends (or evaluates): one record for the answer of every planning question,
what a CI gate compares with a limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PlannedRun"]


@dataclass(frozen=True)
class PlannedRun:
    """The run a plan recommends (or evaluates), in one shape for every question.

    Attributes:
      name: what the run is (e.g. ``"cosine to loss 2.75"``).
      total_steps: its length ``T``; None when a target was not reached.
      final_loss: its predicted final loss (at step ``T - 1``).
      spec: its schedule, in :mod:`fitting.schedules`' vocabulary.
      cost: steps, tokens and FLOPs (:meth:`fitting.plan.TrainingScale.cost`).
    """

    name: str
    total_steps: int | None
    final_loss: float
    spec: dict[str, Any]
    cost: dict[str, float | int | None]
