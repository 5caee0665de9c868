"""The one exception type ``fitting/`` raises for bad input, told apart from its own bugs.

:class:`InvalidInput` is what the functions here raise when an argument a caller passed in is
wrong (a schedule spec, a run's points, a law's name or parameters, a plan's options); its
message names the value. Any other exception out of ``fitting/`` -- a plain ``ValueError`` from
a shape mismatch, ``zip(strict=True)``, a failed assertion -- is a bug here, not the caller's
fault. The service answers the first with a 422 and the others with a 500
(``app/errors.py``).

The checks of a caller's value that raise it live here too (:func:`finite_number`).

It subclasses ``ValueError`` so that ``except ValueError`` and ``pytest.raises(ValueError)``
written before it existed still catch it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class InvalidInput(ValueError):
    """An argument is invalid; the message says which and why."""


def finite_number(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite real number (not a bool); else
    :class:`InvalidInput` naming ``name`` and the value.

    >>> finite_number("peak_lr", 3e-4)
    0.0003
    >>> finite_number("peak_lr", float("nan"))
    Traceback (most recent call last):
    ...
    fitting.errors.InvalidInput: peak_lr must be finite, got peak_lr=nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be finite, got {name}={value}")
    return value
