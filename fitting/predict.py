"""Predictions under a fitted law: the record of a law with its fitted parameters, the grid of a
predicted curve, and the final losses of many schedules at once.

:func:`fitting.fit.predict_losses` is the one kernel: every prediction here goes through it
(padded to shape buckets, one compiled kernel per law and bucket). This module adds what callers
of it need in bulk -- the planner's searches evaluate hundreds of schedules per question -- and
keeps one call's work bounded (:data:`ELEMENTS_PER_CALL`).

Conventions are :mod:`fitting.schedules`' (``lr[i]`` is the rate of update ``i``) and
:mod:`fitting.areas`' (the loss logged at step ``s`` has seen ``lr[0..s]``). Nothing here
imports web, storage or HTTP code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitting.errors import InvalidInput, finite_number
from fitting.fit import DEFAULT_WARMUP, WARMUP_TREATMENTS, FitResult, predict_losses
from fitting.laws import Law, get_law
from fitting.padding import pad_schedule, schedule_length_bucket
from fitting.schedules import warmup_steps_of

__all__ = [
    "DEFAULT_NUM_POINTS",
    "ELEMENTS_PER_CALL",
    "FittedLaw",
    "curve_steps",
    "final_losses",
]

#: Points of a predicted curve when none are asked for (the service's default too).
DEFAULT_NUM_POINTS = 300
#: (candidates) x (padded schedule length) evaluated in one call, to bound memory.
ELEMENTS_PER_CALL = 2**23


@dataclass(frozen=True)
class FittedLaw:
    """A law with fitted parameters: what a prediction, and every planning question, is made
    under.

    Attributes:
      law: a record of :data:`fitting.laws.LAWS` (or its name).
      params: natural parameter values by name (all of the law's, no others).
      warmup: the warmup treatment the parameters were fitted with ("include" or "exclude").
      uncertainty: optional :class:`fitting.intervals.Uncertainty` of the fit; when given,
        :func:`fitting.plan.compare_schedules` and :func:`fitting.plan.loss_for_budget` add
        prediction bands.

    Example:
      >>> params = {"L0": 2.396, "A": 0.6214, "alpha": 0.4614, "C": 0.8904, "decay": 0.99839}
      >>> FittedLaw("lr_annealing", params).law.name
      'lr_annealing'
      >>> FittedLaw("lr_annealing", params, warmup="both")
      Traceback (most recent call last):
      ...
      fitting.errors.InvalidInput: warmup must be one of ('exclude', 'include'), got warmup='both'
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
        params = {name: finite_number(f"params[{name!r}]", self.params[name]) for name in law.names}
        object.__setattr__(self, "law", law)
        object.__setattr__(self, "params", params)

    @classmethod
    def from_fit(cls, law: Law | str, result: FitResult, uncertainty: Any = None) -> FittedLaw:
        """The law as :func:`fitting.fit.fit_law` fitted it."""
        return cls(law, result.params, result.warmup, uncertainty)


def curve_steps(lr: np.ndarray, num_points: int = DEFAULT_NUM_POINTS) -> np.ndarray:
    """``num_points`` steps evenly spaced from the first step after the warmup ramp (or 1) to the
    last step ``T - 1``, duplicates removed (the grid of the service's predicted curves).

    With ``W`` the warmup ramp's end (:func:`fitting.schedules.warmup_steps_of`),
    ``first = min(W + 1 if W > 0 else 1, T - 1)`` and ``n = num_points``, the steps are
    ``round(first + k * (T - 1 - first) / (n - 1))`` for ``k = 0 .. n - 1``.

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
    """Predicted final loss of each per-step schedule: for schedule ``j`` of ``T_j`` steps,
    ``L_j = predict(params, lr_j)[T_j - 1]``.

    Every schedule is padded to ``length`` (default: the bucket of the longest) by repeating its
    last rate, which changes no prediction before its end (step ``s`` sees ``lr[0..s]`` only);
    with ``count``, every call holds exactly that many schedules (repeating the first). So the
    calls of a search, with one ``length`` and one ``count``, share one compiled kernel. Calls
    hold at most :data:`ELEMENTS_PER_CALL` rates; below that, all schedules go through one call
    of :func:`fitting.fit.predict_losses`.

    Args:
      model: the fitted law.
      schedules: per-step rates, one ``(T_j,)`` array per schedule.
      length: the padded schedule length of every call, at least ``max T_j``.
      count: the number of schedules of every call.

    Returns:
      ``(len(schedules),)`` float64 array.

    Example:
      >>> model = FittedLaw("lr_annealing",
      ...     {"L0": 2.396, "A": 0.6214, "alpha": 0.4614, "C": 0.8904, "decay": 0.99839})
      >>> constant = np.full(2000, 3e-4)
      >>> cooled = np.concatenate([constant[:1800], np.linspace(3e-4, 3e-5, 200)])
      >>> before, after = final_losses(model, [constant, cooled])
      >>> bool(after < before)  # a short cooldown lowers the final loss
      True
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
