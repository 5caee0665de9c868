"""Readers of training logs, one per format, behind one registry: the upload endpoint
(``POST /v1/runs/csv``) and the CLI (``losscast fit``/``forecast``) read files only through
:func:`read_points`, so a format added here is read the same way by both.

Adding a format: a module here with ``read_<format>(content: bytes) -> schemas.Points`` that
raises :class:`app.errors.InputError` (where ``"file"``) for content it cannot read, and one line
in :data:`READERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from app import schemas
from app.errors import InputError
from app.io.csv import read_csv

#: Format name -> reader of a file's bytes.
READERS: dict[str, Callable[[bytes], schemas.Points]] = {"csv": read_csv}


def read_points(content: bytes, format: str = "csv") -> schemas.Points:
    """The logged points of a file in ``format`` (a key of :data:`READERS`)."""
    try:
        reader = READERS[format]
    except KeyError:
        raise InputError(f"unknown format {format!r}; known: {sorted(READERS)}", "format") from None
    return reader(content)
