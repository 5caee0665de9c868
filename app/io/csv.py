"""CSV logs: a header naming ``step`` and ``loss`` columns (``lr`` optional), one row a point."""

from __future__ import annotations

import numpy as np
from pydantic import ValidationError

from app import schemas
from app.errors import InputError


def read_csv(content: bytes) -> schemas.Points:
    """A CSV with a header naming ``step`` and ``loss`` columns (``lr`` optional)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error})", "file") from error
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise InputError("needs a header line (step,lr,loss) and at least one row", "file")
    header = [name.strip().lower() for name in lines[0].split(",")]
    missing = {"step", "loss"} - set(header)
    if missing or len(set(header)) != len(header):
        raise InputError(
            f"header must name columns step and loss (lr optional), got {lines[0]!r}", "file"
        )
    columns: dict[str, list[float]] = {name: [] for name in header}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        if len(cells) != len(header):
            raise InputError(f"line {number}: expected {len(header)} values, got {line!r}", "file")
        for name, cell in zip(header, cells, strict=True):
            try:
                columns[name].append(float(cell))
            except ValueError:
                raise InputError(
                    f"line {number}: {name}={cell!r} is not a number", "file"
                ) from None
    steps = np.asarray(columns["step"])
    bad = np.flatnonzero(~np.isfinite(steps) | (steps != np.round(steps)) | (steps < 0))
    if bad.size:
        raise InputError(f"line {bad[0] + 2}: step must be a non-negative integer", "file")
    try:
        return schemas.Points(
            step=[int(s) for s in steps], loss=columns["loss"], lr=columns.get("lr")
        )
    except ValidationError as error:
        raise InputError(str(error), "file") from error
