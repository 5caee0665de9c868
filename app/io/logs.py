"""What the importers of other tools' logs share: the scalar series a log holds, the choice of
which series is the training loss, the validation loss and the learning rate (named, or guessed
from the names the common tools write), and the curves to store.

A reader (``app/io/tensorboard.py``, ...) turns a file or a directory into
:class:`LoggedRun` s, one per run the log holds, each a set of named :class:`Series`; then
:func:`curves_of` picks the series and returns one :class:`ImportedCurve` per curve to store
(the training loss, and the validation loss as a second run of the same group). No HTTP and no
SQL here: the upload endpoint and the CLI both call :func:`app.io.import_logs`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import InputError

#: Series names of a training loss, in order of preference, as the common tools write them
#: (compared after :func:`normalised_name`): Hugging Face, Lightning, W&B, TensorBoard habits.
TRAIN_LOSS_NAMES = (
    "loss",
    "train/loss",
    "train_loss",
    "train_loss_step",
    "training_loss",
    "train/loss_step",
    "loss/train",
    "losses/train",
    "train/lm_loss",
    "lm_loss",
    "batch_loss",  # Keras' TensorBoard callback (per batch, then per epoch)
    "epoch_loss",
)
#: Series names of a validation loss, in order of preference.
EVAL_LOSS_NAMES = (
    "eval_loss",
    "eval/loss",
    "val_loss",
    "val/loss",
    "validation_loss",
    "validation/loss",
    "valid/loss",
    "valid_loss",
    "loss/val",
    "loss/validation",
    "loss/eval",
)
#: Series names of the learning rate, in order of preference; Lightning's LearningRateMonitor
#: writes ``lr-<Optimizer>`` (``lr-AdamW``), matched by :data:`_LR_PATTERN`.
LR_NAMES = (
    "lr",
    "learning_rate",
    "train/learning_rate",
    "train/lr",
    "learning-rate",
    "optimizer/lr",
    "lr/group0",
    "trainer/learning_rate",
    "epoch_learning_rate",  # Keras
)
_LR_PATTERN = re.compile(r"^(train/)?lr[-_/][a-z0-9_]+$")
#: ``--eval-loss none``: no validation curve.
NONE = "none"


def require(module: str, package: str, what: str):
    """``module`` imported, or an :class:`InputError` saying that this installation cannot read
    ``what`` and what to install (the readers of other tools' logs are an optional extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"reading {what} needs the {package} package, which this installation lacks "
            "(pip install 'losscast[import]')",
            "format",
        ) from None


def as_float(value: Any) -> float | None:
    """A JSON number as a float (an int too large for one is infinite); ``None`` for anything
    else (strings, booleans, nested objects, nulls of sparse records)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def normalised_name(name: str) -> str:
    """Names compared without case and surrounding space: ``Train/Loss`` is ``train/loss``."""
    return name.strip().lower()


@dataclass(frozen=True)
class Series:
    """One logged scalar: its steps (ascending, unique) and values, and where it came from."""

    name: str
    steps: np.ndarray
    values: np.ndarray

    @staticmethod
    def of(name: str, steps: Sequence[int], values: Sequence[float]) -> Series:
        """A series from points in the order they were logged: sorted by step; a step logged
        twice keeps its last value (a resumed run that logged it again)."""
        steps_array = np.asarray(steps, dtype=np.int64)
        values_array = np.asarray(values, dtype=np.float64)
        order = np.argsort(steps_array, kind="stable")
        steps_array, values_array = steps_array[order], values_array[order]
        if steps_array.size > 1:
            last = np.append(steps_array[1:] != steps_array[:-1], True)
            steps_array, values_array = steps_array[last], values_array[last]
        return Series(name, steps_array, values_array)


@dataclass
class LoggedRun:
    """The scalars of one run in a log: ``name`` is the run's (a TensorBoard directory, an
    MLflow run name, a file's stem), ``origin`` where it was read (for messages)."""

    name: str
    origin: str
    series: dict[str, Series]
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """Which series to import: a name, ``None`` to guess, or :data:`NONE` for no such curve."""

    loss: str | None = None
    eval_loss: str | None = None
    lr: str | None = None


@dataclass
class ImportedCurve:
    """One curve to store as a run: its name and group, the loss series, and its learning rate
    as logged: ``point_lr`` (one per point, when the lr series has every point's step) or
    ``lr_per_step`` (the lr series interpolated over steps 0..last, when it has other steps)."""

    name: str
    group: str | None
    kind: str  # "train" or "eval"
    metric: str
    origin: str
    steps: np.ndarray
    loss: np.ndarray
    point_lr: np.ndarray | None
    lr_per_step: np.ndarray | None
    metadata: dict[str, Any]
    notes: list[str]


def _find(series: dict[str, Series], wanted: str | None, names: Iterable[str], what: str, run):
    """The series named ``wanted`` (an error listing the run's series if there is none), or the
    first of ``names`` the run has (``None`` if it has none)."""
    by_name = {normalised_name(name): s for name, s in series.items()}
    if wanted is not None:
        if normalised_name(wanted) == NONE:
            return None
        found = by_name.get(normalised_name(wanted))
        if found is None:
            raise InputError(
                f"{run.origin}: no series named {wanted!r} for the {what}; it has "
                f"{sorted(series) or 'none'}",
                "file",
            )
        return found
    for name in names:
        if name in by_name:
            return by_name[name]
    return None


