"""Hugging Face ``trainer_state.json`` (``transformers.TrainerState.save_to_json``, written into
every checkpoint): its ``log_history``, a list of records each with the ``step`` it was logged at.

Training records carry ``loss`` and ``learning_rate``; evaluation records ``eval_loss``. The
``loss`` of a training record is the **mean of the training losses over the logging window**
(the ``logging_steps`` updates since the previous log), not the loss at ``step``. losscast stores
it at ``step``, as logged: a law's prediction at ``step`` is then biased by about the curve's
slope times half the window, ``L'(s) (k-1)/2``, which late in pretraining (slope ~1e-5 per step)
is far below the noise for windows of tens of steps; early, steep points are where it shows.
The run's metadata records ``hf_logging_steps`` and ``loss_is_window_mean`` so that this is known
later. ``learning_rate`` is the rate the scheduler reports at the time of the log.

Steps: a record's ``step`` is the Trainer's ``global_step``, the number of updates done (1 after
the first); losscast's step is the 0-based index of the last update the loss has seen, so a
record at ``step`` s is stored at s - 1 (the same as ``losscast.hf.LosscastCallback``), and a
run of ``max_steps`` updates fits a schedule of ``total_steps = max_steps``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from app.errors import InputError
from app.io.logs import LoggedRun, Series, as_float

FILE_NAME = "trainer_state.json"
#: Keys of a log record that are bookkeeping, not curves.
NOT_CURVES = {"step", "epoch", "total_flos", "train_runtime", "num_input_tokens_seen"}


def read_trainer_state(path: Path) -> list[LoggedRun]:
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.rglob(FILE_NAME), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise InputError(f"{path}: no {FILE_NAME} under it", "file")
        path = candidates[-1]  # the latest checkpoint holds the longest history
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error})", "file") from error
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})",
            "file",
        ) from error
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise InputError(f"{path}: not a trainer_state.json: no log_history list", "file")
    points: dict[str, tuple[list[int], list[float]]] = {}
    skipped: list[str] = []
    for index, record in enumerate(state["log_history"]):
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step > 2**53:
            skipped.append(f"log_history[{index}]: no integer step")
            continue
        for key, raw in record.items():
            value = as_float(raw)
            if key in NOT_CURVES or value is None:
                continue
            if key.startswith("train_") and key != "train_loss":
                continue  # the summary record at the end: runtime, samples per second
            if key == "train_loss" and "train_runtime" in record:
                continue  # the whole run's mean loss, not a point of the curve
            if not math.isfinite(value) and key not in ("loss", "eval_loss"):
                continue
            if record["step"] < 1:
                skipped.append(f"log_history[{index}]: step {record['step']}, before any update")
                break
            steps, values = points.setdefault(key, ([], []))
            steps.append(record["step"] - 1)
            values.append(float(value))
    notes = [f"{path}: {len(skipped)} records skipped ({skipped[0]})"] if skipped else []
    metadata = {
        "hf_logging_steps": state.get("logging_steps"),
        "loss_is_window_mean": True,
        "hf_global_step": state.get("global_step"),
    }
    series = {key: Series.of(key, steps, values) for key, (steps, values) in points.items()}
    name = path.parent.name if path.parent.name else path.stem
    return [LoggedRun(name=name, origin=str(path), series=series, metadata=metadata, notes=notes)]
