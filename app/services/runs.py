"""The runs' application service: a run's per-step learning rate from its source (a schedule,
an explicit ``lr_per_step``, or interpolated from logged ``lr``), validation of posted runs,
appends (idempotent on step), and a run's JSON for ``/v1/runs``.

No HTTP and no SQL here: routers call these, the store (:mod:`app.storage`) keeps what they
return. An :class:`~fitting.errors.InvalidInput` from ``fitting/`` comes back as
:class:`~app.errors.InputError` with where in the request it came from; anything else is a bug
(a 500 with a request id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import budgets, schemas
from app.errors import Conflict, InputError, NotFound
from app.settings import Settings
from app.storage import NewRun, PointsUpdate, RunRecord, Store
from fitting.errors import InvalidInput
from fitting.fit import Run
from fitting.schedules import learning_rates

# A logged lr that differs from the declared schedule's by more than this (relative) is reported.
LR_MISMATCH_RTOL = 1e-6
#: Most runs in a chain of continuations (a run, its parent, the parent's parent, ...).
MAX_CONTINUATION_DEPTH = 16


def schedule_lr(spec: Any, where: str) -> np.ndarray:
    """The per-step rates of a schedule spec; an :class:`~app.errors.InputError` at ``where``
    (``candidates[2].schedule``) when the spec is invalid."""
    try:
        return learning_rates(spec)
    except InvalidInput as error:
        raise InputError(str(error), where) from error


def explicit_lr(values: Sequence[float], where: str) -> np.ndarray:
    """:func:`schedule_lr` of an explicit ``lr_per_step``."""
    return schedule_lr({"type": "explicit", "lr_per_step": list(values)}, where)


def run_lr(run: RunRecord) -> np.ndarray:
    """The run's per-step learning rate ``lr[0 .. total_steps-1]`` from its source."""
    if run.lr_source == "schedule":
        return learning_rates(run.schedule)
    if run.lr_source == "lr_per_step":
        return run.lr_per_step
    return interpolated_lr(run.steps, run.point_lr)


def interpolated_lr(steps: np.ndarray, point_lr: np.ndarray) -> np.ndarray:
    """Rates of steps ``0 .. steps[-1]``, linear between logged points, flat before the first."""
    return np.interp(np.arange(int(steps[-1]) + 1), steps, point_lr)


def _checked_run(lr: np.ndarray, steps, loss, name: str, where: str, continuing=False) -> Run:
    """The points checked against the rates: a run's steps lie in ``[0, T)``; a continuing
    run's in ``[0, T]`` (step ``s`` is after ``s`` updates of its phase, 0 the checkpoint)."""
    if continuing:
        lr = np.r_[lr, lr[-1:]]
    try:
        return Run(lr, np.asarray(steps, dtype=np.int64), np.asarray(loss, np.float64), name)
    except InvalidInput as error:
        raise InputError(str(error), where) from error


def check_continues(store: Store, body: schemas.RunCreate) -> None:
    """A run that continues another: the parent is stored, ``at_step`` lies within the parent's
    schedule, the chain of parents is finite and short (no cycle), and the run's rate is given
    (a schedule or ``lr_per_step``: interpolating logged rates across a branch would mix the
    phases). An :class:`~app.errors.InputError` at ``continues`` otherwise."""
    if body.continues is None:
        return
    where = "continues"
    if body.schedule is None and body.lr_per_step is None:
        raise InputError(
            "a run that continues another needs its phase's rates: a schedule or lr_per_step "
            "(points.lr alone is not interpolated across a branch)",
            where,
        )
    try:
        parent = store.get_run(body.continues.run_id)
    except NotFound:
        raise InputError(
            f"no run {body.continues.run_id!r} to continue: post the parent run first",
            f"{where}.run_id",
        ) from None
    last = parent.total_steps if parent.continues_run_id else parent.total_steps - 1
    if body.continues.at_step > last:
        raise InputError(
            f"at_step must lie within the parent's schedule [0, {last}] (run "
            f"{parent.id!r}, {parent.total_steps} steps), got at_step={body.continues.at_step}",
            f"{where}.at_step",
        )
    seen = {parent.id}
    while parent.continues_run_id is not None:
        if parent.continues_run_id in seen or len(seen) >= MAX_CONTINUATION_DEPTH:
            raise InputError(
                f"run {body.continues.run_id!r}'s chain of parents is a cycle or longer than "
                f"{MAX_CONTINUATION_DEPTH} runs ({sorted(seen)})",
                f"{where}.run_id",
            )
        seen.add(parent.continues_run_id)
        try:
            parent = store.get_run(parent.continues_run_id)
        except NotFound:
            break  # an ancestor deleted before the rule that a parent outlives its children


