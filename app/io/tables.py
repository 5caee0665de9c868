"""Logs that are tables: CSV or TSV with a header, one column a step and the others scalars,
cells left empty where a row does not log that scalar (sparse rows). Four formats share it:

- ``table``: any CSV/TSV (the delimiter is sniffed), the step column and the curves named by
  a column mapping (``step=iteration,loss=train_loss,lr=learning_rate``) or guessed.
- ``lightning``: PyTorch Lightning's ``CSVLogger`` ``metrics.csv`` (a union header over every
  logged key; ``step`` is the global step; ``epoch`` is bookkeeping).
- ``wandb``: a W&B history dump, ``run.history()`` / ``run.scan_history()`` written as CSV
  (``DataFrame.to_csv``: a leading unnamed index column), as JSON lines (one record per line,
  ``_step`` the step, keys as W&B writes them: ``train/loss``) or as parquet (when pyarrow is
  installed); or the CSV a W&B chart panel exports ("Export panel -> CSV"): a ``Step`` column
  and, per run, ``<run name> - <metric>`` with its ``__MIN`` and ``__MAX`` envelope columns
  (https://github.com/wandb/wandb/issues/5349), which are left out; each run is a run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from app.errors import InputError
from app.io.logs import LoggedRun, Series, as_float, normalised_name

#: Names of the step column, in order of preference.
STEP_NAMES = ("step", "_step", "global_step", "trainer/global_step", "iteration", "iter")
#: Columns that are bookkeeping, not curves.
BOOKKEEPING = {"epoch", "_runtime", "_timestamp", "timestamp", "time", "wall_time", ""}
_PANEL_SEPARATOR = " - "
_ENVELOPE = ("__MIN", "__MAX")


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error})", "file") from error
    except OSError as error:
        raise InputError(f"{path}: cannot read it: {error.strerror}", "file") from error


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], list[str]]:
    """The header, ``(line number, cells)`` of each non-blank row of a CSV or TSV, and notes:
    a last row with fewer cells than the header (a writer that died mid-line) is left out and
    said so; such a row anywhere else is an error (:func:`_series_of_rows`)."""
    text = _text(path)
    sample = text[:65536]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel_tab if "\t" in sample.partition("\n")[0] else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows = []
    header = None
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise InputError(f"{path}: line {reader.line_num}: {error}", "file") from error
    if header is None or not rows:
        raise InputError(f"{path}: needs a header line and at least one row", "file")
    if len(set(header)) != len(header):
        dup = next(name for name in header if header.count(name) > 1)
        raise InputError(f"{path}: the header names column {dup!r} twice", "file")
    notes = []
    if len(rows) > 1 and len(rows[-1][1]) < len(header):
        line, cells = rows.pop()
        notes.append(
            f"{path}: partly read: {len(rows)} of {len(rows) + 1} rows; line {line} is cut off "
            f"({len(cells)} of {len(header)} cells)"
        )
    return header, rows, notes


def _number(cell: str, path: Path, line: int, column: str) -> float | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        return float(cell)
    except ValueError:
        raise InputError(
            f"{path}: line {line}: {column}={cell!r} is not a number", "file"
        ) from None


#: Steps beyond this are refused here, before numpy's int64 (the service's bound is lower).
MAX_STEP = 2**53


def _step(value: float | None, path: Path, where: str) -> int:
    if value is None or not math.isfinite(value) or value != round(value) or value < 0:
        raise InputError(f"{path}: {where}: step {value!r} is not a non-negative integer", "file")
    if value > MAX_STEP:
        raise InputError(f"{path}: {where}: step {value:.0f} is beyond {MAX_STEP}", "file")
    return int(value)


def _step_column(header: list[str], wanted: str | None, path: Path) -> str:
    by_name = {normalised_name(name): name for name in header}
    if wanted is not None:
        if normalised_name(wanted) not in by_name:
            raise InputError(f"{path}: no step column {wanted!r}; the columns are {header}", "file")
        return by_name[normalised_name(wanted)]
    for name in STEP_NAMES:
        if name in by_name:
            return by_name[name]
    raise InputError(
        f"{path}: no step column (one of {', '.join(STEP_NAMES)}); name it (step=COLUMN); the "
        f"columns are {header}",
        "file",
    )


def _series_of_rows(
    header: list[str], rows, step_column: str, path: Path, skip: set[str]
) -> dict[str, Series]:
    index = header.index(step_column)
    points: dict[str, tuple[list[int], list[float]]] = {
        name: ([], []) for name in header if name != step_column and name not in skip
    }
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}: line {line}: expected {len(header)} cells (the header's), got "
                f"{len(cells)}",
                "file",
            )
        step_value = _number(cells[index], path, line, step_column)
        if step_value is None:
            continue  # a row logged without a step (Lightning's epoch-end rows have one)
        step = _step(step_value, path, f"line {line}")
        for name, cell in zip(header, cells, strict=True):
            if name not in points:
                continue
            value = _number(cell, path, line, name)
            if value is not None:
                points[name][0].append(step)
                points[name][1].append(value)
    return {name: Series.of(name, s, v) for name, (s, v) in points.items() if s}


def read_table(path: Path, step: str | None = None) -> list[LoggedRun]:
    """A CSV/TSV: one run, one series per column but the step's."""
    path = Path(path)
    header, rows, notes = _rows(path)
    step_column = _step_column(header, step, path)
    skip = {name for name in header if normalised_name(name) in BOOKKEEPING}
    series = _series_of_rows(header, rows, step_column, path, skip)
    return [LoggedRun(name=path.stem, origin=str(path), series=series, notes=notes)]


