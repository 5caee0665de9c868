"""Readers of training logs, one per format, behind one registry: the upload endpoints
(``POST /v1/runs/csv``, ``POST /v1/runs/import``) and the CLI (``losscast fit``/``forecast``/
``import``) read files only through :func:`read_points` and :func:`import_logs`, so a format
added here is read the same way by all of them.

Two kinds of reader:

- :data:`READERS`: ``read_<format>(content: bytes) -> schemas.Points``, one curve of ``step``,
  ``loss`` (and ``lr``) columns: losscast's own CSV.
- :data:`IMPORTERS`: other tools' logs, ``read_<format>(path: Path) -> list[LoggedRun]`` (a file
  or a directory, as the tool writes it; ``app/io/logs.py``), each run a set of named scalar
  series; :func:`import_logs` picks the training loss, the validation loss and the learning
  rate among them (:class:`~app.io.logs.Selection`: named, or guessed from common names).

Adding a format: a module here with its reader, one line in the registry, and (for
:data:`IMPORTERS`) a rule in :func:`detect_format`. Readers raise
:class:`app.errors.InputError` (where ``"file"``) naming the file, the line or record and what is
wrong; a reader that could read only part of a file says how much in the run's ``notes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from app import schemas
from app.errors import InputError
from app.io.csv import read_csv
from app.io.hf import FILE_NAME as HF_FILE_NAME
from app.io.hf import read_trainer_state
from app.io.logs import ImportedCurve, LoggedRun, Selection, curves_of
from app.io.mlflow import is_file_store, is_sqlite, read_mlflow
from app.io.tables import read_lightning, read_table, read_wandb
from app.io.tensorboard import EVENT_FILE_MARK, read_tensorboard

__all__ = [
    "IMPORTERS",
    "READERS",
    "ImportedCurve",
    "Selection",
    "detect_format",
    "import_logs",
    "parse_mapping",
    "read_points",
]

#: Format name -> reader of a file's bytes.
READERS: dict[str, Callable[[bytes], schemas.Points]] = {"csv": read_csv}

#: Format name -> reader of a log file or directory as the tool wrote it.
IMPORTERS: dict[str, Callable[..., list[LoggedRun]]] = {
    "tensorboard": read_tensorboard,
    "wandb": read_wandb,
    "hf": read_trainer_state,
    "lightning": read_lightning,
    "mlflow": read_mlflow,
    "table": read_table,
}
#: Importers whose tables have a step column that a column mapping may name.
_TAKES_STEP = {"wandb", "lightning", "table"}


def read_points(content: bytes, format: str = "csv") -> schemas.Points:
    """The logged points of a file in ``format`` (a key of :data:`READERS`)."""
    try:
        reader = READERS[format]
    except KeyError:
        raise InputError(f"unknown format {format!r}; known: {sorted(READERS)}", "format") from None
    return reader(content)


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise InputError(f"{path}: cannot read it: {error.strerror}", "file") from error


def detect_format(path: Path) -> str:
    """The format of a log file or directory, from its name and first bytes."""
    path = Path(path)
    if path.is_dir():
        if next(path.rglob(f"*{EVENT_FILE_MARK}*"), None) is not None:
            return "tensorboard"
        if is_file_store(path):
            return "mlflow"
        if next(path.rglob(HF_FILE_NAME), None) is not None:
            return "hf"
        if next(path.rglob("metrics.csv"), None) is not None:
            return "lightning"
        raise InputError(
            f"{path}: no log found under it (TensorBoard event files, an mlruns store, "
            f"{HF_FILE_NAME}, a Lightning metrics.csv); name the format",
            "file",
        )
    if not path.exists():
        raise InputError(f"{path}: no such file or directory", "file")
    head = _head(path)
    if EVENT_FILE_MARK in path.name or b"brain.Event:" in head[:64]:
        return "tensorboard"
    if is_sqlite(path):
        return "mlflow"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".parquet"):
        return "wandb"
    if suffix == ".json" or head.lstrip()[:1] in (b"{", b"["):
        if path.name == HF_FILE_NAME or b'"log_history"' in _head(path, 1 << 20):
            return "hf"
        return "wandb"  # JSON lines of history records
    first_line = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    columns = (
        [c.strip().strip('"') for c in first_line[0].replace("\t", ",").split(",")]
        if (first_line)
        else []
    )
    if "_step" in columns or ("Step" in columns and any(" - " in c for c in columns)):
        return "wandb"
    if path.name == "metrics.csv" and {"epoch", "step"} <= set(columns):
        return "lightning"
    return "table"


def import_logs(
    path: Path | str,
    format: str | None = None,
    selection: Selection | None = None,
    *,
    step: str | None = None,
    name: str | None = None,
    group: str | None = None,
    declared_schedule: bool = False,
) -> tuple[str, list[ImportedCurve]]:
    """The format and the curves of the log at ``path`` (see :mod:`app.io.logs`); ``step``
    names the step column of a table."""
    text = str(path)
    is_uri = text.startswith(("sqlite:///", "file://"))
    if format is None:
        format = "mlflow" if is_uri else detect_format(Path(path))
    try:
        reader = IMPORTERS[format]
    except KeyError:
        raise InputError(
            f"unknown format {format!r}; known: {sorted(IMPORTERS)}", "format"
        ) from None
    if step is not None and format not in _TAKES_STEP:
        raise InputError(f"a step column is named only for {sorted(_TAKES_STEP)}", "step")
    source = text if is_uri else Path(path)
    runs = reader(source, step) if format in _TAKES_STEP else reader(source)
    return format, curves_of(
        runs, selection or Selection(), name=name, group=group, declared_schedule=declared_schedule
    )


def parse_mapping(text: str | None) -> dict[str, str]:
    """``step=iteration,loss=train_loss`` (or a JSON object) -> a dict; keys among step, loss,
    eval_loss, lr."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"not valid JSON: {error}", "columns") from error
    else:
        mapping = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InputError(f"expected key=column, got {item!r}", "columns")
            mapping[key.strip()] = value.strip()
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise InputError("must map names to column names (strings)", "columns")
    unknown = set(mapping) - {"step", "loss", "eval_loss", "lr"}
    if unknown:
        raise InputError(
            f"unknown keys {sorted(unknown)}; known: step, loss, eval_loss, lr", "columns"
        )
    return mapping