def _lr_warnings(lr: np.ndarray, steps: np.ndarray, logged: np.ndarray | None) -> list[str]:
    if logged is None:
        return []
    logged = np.asarray(logged, dtype=np.float64)
    inside = steps < lr.size
    declared = lr[steps[inside]]
    gap = np.abs(logged[inside] - declared) / np.maximum(np.abs(declared), 1e-300)
    off = np.flatnonzero(~(gap <= LR_MISMATCH_RTOL))  # NaN counts as off
    if not off.size:
        return []
    worst = int(off[np.argmax(np.nan_to_num(gap[off], nan=np.inf))])
    return [
        f"points.lr differs from the declared learning rate at {off.size} of {inside.sum()} "
        f"logged steps (e.g. step {int(steps[worst])}: logged {logged[worst]:.6g}, declared "
        f"{declared[worst]:.6g}); the declared rate is used"
    ]


def build_run(body: schemas.RunCreate) -> tuple[NewRun, list[str]]:
    """Validate a posted run; returns what to store and warnings for the response."""
    steps = np.asarray(body.points.step, dtype=np.int64)
    loss = np.asarray(body.points.loss, dtype=np.float64)
    point_lr = None if body.points.lr is None else np.asarray(body.points.lr, dtype=np.float64)
    if body.schedule is not None:
        source, lr = "schedule", schedule_lr(body.schedule, "schedule")
    elif body.lr_per_step is not None:
        source, lr = "lr_per_step", explicit_lr(body.lr_per_step, "lr_per_step")
    else:
        source = "interpolated"
        _check_point_lr(point_lr, "points.lr")
        _check_increasing(steps, "points")
        lr = interpolated_lr(steps, point_lr)
    continuing = body.continues is not None
    _checked_run(lr, steps, loss, body.name, "points", continuing)
    warnings = [] if source == "interpolated" else _lr_warnings(lr, steps, point_lr)
    run = NewRun(
        name=body.name,
        group=body.group,
        metadata=body.metadata,
        lr_source=source,
        schedule=body.schedule,
        lr_per_step=lr if source == "lr_per_step" else None,
        steps=steps,
        loss=loss,
        point_lr=point_lr,
        total_steps=int(lr.size),
        domain=body.domain,
        continues_run_id=body.continues.run_id if continuing else None,
        continues_at_step=body.continues.at_step if continuing else None,
        replay=float(body.replay),
    )
    return run, warnings


def _check_point_lr(point_lr: np.ndarray | None, where: str) -> None:
    if point_lr is None:
        raise InputError("this run's learning rate is interpolated from points.lr: give lr", where)
    bad = np.flatnonzero(~np.isfinite(point_lr) | (point_lr < 0))
    if bad.size:
        raise InputError(f"must be finite and >= 0, got lr[{bad[0]}]={point_lr[bad[0]]}", where)


def _check_increasing(steps: np.ndarray, where: str) -> None:
    bad = np.flatnonzero(np.diff(steps) <= 0)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"steps must be strictly increasing, got step[{i}]={steps[i]} then "
            f"step[{i + 1}]={steps[i + 1]}",
            where,
        )


@dataclass
class AppendOutcome:
    run: RunRecord
    appended: int
    unchanged: int


def _check_unchanged(
    run_id: str, what: str, steps: np.ndarray, given: np.ndarray, stored: np.ndarray
) -> None:
    """A :class:`Conflict` at the first of ``steps`` whose ``given`` value (``what``: loss or
    lr) differs from the ``stored`` one (beyond rounding): a logged point is never rewritten."""
    same = np.isclose(given, stored, rtol=1e-12, atol=0)
    if not np.all(same):
        i = int(np.flatnonzero(~same)[0])
        raise Conflict(
            f"run {run_id!r}: step {int(steps[i])} is already logged with {what} "
            f"{stored[i]!r}, got {given[i]!r}"
        )