def read_lightning(path: Path, step: str | None = None) -> list[LoggedRun]:
    """Lightning's ``CSVLogger``: a ``metrics.csv`` (or a directory holding one, the latest
    ``version_N``)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise InputError(f"{path}: no metrics.csv under it", "file")
        path = found[-1]
    runs = read_table(path, step)
    run = runs[0]
    # logs/name/version_0/metrics.csv: the run is name/version_0
    parts = path.parent.parts[-2:]
    run.name = "/".join(parts) if parts else path.stem
    return runs


def _records_series(records, path: Path, step: str | None) -> dict[str, Series]:
    points: dict[str, tuple[list[int], list[float]]] = {}
    step_key = step or "_step"
    for where, record in records:
        if not isinstance(record, dict):
            raise InputError(f"{path}: {where}: not a JSON object", "file")
        if step_key not in record:
            raise InputError(f"{path}: {where}: no {step_key!r} key", "file")
        step_value = as_float(record[step_key])
        if step_value is None:
            raise InputError(
                f"{path}: {where}: {step_key} {record[step_key]!r} is not a number", "file"
            )
        at = _step(step_value, path, where)
        for key, raw in record.items():
            value = as_float(raw)
            if key == step_key or normalised_name(key) in BOOKKEEPING or value is None:
                continue  # media, tables, nested summaries, and nulls of sparse rows
            points.setdefault(key, ([], []))
            points[key][0].append(at)
            points[key][1].append(float(value))
    return {key: Series.of(key, s, v) for key, (s, v) in points.items()}


def _json_lines(path: Path, step: str | None) -> list[LoggedRun]:
    records = []
    numbered = [
        (n, line) for n, line in enumerate(_text(path).splitlines(), start=1) if line.strip()
    ]
    notes = []
    for position, (number, line) in enumerate(numbered):
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            if position == len(numbered) - 1 and records:
                # The last record cut off (a writer that died mid-line): the rest is read.
                notes.append(
                    f"{path}: partly read: {len(records)} of {len(numbered)} records; line "
                    f"{number} is cut off ({error.msg})"
                )
                break
            raise InputError(
                f"{path}: line {number}: not a JSON object ({error.msg}, column {error.colno}); "
                f"{len(records)} records before it read",
                "file",
            ) from error
    if not records:
        raise InputError(f"{path}: no records", "file")
    return [LoggedRun(path.stem, str(path), _records_series(records, path, step), notes=notes)]


def _parquet(path: Path, step: str | None) -> list[LoggedRun]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading parquet needs pyarrow (pip install pyarrow); or dump the history "
            "as CSV or JSON lines",
            "file",
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # noqa: BLE001 -- a damaged file is the user's input
        raise InputError(f"{path}: not a readable parquet file: {error}", "file") from error
    records = [(f"row {i}", row) for i, row in enumerate(table.to_pylist())]
    return [LoggedRun(path.stem, str(path), _records_series(records, path, step))]


def _panel(path: Path, header: list[str], rows) -> list[LoggedRun]:
    step_column = _step_column(header, "Step", path)
    by_run: dict[str, dict[str, str]] = {}
    for column in header:
        if column == step_column or column.endswith(_ENVELOPE):
            continue
        run, _, metric = column.rpartition(_PANEL_SEPARATOR)
        by_run.setdefault(run, {})[column] = metric
    skip = {c for c in header if c.endswith(_ENVELOPE)}
    series = _series_of_rows(header, rows, step_column, path, skip)
    return [
        LoggedRun(
            name=run,
            origin=f"{path} ({run})",
            series={
                metric: Series(metric, series[c].steps, series[c].values)
                for c, metric in columns.items()
                if c in series
            },
        )
        for run, columns in by_run.items()
    ]


def read_wandb(path: Path, step: str | None = None) -> list[LoggedRun]:
    """A W&B history dump (CSV, JSON lines, parquet) or a panel's CSV export."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _json_lines(path, step)
    if suffix == ".parquet":
        return _parquet(path, step)
    header, rows, notes = _rows(path)
    if step is None and "Step" in header and any(_PANEL_SEPARATOR in c for c in header):
        runs = _panel(path, header, rows)
        for run in runs:
            run.notes.extend(notes)
        return runs
    step_column = _step_column(header, step or "_step", path)
    skip = {name for name in header if normalised_name(name) in BOOKKEEPING}
    series = _series_of_rows(header, rows, step_column, path, skip)
    return [LoggedRun(path.stem, str(path), series, notes=notes)]
