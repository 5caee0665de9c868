"""TensorBoard event files (``events.out.tfevents.*``): a file, or a log directory whose every
directory holding event files is one run (``logs/run1``, ``logs/run1/eval``: a
``SummaryWriter.add_scalars`` subdirectory is a run of its own).

Read with TensorBoard's own loader (``EventAccumulator``) with ``size_guidance`` 0 for scalars
and tensors, i.e. every point, not the 10,000-point reservoir sample TensorBoard keeps by default.
Both kinds of scalar are read: ``simple_value`` summaries (PyTorch's and tensorboardX's
``SummaryWriter``) and rank-0 tensors (TF2's ``tf.summary.scalar``). A restarted run's points are
handled as TensorBoard does (events after a restart at step ``s`` replace those at ``>= s``).
TensorBoard's loader stops silently at a truncated or corrupt record; each file is therefore
read once more record by record, and a note says how many records and bytes were read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from app.errors import InputError
from app.io.logs import LoggedRun, Series, require

EVENT_FILE_MARK = "tfevents"


def is_event_file(path: Path) -> bool:
    return EVENT_FILE_MARK in path.name and path.is_file()


def _event_dirs(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = sorted({p.parent for p in root.rglob(f"*{EVENT_FILE_MARK}*") if p.is_file()})
    if not found:
        raise InputError(f"{root}: no TensorBoard event files (*tfevents*) under it", "file")
    return found


def _integrity_note(path: Path) -> str | None:
    """``None`` when every record of the event file reads and checks (CRC), else what was read."""
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    size = path.stat().st_size
    reader = PyRecordReader_New(str(path))
    records = consumed = 0
    try:
        while True:
            reader.GetNext()
            records += 1
            consumed += len(reader.record()) + 16  # length, its CRC, the data's CRC
    except errors.OutOfRangeError:
        return None
    except errors.DataLossError as error:
        return (
            f"{path}: partly read: {records} records ({consumed:,} of {size:,} bytes), then "
            f"a damaged record ({error.message if hasattr(error, 'message') else error})"
        )
    finally:
        reader.file_handle.close()


def _scalar_series(accumulator, origin: str) -> dict[str, Series]:
    from tensorboard.util import tensor_util

    tags = accumulator.Tags()
    series: dict[str, Series] = {}
    for tag in tags.get("scalars", []):
        events = accumulator.Scalars(tag)
        series[tag] = Series.of(tag, [e.step for e in events], [e.value for e in events])
    for tag in tags.get("tensors", []):
        if tag in series:
            continue
        events = accumulator.Tensors(tag)
        values = []
        for event in events:
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size != 1 or not np.issubdtype(array.dtype, np.number):
                break  # not a scalar (an image, text, a histogram): not a curve
            values.append(float(array.reshape(())))
        else:
            if values:
                series[tag] = Series.of(tag, [e.step for e in events], values)
    return series


def read_tensorboard(path: Path) -> list[LoggedRun]:
    """The scalar series of each run under ``path`` (an event file or a log directory)."""
    event_accumulator = require(
        "tensorboard.backend.event_processing.event_accumulator", "tensorboard", "event files"
    )
    path = Path(path)
    guidance = {event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
    runs = []
    # TensorBoard logs a warning for every file it cannot parse; the notes say it once.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    for where in _event_dirs(path):
        files = (
            [where] if where.is_file() else sorted(p for p in where.iterdir() if is_event_file(p))
        )
        notes = [note for f in files if (note := _integrity_note(f))]
        accumulator = event_accumulator.EventAccumulator(str(where), size_guidance=guidance)
        try:
            accumulator.Reload()
        except Exception as error:  # noqa: BLE001 -- a damaged file is the user's input
            raise InputError(
                f"{where}: not a readable TensorBoard event file: {error}", "file"
            ) from None
        series = _scalar_series(accumulator, str(where))
        if not series:
            detail = "; ".join(notes) if notes else "it holds no scalar summaries"
            raise InputError(f"{where}: no scalars read from the event file(s): {detail}", "file")
        if path.is_file():
            name = path.parent.name or path.name
        elif where == path:
            name = path.name
        else:
            name = os.path.relpath(where, path).replace(os.sep, "/")
        runs.append(LoggedRun(name=name, origin=str(where), series=series, notes=notes))
    return runs
