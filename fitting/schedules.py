"""Per-step learning-rate schedules: the ``lr[0..T-1]`` that every loss law in losscast reads.

A schedule arrives as a JSON-able spec such as ``{"type": "cosine", "peak_lr": 3e-4,
"total_steps": 24000, "num_warmup_steps": 2160, "min_lr": 3e-5}``; :func:`learning_rates`
turns it into a float64 array of shape ``(T,)``. Each family is one small builder
(``cosine_schedule(peak_lr, total_steps, ...)``) that checks its arguments when it is called and
returns a pure, vectorised function ``step -> lr`` over integer numpy arrays. The warmup ramp is
added by :func:`with_warmup`, never special-cased inside a family. :data:`SCHEDULE_TYPES` maps
each spec ``type`` to its builder, whose keyword names are the spec's keys.

Index convention (the one every family follows; it reproduces the schedules of Luo et al. 2025
in ``tests/data/mpl`` exactly):

* ``lr[i]`` is the rate used by update ``i``, ``i = 0 .. T-1``, ``T = total_steps``.
* Warmup occupies steps ``0 .. W-1`` (``W = num_warmup_steps``, default 0) and equals
  ``np.linspace(warmup_init_value, peak_lr, W)``, endpoint included: ``lr[W-1] = peak_lr``.
  (So ``W = 1`` is a single step at the peak, the same as no warmup.)
* The family then runs on steps ``W .. T-1`` with progress ``x = (i - W) / (T - W)``, so
  ``lr[W] = peak_lr``; e.g. cosine is ``lr[i] = min + (peak - min) (1 + cos(pi x)) / 2``. The last
  step has ``x = 1 - 1/(T - W)``: a family's end value (``min_lr``, ``end_value``) is its value at
  ``x = 1``, i.e. at step ``T``, which ``lr[T-1]`` approaches but does not reach.
* Families placed on absolute steps (``wsd``, ``multistep``, ``piecewise``) count steps from 0,
  warmup included. WSD is stable at the peak for ``W <= i < T - D`` and decays over the last
  ``D`` steps with ``x = (i - (T - D)) / D``. Fractions (``decay_fraction``, fractional
  ``milestones``) are fractions of ``T``, rounded to the nearest step.
* Schedule functions accept any step: progress is clipped to ``[0, 1]``, so a step ``>= T``
  returns the end value and a negative step the first value.

Spec vocabulary (names from optax and Hugging Face ``transformers``). Every family but
``explicit`` also takes ``num_warmup_steps`` (default 0) and ``warmup_init_value`` (default 0).
The floor is given as an absolute rate or as ``min_lr_ratio`` (a fraction of ``peak_lr``; optax
calls it ``alpha``, which is not accepted here). :func:`describe_schedule_types` lists each type's
parameters, required ones and defaults.

============================  ==================================================================
``constant``                  ``peak_lr, total_steps``
``linear``                    ``peak_lr, total_steps``; ``end_value`` | ``min_lr_ratio``
``cosine``                    ``peak_lr, total_steps``; ``min_lr`` | ``min_lr_ratio``
``wsd``                       ``peak_lr, total_steps, decay_fraction`` | ``num_decay_steps``;
                              ``decay_type``; ``min_lr`` | ``min_lr_ratio``
``multistep``                 ``peak_lr, total_steps, milestones, gamma`` | ``values``
``inverse_sqrt``              ``peak_lr, total_steps``; ``timescale``
``exponential``               ``peak_lr, total_steps, decay_rate``; ``transition_steps``,
                              ``staircase``, ``end_value``
``polynomial``                ``peak_lr, total_steps``; ``power``, ``end_value``
``cosine_with_restarts``      ``peak_lr, total_steps``; ``num_cycles``, ``cycle_decay``,
                              ``min_lr`` | ``min_lr_ratio``
``rex``                       ``peak_lr, total_steps``; ``min_lr`` | ``min_lr_ratio``
``piecewise``                 ``total_steps, steps, values``; ``interpolation``
``explicit``                  ``lr_per_step``
============================  ==================================================================

Host-side numpy only: a schedule array is built once per request, then handed to the jitted
code. Nothing here imports JAX, storage or web code.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fitting.errors import InvalidInput

__all__ = [
    "MAX_TOTAL_STEPS",
    "SCHEDULE_TYPES",
    "DECAY_TYPES",
    "Schedule",
    "constant_schedule",
    "cosine_schedule",
    "cosine_with_restarts_schedule",
    "describe_schedule_types",
    "explicit_schedule",
    "exponential_schedule",
    "inverse_sqrt_schedule",
    "learning_rates",
    "linear_schedule",
    "multistep_schedule",
    "piecewise_schedule",
    "polynomial_schedule",
    "rex_schedule",
    "schedule_length",
    "warmup_steps_of",
    "with_warmup",
    "wsd_schedule",
]

#: Longest schedule accepted, in steps: bounds the memory one request can ask for.
MAX_TOTAL_STEPS = 10_000_000

#: A schedule: a pure function from step indices (an integer array) to float64 rates.
Schedule = Callable[[ArrayLike], np.ndarray]

#: The decay shapes of ``wsd`` (``decay_type``).
DECAY_TYPES = ("linear", "cosine", "1-sqrt", "exponential")

# Relative tolerance of "reaches the maximum" in warmup_steps_of: a decay whose first value
# rounds one ulp above the end of the ramp must not move the answer by one step.
_PEAK_RTOL = 1e-12

# Words users bring from optax / transformers / torch, and the spelling used here.
_SYNONYMS = {
    "alpha": ("min_lr_ratio",),
    "min_lr_rate": ("min_lr_ratio",),
    "learning_rate": ("peak_lr",),
    "init_value": ("peak_lr",),
    "peak_value": ("peak_lr",),
    "lr": ("peak_lr",),
    "num_training_steps": ("total_steps",),
    "decay_steps": ("total_steps", "num_decay_steps"),
    "warmup_steps": ("num_warmup_steps",),
    "lr_end": ("end_value", "min_lr"),
    "end_value": ("min_lr",),
    "min_lr": ("end_value",),
    "boundaries": ("milestones", "steps"),
}
_TYPE_SYNONYMS = {
    "warmup_stable_decay": "wsd",
    "constant_with_warmup": "constant",
    "cosine_with_min_lr": "cosine",
    "multi_step": "multistep",
    "step": "multistep",
    "inverse_square_root": "inverse_sqrt",
    "exponential_decay": "exponential",
    "polynomial_decay": "polynomial",
    "cosine_restarts": "cosine_with_restarts",
    "piecewise_linear": "piecewise",
    "array": "explicit",
}


# --------------------------------------------------------------------------------------------
# Argument checks. Every message reads "<family>: requires <condition>, got <name>=<value>".


def _fail(family: str, requirement: str, **got: Any) -> InvalidInput:
    shown = ", ".join(f"{name}={value!r}" for name, value in got.items())
    return InvalidInput(f"{family}: requires {requirement}, got {shown}")


def _real(family: str, name: str, value: Any) -> float:
    """A finite real number (``bool`` and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(family, f"a real number {name}", **{name: value})
    value = float(value)
    if not math.isfinite(value):
        raise _fail(family, f"a finite {name}", **{name: value})
    return value


def _integer(family: str, name: str, value: Any, minimum: int) -> int:
    """An integer ``>= minimum``; integral floats such as ``24000.0`` (JSON) are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(family, f"integer {name} >= {minimum}", **{name: value})
    if not isinstance(value, numbers.Integral):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise _fail(family, f"integer {name} >= {minimum}", **{name: value})
    if value < minimum:
        raise _fail(family, f"integer {name} >= {minimum}", **{name: value})
    return int(value)


def _real_array(family: str, name: str, value: Any) -> np.ndarray:
    """A non-empty 1-D array of finite real numbers."""
    if isinstance(value, str | bytes | Mapping):
        raise _fail(family, f"{name} to be a list of numbers", **{name: value})
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
        shown = value if array.size <= 8 else f"<{array.dtype} array of shape {array.shape}>"
        raise _fail(family, f"{name} to be a non-empty list of numbers", **{name: shown})
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise _fail(family, f"finite {name}", **{f"{name}[{bad[0]}]": float(array[bad[0]])})
    return array


def _one_of(family: str, required: bool, **options: Any) -> tuple[str | None, Any]:
    """The one option that is not ``None``; at most one may be given (exactly one if required)."""
    given = {name: value for name, value in options.items() if value is not None}
    names = " or ".join(options)
    if len(given) > 1:
        raise _fail(family, f"only one of {names}", **given)
    if required and not given:
        raise InvalidInput(f"{family}: requires one of {names}, got none")
    return next(iter(given.items()), (None, None))


def _peak_total_warmup(
    family: str, peak_lr: Any, total_steps: Any, num_warmup_steps: Any
) -> tuple[float, int, int]:
    peak = _real(family, "peak_lr", peak_lr)
    if peak <= 0:
        raise _fail(family, "peak_lr > 0", peak_lr=peak)
    total = _total_steps(family, total_steps)
    warmup = _integer(family, "num_warmup_steps", num_warmup_steps, 0)
    if warmup >= total:
        raise _fail(
            family,
            "total_steps > num_warmup_steps",
            total_steps=total,
            num_warmup_steps=warmup,
        )
    return peak, total, warmup


def _total_steps(family: str, total_steps: Any) -> int:
    total = _integer(family, "total_steps", total_steps, 1)
    if total > MAX_TOTAL_STEPS:
        raise _fail(family, f"total_steps <= MAX_TOTAL_STEPS={MAX_TOTAL_STEPS}", total_steps=total)
    return total


def _floor(family: str, peak: float, absolute: str, absolute_value: Any, ratio: Any) -> float:
    """The rate a family decays to: ``absolute`` (``min_lr``/``end_value``) or a ratio of peak."""
    name, value = _one_of(family, False, **{absolute: absolute_value, "min_lr_ratio": ratio})
    if name is None:
        return 0.0
    value = _real(family, name, value)
    if name == "min_lr_ratio":
        if not 0 <= value <= 1:
            raise _fail(family, "min_lr_ratio in [0, 1]", min_lr_ratio=value)
        return value * peak
    if not 0 <= value <= peak:
        raise _fail(family, f"0 <= {name} <= peak_lr", **{name: value, "peak_lr": peak})
    return value


def floor_rate(
    peak_lr: float,
    min_lr: Any = None,
    min_lr_ratio: Any = None,
    end_value: Any = None,
    family: str = "schedule",
) -> float:
    """The rate a schedule decays to: ``min_lr`` (``end_value`` for ``linear``), or
    ``min_lr_ratio * peak_lr``, or 0; at most one of them, within ``[0, peak_lr]``. The one rule
    for every family here and for the planner's frames.

    >>> floor_rate(1e-3, min_lr_ratio=0.1), floor_rate(1e-3, min_lr=1e-5), floor_rate(1e-3)
    (0.0001, 1e-05, 0.0)
    """
    if min_lr is not None and end_value is not None:
        raise _fail(family, "only one of min_lr or end_value", min_lr=min_lr, end_value=end_value)
    absolute, value = ("end_value", end_value) if end_value is not None else ("min_lr", min_lr)
    return _floor(family, peak_lr, absolute, value, min_lr_ratio)


def _choice(family: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(family, f"{name} in {list(allowed)}", **{name: value})
    return value


# --------------------------------------------------------------------------------------------
# Shared pieces: progress, decay shapes, warmup.


def _progress(step: ArrayLike, start: int, length: int) -> np.ndarray:
    """``x = (step - start) / length`` clipped to ``[0, 1]``, float64."""
    return np.clip((np.asarray(step) - start) / length, 0.0, 1.0)


def _anneal(peak: float, floor: float, x: np.ndarray, decay_type: str) -> np.ndarray:
    """The decay shapes, from ``peak`` at ``x = 0`` to ``floor`` at ``x = 1``.

    .. math::

        \\text{linear: } m + (p - m)(1 - x) \\qquad
        \\text{cosine: } m + \\tfrac12 (p - m)(1 + \\cos \\pi x) \\qquad
        \\text{1-sqrt: } m + (p - m)(1 - \\sqrt{x}) \\qquad
        \\text{exponential: } p^{1 - x} m^{x}
    """
    if decay_type == "linear":
        return floor + (peak - floor) * (1.0 - x)
    if decay_type == "cosine":
        return floor + 0.5 * (peak - floor) * (1.0 + np.cos(np.pi * x))
    if decay_type == "1-sqrt":
        return floor + (peak - floor) * (1.0 - np.sqrt(x))
    if decay_type == "exponential":
        return peak ** (1.0 - x) * floor**x
    raise ValueError(f"unknown decay_type {decay_type!r}")  # builders check before this


def with_warmup(
    schedule: Schedule, peak_lr: float, num_warmup_steps: int, warmup_init_value: float = 0.0
) -> Schedule:
    """Replaces the first ``W`` steps of ``schedule`` by a linear ramp that ends at ``peak_lr``.

    .. math::

        \\eta_i = \\begin{cases}
            v_0 + (p - v_0)\\, \\dfrac{i}{W - 1} & 0 \\le i < W
                \\quad (\\text{so } \\eta_{W-1} = p) \\\\
            \\text{schedule}(i) & i \\ge W
        \\end{cases}

    The ramp is ``np.linspace(warmup_init_value, peak_lr, W)`` bit for bit when ``W >= 2``; a
    one-step ramp is the peak alone. ``schedule`` receives absolute steps and is expected to
    start at ``peak_lr`` at step ``W`` (every family here does).

    Args:
      schedule: the schedule after the warmup, a function of the absolute step.
      peak_lr: the rate the ramp ends on, at step ``W - 1``; ``> 0``.
      num_warmup_steps: ``W >= 0``; 0 returns ``schedule`` unchanged.
      warmup_init_value: the rate at step 0, in ``[0, peak_lr]``.

    Returns:
      The schedule with its warmup, ``step -> lr``.

    Example:
      >>> ramped = with_warmup(lambda step: np.full(np.shape(step), 1.0), 1.0, 5)
      >>> ramped(np.arange(7)).tolist()
      [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """
    peak = _real("warmup", "peak_lr", peak_lr)
    if peak <= 0:
        raise _fail("warmup", "peak_lr > 0", peak_lr=peak)
    warmup = _integer("warmup", "num_warmup_steps", num_warmup_steps, 0)
    init = _real("warmup", "warmup_init_value", warmup_init_value)
    if not 0 <= init <= peak:
        raise _fail("warmup", "0 <= warmup_init_value <= peak_lr", warmup_init_value=init)
    if warmup == 0:
        return schedule
    # np.linspace's own arithmetic (start + i * delta, exact stop), so the ramp matches it exactly.
    delta = (peak - init) / (warmup - 1) if warmup > 1 else 0.0

    def warmed_up(step: ArrayLike) -> np.ndarray:
        step = np.maximum(np.asarray(step), 0)
        ramp = np.where(step >= warmup - 1, peak, init + step * delta)
        return np.where(step < warmup, ramp, schedule(step)).astype(np.float64)

    return warmed_up


# --------------------------------------------------------------------------------------------
# The families. Each registers itself, with the groups of mutually exclusive parameters that
# describe_schedule_types reports.

#: The spec ``type`` of each family, mapped to its builder.
SCHEDULE_TYPES: dict[str, Callable[..., Schedule]] = {}
_EXCLUSIVE: dict[str, dict[str, list[list[str]]]] = {}


def _family(
    name: str,
    exactly_one_of: tuple[tuple[str, ...], ...] = (),
    at_most_one_of: tuple[tuple[str, ...], ...] = (),
) -> Callable[[Callable[..., Schedule]], Callable[..., Schedule]]:
    def register(builder: Callable[..., Schedule]) -> Callable[..., Schedule]:
        SCHEDULE_TYPES[name] = builder
        _EXCLUSIVE[name] = {
            "exactly_one_of": [list(group) for group in exactly_one_of],
            "at_most_one_of": [list(group) for group in at_most_one_of],
        }
        return builder

    return register


@_family("constant")
def constant_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Constant at the peak after the warmup.

    .. math:: \\eta_i = p \\qquad (W \\le i < T)

    Args:
      peak_lr: the rate ``p > 0``.
      total_steps: ``T``, the number of updates.
      num_warmup_steps: ``W < T`` (see :func:`with_warmup`).
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> constant_schedule(1.0, 6, num_warmup_steps=3)(np.arange(6)).tolist()
      [0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    """
    peak, _, _ = _peak_total_warmup("constant", peak_lr, total_steps, num_warmup_steps)

    def constant(step: ArrayLike) -> np.ndarray:
        return np.full(np.shape(step), peak)

    return with_warmup(constant, peak, num_warmup_steps, warmup_init_value)


@_family("linear", at_most_one_of=(("end_value", "min_lr_ratio"),))
def linear_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    end_value: float | None = None,
    min_lr_ratio: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Linear decay from the peak to ``end_value`` (0 unless given), as in transformers' linear.

    .. math:: \\eta_i = m + (p - m)(1 - x), \\qquad x = \\frac{i - W}{T - W}

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``; the decay reaches ``m`` at step ``T`` (one past the last).
      end_value: the floor ``m`` in ``[0, p]``; default 0.
      min_lr_ratio: or the floor as a fraction of ``p``, in ``[0, 1]``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> linear_schedule(1.0, 4, end_value=0.2)(np.arange(5)).round(6).tolist()
      [1.0, 0.8, 0.6, 0.4, 0.2]
    """
    peak, total, warmup = _peak_total_warmup("linear", peak_lr, total_steps, num_warmup_steps)
    floor = _floor("linear", peak, "end_value", end_value, min_lr_ratio)

    def linear(step: ArrayLike) -> np.ndarray:
        return _anneal(peak, floor, _progress(step, warmup, total - warmup), "linear")

    return with_warmup(linear, peak, warmup, warmup_init_value)


@_family("cosine", at_most_one_of=(("min_lr", "min_lr_ratio"),))
def cosine_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Half-cosine decay from the peak to ``min_lr`` (0 unless given).

    .. math:: \\eta_i = m + \\tfrac12 (p - m)\\bigl(1 + \\cos(\\pi x)\\bigr),
              \\qquad x = \\frac{i - W}{T - W}

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``; the decay reaches ``m`` at step ``T`` (one past the last).
      min_lr: the floor ``m`` in ``[0, p]``; default 0.
      min_lr_ratio: or the floor as a fraction of ``p`` (optax's ``alpha``), in ``[0, 1]``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> cosine_schedule(1.0, 4, min_lr_ratio=0.1)(np.arange(5)).round(6).tolist()
      [1.0, 0.868198, 0.55, 0.231802, 0.1]
    """
    peak, total, warmup = _peak_total_warmup("cosine", peak_lr, total_steps, num_warmup_steps)
    floor = _floor("cosine", peak, "min_lr", min_lr, min_lr_ratio)

    def cosine(step: ArrayLike) -> np.ndarray:
        return _anneal(peak, floor, _progress(step, warmup, total - warmup), "cosine")

    return with_warmup(cosine, peak, warmup, warmup_init_value)


@_family(
    "wsd",
    exactly_one_of=(("decay_fraction", "num_decay_steps"),),
    at_most_one_of=(("min_lr", "min_lr_ratio"),),
)
def wsd_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    decay_fraction: float | None = None,
    num_decay_steps: int | None = None,
    decay_type: str = "cosine",
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Warmup-stable-decay: constant at the peak, then a cooldown over the last ``D`` steps.

    .. math::

        \\eta_i = \\begin{cases} p & W \\le i < T - D \\\\
            \\text{decay}(x), \\; x = \\dfrac{i - (T - D)}{D} & T - D \\le i < T \\end{cases}

    with ``decay`` from :math:`p` at ``x = 0`` to :math:`m` at ``x = 1``: ``linear``
    :math:`m + (p - m)(1 - x)`, ``cosine`` :math:`m + \\frac12 (p - m)(1 + \\cos \\pi x)`,
    ``1-sqrt`` :math:`m + (p - m)(1 - \\sqrt{x})`, ``exponential`` :math:`p^{1-x} m^{x}`.

    Args:
      peak_lr: ``p > 0``.
      total_steps: ``T``.
      decay_fraction: the cooldown as a fraction of ``T`` in ``[0, 1]``
        (``D = round(decay_fraction * T)``), or
      num_decay_steps: the cooldown ``D`` in steps; one of the two is required, and
        ``W + D <= T``.
      decay_type: one of ``linear``, ``cosine`` (default, as transformers), ``1-sqrt``,
        ``exponential`` (needs ``m > 0``).
      min_lr: the floor ``m`` in ``[0, p]``; default 0.
      min_lr_ratio: or the floor as a fraction of ``p``, in ``[0, 1]``.
      num_warmup_steps: ``W``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> wsd = wsd_schedule(1.0, 6, num_decay_steps=2, decay_type="linear", min_lr=0.5)
      >>> wsd(np.arange(7)).tolist()
      [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5]
    """
    peak, total, warmup = _peak_total_warmup("wsd", peak_lr, total_steps, num_warmup_steps)
    name, value = _one_of(
        "wsd", True, decay_fraction=decay_fraction, num_decay_steps=num_decay_steps
    )
    if name == "decay_fraction":
        fraction = _real("wsd", "decay_fraction", value)
        if not 0 <= fraction <= 1:
            raise _fail("wsd", "decay_fraction in [0, 1]", decay_fraction=fraction)
        decay_steps = round(fraction * total)
    else:
        decay_steps = _integer("wsd", "num_decay_steps", value, 0)
    if warmup + decay_steps > total:
        raise _fail(
            "wsd",
            "num_warmup_steps + decay steps <= total_steps",
            num_warmup_steps=warmup,
            decay_steps=decay_steps,
            total_steps=total,
        )
    decay_type = _choice("wsd", "decay_type", decay_type, DECAY_TYPES)
    floor = _floor("wsd", peak, "min_lr", min_lr, min_lr_ratio)
    if decay_type == "exponential" and floor <= 0:
        raise _fail("wsd", "min_lr > 0 for decay_type='exponential'", min_lr=floor)
    decay_start = total - decay_steps

    def warmup_stable_decay(step: ArrayLike) -> np.ndarray:
        if decay_steps == 0:
            return np.full(np.shape(step), peak)
        x = _progress(step, decay_start, decay_steps)
        return np.where(np.asarray(step) < decay_start, peak, _anneal(peak, floor, x, decay_type))

    return with_warmup(warmup_stable_decay, peak, warmup, warmup_init_value)


@_family("multistep", exactly_one_of=(("gamma", "values"),))
def multistep_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    milestones: list[float],
    gamma: float | None = None,
    values: list[float] | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Piecewise constant: the peak, then a new rate after each milestone (e.g. DeepSeek's 8-1-1).

    .. math:: \\eta_i = v_k \\quad\\text{for } s_k \\le i < s_{k+1}, \\qquad
              v_0 = p,\\; s_0 = W,\\; s_{n+1} = T,
              \\qquad v_k = p\\,\\gamma^k \\text{ or } v_k = \\text{values}[k - 1]

    Args:
      peak_lr: ``p = v_0 > 0``.
      total_steps: ``T``.
      milestones: ``s_1 < ... < s_n``, the steps at which the rate changes: all integer steps,
        or all fractions of ``T`` in ``(0, 1)`` (``s_k = round(f_k * T)``);
        ``max(1, W) <= s_1`` and ``s_n < T``.
      gamma: the factor in ``[0, 1]`` applied at each milestone, or
      values: the rate after each milestone, one per milestone, each in ``[0, p]``; exactly one
        of ``gamma`` and ``values`` is required.
      num_warmup_steps: ``W``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> eight_one_one = multistep_schedule(1.0, 10, milestones=[0.8, 0.9], gamma=0.5)
      >>> eight_one_one(np.arange(10)).tolist()
      [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.25]
    """
    peak, total, warmup = _peak_total_warmup("multistep", peak_lr, total_steps, num_warmup_steps)
    raw = _real_array("multistep", "milestones", milestones)
    if np.all((raw > 0) & (raw < 1)):
        steps = np.round(raw * total).astype(np.int64)
    elif np.all((raw >= 1) & (raw == np.round(raw))):
        steps = raw.astype(np.int64)
    else:
        raise _fail(
            "multistep",
            "milestones to be all integer steps >= 1 or all fractions in (0, 1)",
            milestones=raw.tolist(),
        )
    if np.any(np.diff(steps) <= 0) or steps[0] < max(warmup, 1) or steps[-1] >= total:
        raise _fail(
            "multistep",
            "milestones (as steps) strictly increasing, >= max(1, num_warmup_steps), < total_steps",
            milestones=steps.tolist(),
            num_warmup_steps=warmup,
            total_steps=total,
        )
    name, value = _one_of("multistep", True, gamma=gamma, values=values)
    if name == "gamma":
        factor = _real("multistep", "gamma", value)
        if not 0 <= factor <= 1:
            raise _fail("multistep", "gamma in [0, 1]", gamma=factor)
        stage_lrs = peak * factor ** np.arange(steps.size + 1)
    else:
        after = _real_array("multistep", "values", value)
        if after.size != steps.size:
            raise _fail(
                "multistep",
                "one value per milestone",
                values=after.tolist(),
                milestones=steps.tolist(),
            )
        if np.any(after < 0) or np.any(after > peak):
            raise _fail("multistep", "values in [0, peak_lr]", values=after.tolist(), peak_lr=peak)
        stage_lrs = np.concatenate([[peak], after])

    def multistep(step: ArrayLike) -> np.ndarray:
        return stage_lrs[np.searchsorted(steps, np.asarray(step), side="right")]

    return with_warmup(multistep, peak, warmup, warmup_init_value)


@_family("inverse_sqrt")
def inverse_sqrt_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    timescale: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Inverse square root decay after the warmup, as transformers' ``inverse_sqrt``.

    .. math:: \\eta_i = \\frac{p}{\\sqrt{1 + (i - W) / \\tau}}

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``.
      timescale: ``tau > 0``; default ``W``, or 10 000 when there is no warmup.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> inverse_sqrt_schedule(1.0, 9, timescale=1)(np.array([0, 3, 8])).tolist()
      [1.0, 0.5, 0.3333333333333333]
    """
    peak, _, warmup = _peak_total_warmup("inverse_sqrt", peak_lr, total_steps, num_warmup_steps)
    if timescale is None:
        tau = float(warmup or 10_000)
    else:
        tau = _real("inverse_sqrt", "timescale", timescale)
        if tau <= 0:
            raise _fail("inverse_sqrt", "timescale > 0", timescale=tau)

    def inverse_sqrt(step: ArrayLike) -> np.ndarray:
        since = np.maximum(np.asarray(step) - warmup, 0)
        return peak / np.sqrt(1.0 + since / tau)

    return with_warmup(inverse_sqrt, peak, warmup, warmup_init_value)


@_family("exponential")
def exponential_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    decay_rate: float,
    transition_steps: int = 1,
    staircase: bool = False,
    end_value: float = 0.0,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Exponential decay by ``decay_rate`` every ``transition_steps``, as optax's, with a floor.

    .. math:: \\eta_i = \\max\\bigl(p\\, r^{(i - W)/K},\\; e\\bigr)
              \\qquad (\\lfloor (i - W)/K \\rfloor \\text{ if staircase})

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``.
      decay_rate: ``r`` in ``(0, 1]``.
      transition_steps: ``K >= 1``.
      staircase: decay in whole steps of ``K`` rather than continuously.
      end_value: the floor ``e`` in ``[0, p]``; default 0 (none).
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> halving = exponential_schedule(1.0, 8, decay_rate=0.5, transition_steps=2, end_value=0.2)
      >>> halving(np.arange(8)).round(6).tolist()
      [1.0, 0.707107, 0.5, 0.353553, 0.25, 0.2, 0.2, 0.2]
    """
    peak, _, warmup = _peak_total_warmup("exponential", peak_lr, total_steps, num_warmup_steps)
    rate = _real("exponential", "decay_rate", decay_rate)
    if not 0 < rate <= 1:
        raise _fail("exponential", "decay_rate in (0, 1]", decay_rate=rate)
    every = _integer("exponential", "transition_steps", transition_steps, 1)
    if not isinstance(staircase, bool | np.bool_):
        raise _fail("exponential", "a boolean staircase", staircase=staircase)
    floor = _real("exponential", "end_value", end_value)
    if not 0 <= floor <= peak:
        raise _fail("exponential", "0 <= end_value <= peak_lr", end_value=floor, peak_lr=peak)

    def exponential(step: ArrayLike) -> np.ndarray:
        exponent = np.maximum(np.asarray(step) - warmup, 0) / every
        if staircase:
            exponent = np.floor(exponent)
        return np.maximum(peak * rate**exponent, floor)

    return with_warmup(exponential, peak, warmup, warmup_init_value)


@_family("polynomial")
def polynomial_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    power: float = 1.0,
    end_value: float = 0.0,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Polynomial decay from the peak to ``end_value``, as optax's / transformers'.

    .. math:: \\eta_i = e + (p - e)(1 - x)^{\\,k}, \\qquad x = \\frac{i - W}{T - W}

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``; the decay reaches ``e`` at step ``T`` (one past the last).
      power: ``k > 0``; 1 is linear.
      end_value: the floor ``e`` in ``[0, p]``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> polynomial_schedule(1.0, 4, power=2.0)(np.arange(5)).tolist()
      [1.0, 0.5625, 0.25, 0.0625, 0.0]
    """
    peak, total, warmup = _peak_total_warmup("polynomial", peak_lr, total_steps, num_warmup_steps)
    exponent = _real("polynomial", "power", power)
    if exponent <= 0:
        raise _fail("polynomial", "power > 0", power=exponent)
    floor = _real("polynomial", "end_value", end_value)
    if not 0 <= floor <= peak:
        raise _fail("polynomial", "0 <= end_value <= peak_lr", end_value=floor, peak_lr=peak)

    def polynomial(step: ArrayLike) -> np.ndarray:
        x = _progress(step, warmup, total - warmup)
        return floor + (peak - floor) * (1.0 - x) ** exponent

    return with_warmup(polynomial, peak, warmup, warmup_init_value)


@_family("cosine_with_restarts", at_most_one_of=(("min_lr", "min_lr_ratio"),))
def cosine_with_restarts_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    num_cycles: int = 1,
    cycle_decay: float = 1.0,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """``num_cycles`` equal cosine cycles (hard restarts), each peak ``cycle_decay`` times the last.

    .. math::

        \\eta_i = m + \\tfrac12 (p\\, d^{c} - m)\\bigl(1 + \\cos(\\pi y)\\bigr),\\qquad
        c = \\min(\\lfloor N x \\rfloor, N - 1),\\; y = N x - c,\\; x = \\frac{i - W}{T - W}

    Args:
      peak_lr: ``p > 0``, the first cycle's peak (at step ``W``).
      total_steps: ``T``.
      num_cycles: ``N >= 1``; 1 is the plain cosine.
      cycle_decay: ``d`` in ``(0, 1]``, the peak's factor from one cycle to the next.
      min_lr: the floor ``m``, at most the last cycle's peak ``p d^(N-1)``; default 0.
      min_lr_ratio: or the floor as a fraction of ``p``, in ``[0, 1]``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> restarts = cosine_with_restarts_schedule(1.0, 8, num_cycles=2, cycle_decay=0.5)
      >>> restarts(np.arange(8)).round(6).tolist()
      [1.0, 0.853553, 0.5, 0.146447, 0.5, 0.426777, 0.25, 0.073223]
    """
    family = "cosine_with_restarts"
    peak, total, warmup = _peak_total_warmup(family, peak_lr, total_steps, num_warmup_steps)
    cycles = _integer(family, "num_cycles", num_cycles, 1)
    decay = _real(family, "cycle_decay", cycle_decay)
    if not 0 < decay <= 1:
        raise _fail(family, "cycle_decay in (0, 1]", cycle_decay=decay)
    floor = _floor(family, peak, "min_lr", min_lr, min_lr_ratio)
    last_peak = peak * decay ** (cycles - 1)
    if floor > last_peak:
        raise _fail(
            family,
            "the floor <= the last cycle's peak peak_lr * cycle_decay**(num_cycles - 1)",
            floor=floor,
            last_peak=last_peak,
        )

    def cosine_with_restarts(step: ArrayLike) -> np.ndarray:
        x = _progress(step, warmup, total - warmup) * cycles
        cycle = np.minimum(np.floor(x), cycles - 1)
        cycle_peak = peak * decay**cycle
        return floor + 0.5 * (cycle_peak - floor) * (1.0 + np.cos(np.pi * (x - cycle)))

    return with_warmup(cosine_with_restarts, peak, warmup, warmup_init_value)


@_family("rex", at_most_one_of=(("min_lr", "min_lr_ratio"),))
def rex_schedule(
    peak_lr: float,
    total_steps: int,
    *,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """REX (Chen et al. 2021, "REX: Revisiting Budgeted Training with an Improved Schedule").

    .. math:: \\eta_i = m + (p - m)\\,\\frac{1 - x}{\\tfrac12 + \\tfrac12 (1 - x)},
              \\qquad x = \\frac{i - W}{T - W}

    Args:
      peak_lr: ``p > 0``, the rate at step ``W``.
      total_steps: ``T``; the decay reaches ``m`` at step ``T`` (one past the last).
      min_lr: the floor ``m`` in ``[0, p]``; default 0 (the paper's schedule).
      min_lr_ratio: or the floor as a fraction of ``p``, in ``[0, 1]``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> rex_schedule(1.0, 4)(np.arange(5)).round(6).tolist()
      [1.0, 0.857143, 0.666667, 0.4, 0.0]
    """
    peak, total, warmup = _peak_total_warmup("rex", peak_lr, total_steps, num_warmup_steps)
    floor = _floor("rex", peak, "min_lr", min_lr, min_lr_ratio)

    def rex(step: ArrayLike) -> np.ndarray:
        remaining = 1.0 - _progress(step, warmup, total - warmup)
        return floor + (peak - floor) * remaining / (0.5 + 0.5 * remaining)

    return with_warmup(rex, peak, warmup, warmup_init_value)


@_family("piecewise")
def piecewise_schedule(
    total_steps: int,
    *,
    steps: list[int],
    values: list[float],
    interpolation: str = "linear",
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
) -> Schedule:
    """Through given points ``(steps[k], values[k])``, flat outside them.

    .. math::

        \\text{linear: } \\eta_i = v_k + (v_{k+1} - v_k)\\frac{i - s_k}{s_{k+1} - s_k}
        \\qquad \\text{step: } \\eta_i = v_k \\qquad (s_k \\le i < s_{k+1})

    Args:
      total_steps: ``T``.
      steps: ``s_0 < s_1 < ...``, integer steps in ``[W, T]``.
      values: ``v_k >= 0``, one per step, not all 0 (and ``v_0 > 0`` when there is a warmup,
        which ramps to ``v_0``).
      interpolation: ``linear`` or ``step``.
      num_warmup_steps: ``W < T``.
      warmup_init_value: the rate at step 0 when ``W > 0``, at most ``v_0``.

    Returns:
      ``step -> lr``.

    Example:
      >>> points = piecewise_schedule(6, steps=[1, 3], values=[1.0, 0.5])
      >>> points(np.arange(6)).tolist()
      [1.0, 1.0, 0.75, 0.5, 0.5, 0.5]
    """
    total = _total_steps("piecewise", total_steps)
    warmup = _integer("piecewise", "num_warmup_steps", num_warmup_steps, 0)
    if warmup >= total:
        raise _fail(
            "piecewise",
            "total_steps > num_warmup_steps",
            total_steps=total,
            num_warmup_steps=warmup,
        )
    points = _real_array("piecewise", "steps", steps)
    if np.any(points != np.round(points)) or np.any(np.diff(points) <= 0):
        raise _fail("piecewise", "strictly increasing integer steps", steps=points.tolist())
    if points[0] < warmup or points[-1] > total:
        raise _fail(
            "piecewise",
            "num_warmup_steps <= steps <= total_steps",
            steps=points.tolist(),
            num_warmup_steps=warmup,
            total_steps=total,
        )
    rates = _real_array("piecewise", "values", values)
    if rates.size != points.size:
        raise _fail("piecewise", "one value per step", values=rates.tolist(), steps=points.tolist())
    if np.any(rates < 0) or not np.any(rates > 0):
        raise _fail("piecewise", "values >= 0, not all 0", values=rates.tolist())
    interpolation = _choice("piecewise", "interpolation", interpolation, ("linear", "step"))
    if warmup and rates[0] <= 0:
        raise _fail("piecewise", "values[0] > 0 to warm up to", **{"values[0]": rates[0]})

    def piecewise(step: ArrayLike) -> np.ndarray:
        step = np.asarray(step)
        if interpolation == "linear":
            return np.interp(step, points, rates)
        return rates[np.maximum(np.searchsorted(points, step, side="right") - 1, 0)]

    return with_warmup(piecewise, float(rates[0]), warmup, warmup_init_value)


@_family("explicit")
def explicit_schedule(lr_per_step: ArrayLike) -> Schedule:
    """A given per-step array, used as is (its own warmup included).

    .. math:: \\eta_i = \\text{lr\\_per\\_step}[i] \\qquad (0 \\le i < T = \\text{len})

    Args:
      lr_per_step: ``T`` rates, ``1 <= T <= MAX_TOTAL_STEPS``, finite, ``>= 0``, not all 0.

    Returns:
      ``step -> lr``; steps outside ``[0, T)`` take the nearest end's rate.

    Example:
      >>> explicit_schedule([0.5, 1.0, 0.25])(np.arange(4)).tolist()
      [0.5, 1.0, 0.25, 0.25]
    """
    rates = _real_array("explicit", "lr_per_step", lr_per_step)
    if rates.size > MAX_TOTAL_STEPS:
        raise _fail(
            "explicit",
            f"len(lr_per_step) <= MAX_TOTAL_STEPS={MAX_TOTAL_STEPS}",
            **{"len(lr_per_step)": rates.size},
        )
    if np.any(rates < 0):
        first = int(np.argmax(rates < 0))
        raise _fail("explicit", "lr_per_step >= 0", **{f"lr_per_step[{first}]": rates[first]})
    if not np.any(rates > 0):
        raise _fail("explicit", "some lr_per_step > 0", lr_per_step="all zeros")
    rates.setflags(write=False)

    def explicit(step: ArrayLike) -> np.ndarray:
        return rates[np.clip(np.asarray(step), 0, rates.size - 1)]

    return explicit


# --------------------------------------------------------------------------------------------
# The entry points used by the rest of losscast.


def _hint(name: str, known: list[str]) -> str:
    for candidate in _SYNONYMS.get(name, ()):
        if candidate in known:
            return f" (did you mean {candidate!r}?)"
    return ""


def learning_rates(spec: Mapping[str, Any]) -> np.ndarray:
    """The per-step learning rates ``lr[0..T-1]`` described by ``spec``.

    Args:
      spec: a JSON-able mapping with ``"type"`` (a key of :data:`SCHEDULE_TYPES`) and that
        builder's keyword arguments, e.g. ``{"type": "cosine", "peak_lr": 3e-4,
        "total_steps": 24000, "num_warmup_steps": 2160, "min_lr": 3e-5}`` or
        ``{"type": "explicit", "lr_per_step": [...]}``.

    Returns:
      float64 array of shape ``(T,)``, finite and non-negative.

    Raises:
      InvalidInput: unknown type, unknown or missing parameter, or an invalid value; the message
        names it.

    Example:
      >>> learning_rates({"type": "cosine", "peak_lr": 1.0, "total_steps": 6,
      ...                 "num_warmup_steps": 2}).round(6).tolist()
      [0.0, 1.0, 1.0, 0.853553, 0.5, 0.146447]
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"schedule spec: requires a mapping, got {type(spec).__name__}")
    if "type" not in spec:
        raise InvalidInput(f"schedule spec: requires 'type', one of {sorted(SCHEDULE_TYPES)}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in SCHEDULE_TYPES:
        suggestion = _TYPE_SYNONYMS.get(kind) if isinstance(kind, str) else None
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise InvalidInput(
            f"schedule spec: unknown type {kind!r}{hint}; known: {sorted(SCHEDULE_TYPES)}"
        )
    builder = SCHEDULE_TYPES[kind]
    params = {name: value for name, value in spec.items() if name != "type"}
    signature = inspect.signature(builder).parameters
    known = list(signature)
    for name in params:
        if name not in signature:
            raise InvalidInput(
                f"{kind}: unknown parameter {name!r}{_hint(name, known)}; known: {known}"
            )
    missing = [
        name
        for name, parameter in signature.items()
        if parameter.default is inspect.Parameter.empty and name not in params
    ]
    if missing:
        raise InvalidInput(f"{kind}: missing required parameter(s) {missing}")
    schedule = builder(**params)
    total = len(params["lr_per_step"]) if kind == "explicit" else int(params["total_steps"])
    lr = np.asarray(schedule(np.arange(total)), dtype=np.float64)
    if not np.all(np.isfinite(lr) & (lr >= 0)):  # e.g. an overflow in an extreme spec
        raise InvalidInput(f"{kind}: the schedule has non-finite or negative rates for {params}")
    return lr


def schedule_length(spec: Any) -> int:
    """The length ``T`` a spec declares -- ``len(lr_per_step)`` for ``explicit``, else its
    ``total_steps`` -- without building it, so that a caller can refuse a request that is too
    large before any work. 0 when the spec declares no readable length (then
    :func:`learning_rates` refuses it, at no cost either).

    >>> schedule_length({"type": "cosine", "peak_lr": 1.0, "total_steps": 10_000_000})
    10000000
    """
    if not isinstance(spec, Mapping):
        return 0
    if spec.get("type") == "explicit":
        rates = spec.get("lr_per_step")
        return len(rates) if isinstance(rates, list | tuple | np.ndarray) else 0
    total = spec.get("total_steps")
    if isinstance(total, bool) or not isinstance(total, numbers.Real):
        return 0
    return int(total) if math.isfinite(total) and total > 0 else 0


def describe_schedule_types() -> dict[str, dict[str, Any]]:
    """For each schedule type: its parameters, which are required, and the defaults.

    Returns:
      ``{type: {"summary", "parameters", "required", "defaults", "exactly_one_of",
      "at_most_one_of"}}``, JSON-able. A default of ``None`` means "not given"; the builder's
      docstring says what then applies. ``exactly_one_of`` / ``at_most_one_of`` list groups of
      parameters that exclude each other.

    Example:
      >>> describe_schedule_types()["cosine"]["required"]
      ['peak_lr', 'total_steps']
    """
    described = {}
    for kind, builder in SCHEDULE_TYPES.items():
        signature = inspect.signature(builder).parameters
        described[kind] = {
            "summary": inspect.getdoc(builder).splitlines()[0],
            "parameters": list(signature),
            "required": [
                name
                for name, parameter in signature.items()
                if parameter.default is inspect.Parameter.empty
            ],
            "defaults": {
                name: parameter.default
                for name, parameter in signature.items()
                if parameter.default is not inspect.Parameter.empty
            },
            **_EXCLUSIVE[kind],
        }
    return described


def warmup_steps_of(lr: ArrayLike) -> int:
    """The index of the first step at which the schedule reaches its maximum.

    That is where the warmup ramp ends: ``W - 1`` for a family with ``W >= 2`` warmup steps and
    ``warmup_init_value < peak_lr`` (the ramp ends on the peak, see the module docstring), and 0
    when there is no ramp. It depends on the array alone, so a family spec and the explicit
    array of the same schedule give the same answer. A rate within a relative ``1e-12`` of the
    maximum counts as reaching it, so a decay that starts one rounding error above the ramp's
    end does not shift the answer.

    Args:
      lr: per-step rates, 1-D, non-empty, finite.

    Returns:
      The index, in ``[0, T)``.

    Example:
      >>> warmup_steps_of(learning_rates({"type": "cosine", "peak_lr": 1.0, "total_steps": 10,
      ...                                 "num_warmup_steps": 4}))
      3
    """
    rates = np.asarray(lr, dtype=np.float64)
    if rates.ndim != 1 or rates.size == 0 or not np.all(np.isfinite(rates)):
        raise ValueError(
            f"warmup_steps_of: requires a non-empty 1-D finite array, got shape {rates.shape}"
        )
    peak = rates.max()
    return int(np.argmax(rates >= peak - _PEAK_RTOL * abs(peak)))
