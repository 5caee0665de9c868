"""The one exception type ``fitting/`` raises for bad input, told apart from its own bugs.

:class:`InvalidInput` is what the functions here raise when an argument a caller passed in is
wrong (a schedule spec, a run's points, a law's name or parameters, a plan's options); its
message names the value. Any other exception out of ``fitting/`` -- a plain ``ValueError`` from
a shape mismatch, ``zip(strict=True)``, a failed assertion -- is a bug here, not the caller's
fault. The service answers the first with a 422 and the others with a 500
(``app/errors.py``).

It subclasses ``ValueError`` so that ``except ValueError`` and ``pytest.raises(ValueError)``
written before it existed still catch it.
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """An argument is invalid; the message says which and why."""