def append_points(
    store: Store, run_id: str, points: schemas.Points, settings: Settings | None = None
) -> AppendOutcome:
    """Append points to a run, idempotent on step.

    A step already stored with the same loss (and lr, if both have one) is skipped; with a
    different value it is a conflict (409). New steps must come after the last stored one.

    New points carry a logged ``lr`` exactly when the stored ones do (else a 422 naming
    ``lr``): the store keeps an lr for every point of a run or for none, so an append without
    lr used to drop the lr of every earlier point, and one with lr to a run without would drop
    the new values. Refusing loses nothing; the client resends with (or without) lr. The run
    as it would be stored is held to the request budgets of ``settings`` (``app/budgets.py``).
    """
    steps = np.asarray(points.step, dtype=np.int64)
    loss = np.asarray(points.loss, dtype=np.float64)
    point_lr = None if points.lr is None else np.asarray(points.lr, dtype=np.float64)
    _check_increasing(steps, "points")
    counts = {}

    def merge(current: RunRecord) -> PointsUpdate | None:
        known = np.isin(steps, current.steps)
        where_known = np.searchsorted(current.steps, steps[known])
        _check_unchanged(current.id, "loss", steps[known], loss[known], current.loss[where_known])
        if point_lr is not None and current.point_lr is not None:
            stored_lr = current.point_lr[where_known]
            _check_unchanged(current.id, "lr", steps[known], point_lr[known], stored_lr)
        new = ~known
        counts.update(appended=int(new.sum()), unchanged=int(known.sum()))
        if not np.any(new):
            return None
        first_new = int(steps[new][0])
        if first_new <= current.last_step:
            raise Conflict(
                f"run {current.id!r}: step {first_new} is not logged and lies before the last "
                f"logged step {current.last_step}; points can only be appended after it"
            )
        if current.point_lr is not None and point_lr is None:
            raise InputError(
                f"run {current.id!r}: its points carry a logged lr, so the new points must carry "
                "a logged lr too (a run keeps an lr for every point or for none)",
                "lr",
            )
        if current.point_lr is None and point_lr is not None:
            raise InputError(
                f"run {current.id!r}: its points carry no logged lr, so leave lr out of the new "
                "points (a run keeps an lr for every point or for none)",
                "lr",
            )
        all_steps = np.concatenate([current.steps, steps[new]])
        all_loss = np.concatenate([current.loss, loss[new]])
        interpolated = current.lr_source == "interpolated"
        length = int(all_steps[-1]) + 1 if interpolated else current.total_steps
        budgets.check_run(settings, int(all_steps.size), length)
        all_lr = None
        if point_lr is not None:
            _check_point_lr(point_lr, "lr")
            all_lr = np.concatenate([current.point_lr, point_lr[new]])
        lr = interpolated_lr(all_steps, all_lr) if interpolated else run_lr(current)
        continuing = current.continues_run_id is not None
        _checked_run(lr, all_steps, all_loss, current.name, "points", continuing)
        return PointsUpdate(all_steps, all_loss, all_lr, int(lr.size))

    record = store.update_points(run_id, merge)
    return AppendOutcome(record, counts.get("appended", 0), counts.get("unchanged", 0))


def run_out(run: RunRecord, *, include_lr: bool = False, warnings=()) -> dict[str, Any]:
    points = {"step": run.steps.tolist(), "loss": run.loss.tolist()}
    if run.point_lr is not None:
        points["lr"] = run.point_lr.tolist()
    return {
        **summary_out(run),
        "points": points,
        "lr_per_step": (
            run.lr_per_step.tolist() if include_lr and run.lr_per_step is not None else None
        ),
        "warnings": list(warnings),
    }


def summary_out(run) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "group": run.group,
        "metadata": run.metadata,
        "lr_source": run.lr_source,
        "lr_source_note": schemas.LR_SOURCE_NOTES[run.lr_source],
        "schedule": run.schedule,
        "num_points": run.num_points,
        "first_step": run.first_step,
        "last_step": run.last_step,
        "total_steps": run.total_steps,
        "version": run.version,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "domain": run.domain,
        "continues": (
            None
            if run.continues_run_id is None
            else {"run_id": run.continues_run_id, "at_step": run.continues_at_step}
        ),
        "replay": run.replay,
    }