def _guess_lr(series: dict[str, Series]) -> Series | None:
    found = _find(series, None, LR_NAMES, "learning rate", None)
    if found is not None:
        return found
    matches = [s for name, s in sorted(series.items()) if _LR_PATTERN.match(normalised_name(name))]
    return matches[0] if matches else None


def _finite_points(series: Series, run: LoggedRun, notes: list[str]) -> Series:
    """The series without the points whose loss is not a finite positive number (a diverged
    step logs NaN), with a note saying how many were left out."""
    good = np.isfinite(series.values) & (series.values > 0)
    if np.all(good):
        return series
    bad = np.flatnonzero(~good)
    notes.append(
        f"{run.origin}: {series.name}: left out {bad.size} of {series.values.size} points whose "
        f"loss is not a finite number > 0 (first at step {int(series.steps[bad[0]])}: "
        f"{series.values[bad[0]]!r})"
    )
    return Series(series.name, series.steps[good], series.values[good])


def _lr_for(loss: Series, lr: Series | None, declared: bool, notes: list[str], run: LoggedRun):
    """``(point_lr, lr_per_step)`` of a loss series from the lr series (see
    :class:`ImportedCurve`): the logged lr at each point when the lr series has every point's
    step, and the lr series over every step when it has steps the loss series lacks (a
    validation loss every 1,000 steps beside an lr logged at each: the schedule's shape between
    the validation points is in the lr series). Both ``None`` without an lr series; no
    ``lr_per_step`` with a declared schedule, which is the rate."""
    if lr is None:
        return None, None
    at = np.searchsorted(lr.steps, loss.steps)
    inside = at < lr.steps.size
    exact = inside.copy()
    exact[inside] = lr.steps[at[inside]] == loss.steps[inside]
    point_lr = lr.values[at] if np.all(exact) else None
    if declared or (point_lr is not None and lr.steps.size == loss.steps.size):
        return point_lr, None
    last = int(max(loss.steps[-1], lr.steps[-1]))
    if point_lr is None:
        notes.append(
            f"{run.origin}: the learning rate ({lr.name!r}, {lr.steps.size} points) is not "
            f"logged at every step of {loss.name!r}: interpolated linearly over steps 0..{last}"
        )
    return point_lr, np.interp(np.arange(last + 1), lr.steps, lr.values)


def curves_of(
    runs: Sequence[LoggedRun],
    selection: Selection | None = None,
    *,
    name: str | None = None,
    group: str | None = None,
    declared_schedule: bool = False,
) -> list[ImportedCurve]:
    """The curves to store from ``runs``: each run's training loss and, when it has one (and
    ``selection.eval_loss`` is not ``none``), its validation loss, named ``<name>`` and
    ``<name>/<metric>``; both get the run's name as their group when ``group`` is not given,
    so that a fit ``with_group`` sees them together. A run without any loss series is an
    error naming the series it has."""
    selection = selection or Selection()
    curves: list[ImportedCurve] = []
    for run in runs:
        base = name if name and len(runs) == 1 else (f"{name}/{run.name}" if name else run.name)
        notes = list(run.notes)
        train = _find(run.series, selection.loss, TRAIN_LOSS_NAMES, "training loss", run)
        evaluation = _find(run.series, selection.eval_loss, EVAL_LOSS_NAMES, "validation loss", run)
        if selection.lr is not None and normalised_name(selection.lr) == NONE:
            lr = None
        elif selection.lr is not None:
            lr = _find(run.series, selection.lr, (), "learning rate", run)
        else:
            lr = _guess_lr(run.series)
        if train is None and evaluation is None:
            raise InputError(
                f"{run.origin}: no loss series found among {sorted(run.series) or 'none'}; name "
                f"one (--loss / the form field loss); known names: {', '.join(TRAIN_LOSS_NAMES)}",
                "file",
            )
        pairs = [("train", train), ("eval", evaluation)]
        chosen = [(kind, s) for kind, s in pairs if s is not None]
        run_group = group or (base if len(chosen) > 1 else None)
        for kind, series in chosen:
            series = _finite_points(series, run, notes)
            if series.steps.size == 0:
                raise InputError(f"{run.origin}: {series.name}: no finite loss logged", "file")
            point_lr, lr_per_step = _lr_for(series, lr, declared_schedule, notes, run)
            curves.append(
                ImportedCurve(
                    name=base if kind == "train" else f"{base}/{series.name}",
                    group=run_group,
                    kind=kind,
                    metric=series.name,
                    origin=run.origin,
                    steps=series.steps,
                    loss=series.values,
                    point_lr=point_lr,
                    lr_per_step=lr_per_step,
                    metadata={
                        **run.metadata,
                        "imported_from": run.origin,
                        "metric": series.name,
                        **({"lr_series": lr.name} if lr is not None else {}),
                    },
                    notes=notes,
                )
            )
    return curves
