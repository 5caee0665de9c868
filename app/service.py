"""What the endpoints do, between HTTP and ``fitting/``: build a run's per-step learning rate from
its source, validate points, fit (storing what :mod:`app.policy` makes), predict with bands,
forecast. Query parsing is :mod:`app.queries`, ETags :mod:`app.http_cache`, the JIT warm-up
:mod:`app.warmup`.

Every function here is synchronous and may be CPU-heavy: routers call the heavy ones through the
compute thread pool (``app/deps.py``), never on the event loop. The numerics are ``fitting/``'s:
this module only chooses which steps to predict at and shapes arrays for the store and the wire.
An :class:`~fitting.errors.InvalidInput` from ``fitting/`` comes back as
:class:`~app.errors.InputError` with where in the request it came from; any other exception
(a plain ``ValueError`` from a shape mismatch, a ``TypeError``) is a bug, left to reach the
user as a 500 with a request id.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app import budgets, schemas
from app.domain import Curve, FitReport, FittedLaw, Model, json_safe
from app.errors import Conflict, InputError, NotFound
from app.http_cache import digest
from app.policy import fit_report, law_named
from app.settings import Settings
from app.storage import (
    FitRecord,
    FitRunSnapshot,
    NewFit,
    NewRun,
    PointsUpdate,
    RunRecord,
    Store,
)
from fitting.errors import InvalidInput
from fitting.fit import DEFAULT_WARMUP, Run, predict_losses
from fitting.intervals import predict_intervals
from fitting.laws import natural_bounds
from fitting.metrics import curve_metrics
from fitting.predict import curve_steps
from fitting.schedules import learning_rates

logger = logging.getLogger("losscast")

# A logged lr that differs from the declared schedule's by more than this (relative) is reported.
LR_MISMATCH_RTOL = 1e-6


def _schedule_lr(spec: Any, where: str) -> np.ndarray:
    try:
        return learning_rates(spec)
    except InvalidInput as error:
        raise InputError(str(error), where) from error


def _explicit_lr(values: Sequence[float], where: str) -> np.ndarray:
    return _schedule_lr({"type": "explicit", "lr_per_step": list(values)}, where)


def page(items: list, total: int, limit: int, offset: int) -> dict[str, Any]:
    """One page of a listing, with where the next one starts (None after the last)."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }


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


def _checked_run(lr: np.ndarray, steps, loss, name: str, where: str) -> Run:
    try:
        return Run(lr, np.asarray(steps, dtype=np.int64), np.asarray(loss, np.float64), name)
    except InvalidInput as error:
        raise InputError(str(error), where) from error


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
        source, lr = "schedule", _schedule_lr(body.schedule, "schedule")
    elif body.lr_per_step is not None:
        source, lr = "lr_per_step", _explicit_lr(body.lr_per_step, "lr_per_step")
    else:
        source = "interpolated"
        _check_point_lr(point_lr, "points.lr")
        _check_increasing(steps, "points")
        lr = interpolated_lr(steps, point_lr)
    _checked_run(lr, steps, loss, body.name, "points")
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
        same_loss = np.isclose(loss[known], current.loss[where_known], rtol=1e-12, atol=0)
        if not np.all(same_loss):
            i = int(np.flatnonzero(~same_loss)[0])
            raise Conflict(
                f"run {current.id!r}: step {int(steps[known][i])} is already logged with loss "
                f"{current.loss[where_known][i]!r}, got {loss[known][i]!r}"
            )
        if point_lr is not None and current.point_lr is not None:
            same_lr = np.isclose(point_lr[known], current.point_lr[where_known], rtol=1e-12, atol=0)
            if not np.all(same_lr):
                i = int(np.flatnonzero(~same_lr)[0])
                raise Conflict(
                    f"run {current.id!r}: step {int(steps[known][i])} is already logged with lr "
                    f"{current.point_lr[where_known][i]!r}, got {point_lr[known][i]!r}"
                )
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
        _checked_run(lr, all_steps, all_loss, current.name, "points")
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
    }


# ---------------------------------------------------------------------------------------------
# Fits.


def fit_run_ids(store: Store, run_ids: Sequence[str], with_group: bool) -> list[str]:
    """``run_ids``, then (``with_group``) the other runs of their groups, newest first, up to
    :data:`~app.schemas.MAX_FIT_RUNS` runs in all."""
    chosen = list(run_ids)
    if not with_group:
        return chosen
    groups = []
    for record in store.get_runs(chosen):
        if record.group is not None and record.group not in groups:
            groups.append(record.group)
    for group in groups:
        for run_id in store.group_run_ids(group, schemas.MAX_FIT_RUNS):
            if len(chosen) >= schemas.MAX_FIT_RUNS:
                return chosen
            if run_id not in chosen:
                chosen.append(run_id)
    return chosen


def fit_runs(store: Store, body: schemas.FitCreate) -> FitRecord:
    """Fit ``body.law`` (or choose one, ``auto``) to the runs as they are now, cross-validate it
    for its prediction intervals unless ``body.intervals`` is false; store the result with what
    it saw. Every fit here runs in the caller's thread: the router holds the fit limiter."""
    if body.law != schemas.AUTO:
        law_named(body.law)
    if len(set(body.run_ids)) != len(body.run_ids):
        raise InputError(f"each run may appear once, got {body.run_ids}", "run_ids")
    records = store.get_runs(fit_run_ids(store, body.run_ids, body.with_group))
    runs, snapshots = [], []
    for record in records:
        lr = run_lr(record)
        runs.append(Run(lr, record.steps, record.loss, record.id))
        snapshots.append(
            FitRunSnapshot(
                run_id=record.id,
                name=record.name,
                version=record.version,
                lr_source=record.lr_source,
                total_steps=int(lr.size),
                lr_sha256=digest(np.ascontiguousarray(lr, "<f8").tobytes()),
                points_sha256=digest(
                    np.ascontiguousarray(record.steps, "<i8").tobytes(),
                    np.ascontiguousarray(record.loss, "<f8").tobytes(),
                ),
                steps=record.steps,
                loss=record.loss,
            )
        )
    report = fit_report(runs, body)
    report = replace(report, points_fitted={record.id: record.num_points for record in records})
    stored = report.to_json()
    return store.create_fit(
        NewFit(
            law=report.law,
            params=stored["params"],
            converged=report.converged,
            result=stored,
            options=body.model_dump(exclude={"run_ids"}),
            runs=snapshots,
        )
    )


def fit_out(fit: FitRecord) -> dict[str, Any]:
    runs = None
    if fit.runs is not None:
        runs = [
            {
                "run_id": s.run_id,
                "name": s.name,
                "version": s.version,
                "num_points": int(s.steps.size),
                "last_step": int(s.steps[-1]),
                "lr_source": s.lr_source,
                "total_steps": s.total_steps,
                "lr_sha256": s.lr_sha256,
                "points_sha256": s.points_sha256,
            }
            for s in fit.runs
        ]
    report = FitReport.from_json(fit.result)
    return {
        "id": fit.id,
        "law": fit.law,
        "params": fit.params,
        "converged": fit.converged,
        "message": report.message,
        "metrics": report.metrics,
        "warmup": report.warmup,
        "min_step": report.min_step,
        "run_ids": fit.run_ids,
        "runs": runs,
        "selection": report.selection,
        "validation": report.validation,
        "uncertainty": report.uncertainty_summary(),
        "uncertainty_note": report.band_uncertainty()[1],
        "identification": report.identification or None,
        "result": report.to_json(),
        "created_at": fit.created_at,
    }


# ---------------------------------------------------------------------------------------------
# Predictions.


def model_of_fit(fit: FitRecord) -> Model:
    """The law ``fit`` fitted, with the uncertainty it stored (or why it has none)."""
    law_named(fit.law, "fit.law")
    try:
        return Model.of_report(FitReport.from_json(fit.result), fit.id)
    except InvalidInput as error:  # e.g. a stored parameter that is not finite
        raise InputError(str(error), "fit_id") from error


def inline_model(law_name: str, params: Mapping[str, float], warmup: str | None) -> Model:
    law = law_named(law_name)
    unknown = sorted(set(params) - set(law.names))
    if unknown:
        raise InputError(
            f"law {law.name!r} has no parameter(s) {unknown}; it has {list(law.names)}", "params"
        )
    missing = [name for name in law.names if name not in params]
    if missing:
        raise InputError(f"law {law.name!r} needs {missing} too", "params")
    box = natural_bounds(law)
    for (low, high), name in zip(box, law.names, strict=True):
        value = params[name]
        if not (math.isfinite(value) and low <= value <= high):
            raise InputError(
                f"{name}={value} lies outside the law's bounds [{low}, {high}]", "params"
            )
    no_band = "no prediction band: inline law+params carry no uncertainty (predict from a fit_id)"
    try:
        fitted = FittedLaw(law, params, warmup or DEFAULT_WARMUP)
    except InvalidInput as error:
        raise InputError(str(error), "params") from error
    return Model(fitted, no_band=no_band)


@dataclass
class Bands:
    """Prediction bands of a batch of curves: per curve ``(lower, upper)`` or None."""

    level: float | None
    bands: list[tuple[np.ndarray, np.ndarray] | None]
    note: str | None = None


def prediction_bands(
    model: Model,
    schedules: Sequence[np.ndarray],
    grids: Sequence[np.ndarray],
    level: float | None,
    names: Sequence[str] | None = None,
) -> Bands:
    """The ``level`` band of each curve (:func:`fitting.intervals.predict_intervals`); none when
    ``level`` is None (not asked for) or the model has no uncertainty (``note`` says why)."""
    if level is None:
        return Bands(None, [None] * len(schedules))
    fitted = model.fitted
    if fitted.uncertainty is None:
        return Bands(None, [None] * len(schedules), model.no_band)
    try:
        computed = predict_intervals(
            fitted.law, fitted.params, fitted.uncertainty, schedules, grids, fitted.warmup, level
        )
    except InvalidInput as error:
        raise InputError(str(error), "level") from error
    bands, missing = [], []
    for j, band in enumerate(computed):
        lower, upper = band["lower"], band["upper"]
        if np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)):
            bands.append((lower, upper))
        else:
            bands.append(None)
            missing.append(names[j] if names else str(j))
    if len(missing) == len(bands):
        return Bands(None, bands, "no prediction band: it is not finite on these schedules")
    note = f"no prediction band for {missing}: it is not finite there" if missing else None
    return Bands(level, bands, note)


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def predict_curves(
    model: Model,
    candidates: Sequence[schemas.Candidate],
    prefixes: Sequence[str],
    level: float | None = None,
) -> tuple[list[Curve], Bands]:
    """One predicted curve per candidate, all in one call into ``fitting``, each with its
    ``level`` band when the model has an uncertainty; ``prefixes`` say where each candidate
    sits in the request (``candidates[2]``), for error messages."""
    schedules, grids = [], []
    for candidate, prefix in zip(candidates, prefixes, strict=True):
        if candidate.schedule is not None:
            lr = _schedule_lr(candidate.schedule, _at(prefix, "schedule"))
        else:
            lr = _explicit_lr(candidate.lr_per_step, _at(prefix, "lr_per_step"))
        if candidate.steps is not None:
            steps = np.asarray(candidate.steps, dtype=np.int64)
            beyond = np.flatnonzero(steps >= lr.size)
            if beyond.size:
                raise InputError(
                    f"steps must lie in [0, {lr.size}) (the schedule's length), got "
                    f"steps[{beyond[0]}]={steps[beyond[0]]}",
                    _at(prefix, "steps"),
                )
        else:
            steps = curve_steps(lr, candidate.num_points or schemas.DEFAULT_NUM_POINTS)
        schedules.append(lr)
        grids.append(steps)
    try:
        fitted = model.fitted
        losses = predict_losses(fitted.law, fitted.params, schedules, grids, fitted.warmup)
    except InvalidInput as error:
        raise InputError(str(error)) from error
    for prefix, steps, loss in zip(prefixes, grids, losses, strict=True):
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size:
            raise InputError(
                f"the law predicts a non-finite loss at step {int(steps[bad[0]])} with these "
                "parameters",
                prefix or None,
            )
    names = [
        candidate.name or prefix or f"candidate {j}"
        for j, (candidate, prefix) in enumerate(zip(candidates, prefixes, strict=True))
    ]
    bands = prediction_bands(model, schedules, grids, level, names)
    curves = [
        Curve.on_schedule(lr, steps, loss, band, candidate.name)
        for candidate, lr, steps, loss, band in zip(
            candidates, schedules, grids, losses, bands.bands, strict=True
        )
    ]
    return curves, bands


def predict(store: Store, body: schemas.PredictionRequest) -> dict[str, Any]:
    if body.fit_id is not None:
        model = model_of_fit(store.get_fit(body.fit_id, with_runs=False))
    else:
        model = inline_model(body.law, body.params, body.warmup)
    candidates = body.candidate_list()
    prefixes = [f"candidates[{j}]" if body.candidates else "" for j in range(len(candidates))]
    curves, bands = predict_curves(model, candidates, prefixes, body.level)
    return prediction_out(model, curves, bands, single=body.candidates is None)


def prediction_out(model: Model, curves: Sequence[Curve], bands: Bands, single: bool) -> dict:
    """PredictionOut's fields; ``single``: a one-curve request, its arrays at the top too."""
    answers = [curve.to_json() for curve in curves]
    one = answers[0] if single else {}
    return {
        "fit_id": model.fit_id,
        "law": model.fitted.law.name,
        "params": dict(model.fitted.params),
        "warmup": model.fitted.warmup,
        "level": bands.level,
        "interval_note": bands.note,
        "steps": one.get("steps"),
        "loss": one.get("loss"),
        "lower": one.get("lower"),
        "upper": one.get("upper"),
        "candidates": answers,
    }


def fit_curve(
    fit: FitRecord, spec: dict[str, Any], num_points: int, level: float | None
) -> dict[str, Any]:
    """The body of ``GET /v1/fits/{id}/curve``: POST /v1/predictions' answer for one schedule."""
    model = model_of_fit(fit)
    candidate = schemas.Candidate.model_construct(
        name=None, schedule=spec, lr_per_step=None, steps=None, num_points=num_points
    )
    curves, bands = predict_curves(model, [candidate], ["query"], level)
    return prediction_out(model, curves, bands, single=True)


def forecast(
    store: Store,
    run_id: str,
    fit_id: str | None,
    num_points: int,
    level: float | None,
    refit: str = "off",
) -> dict[str, Any]:
    """The run's logged points with the prediction, for its own schedule, of its latest fit
    (or ``fit_id``), with its ``level`` band (:func:`forecast_out`); ``refit`` is the state of
    the run's background refit (:mod:`app.refits`)."""
    run = store.get_run(run_id)
    if fit_id is None:
        fit = store.latest_fit_for_run(run_id)
        if fit is None:
            raise NotFound(
                f"run {run_id!r} has no fit yet: POST /v1/fits with run_ids containing it, or "
                "give ?fit_id="
            )
    else:
        fit = store.get_fit(fit_id, with_runs=False)
    seen = (FitReport.from_json(fit.result).points_fitted or {}).get(run.id)
    if seen is None:  # fits made before they recorded it: the snapshot knows
        snapshot = next((s for s in store.get_fit(fit.id).runs or () if s.run_id == run.id), None)
        seen = 0 if snapshot is None else int(snapshot.steps.size)
    return forecast_out(run, fit, num_points, level, refit, int(seen))


def forecast_out(
    run: RunRecord,
    fit: FitRecord,
    num_points: int,
    level: float | None,
    refit: str = "off",
    points_fitted: int | None = None,
) -> dict[str, Any]:
    """ForecastOut's fields: the prediction of ``fit`` for ``run``'s own schedule, with its
    ``level`` band at the logged steps and on the curve, how many logged points lie inside it,
    what the fit's runs identify, and how current the fit is (``points_fitted`` of the run's
    points seen by the fit, default all). No storage: the CLI calls it too."""
    model = model_of_fit(fit)
    fitted = model.fitted
    lr = run_lr(run)
    grid = curve_steps(lr, num_points)
    logged, curve = predict_losses(
        fitted.law, fitted.params, [lr, lr], [run.steps, grid], fitted.warmup
    )
    if not (np.all(np.isfinite(logged)) and np.all(np.isfinite(curve))):
        raise InputError("the fit predicts a non-finite loss on this run's schedule", "fit_id")
    bands = prediction_bands(model, [lr, lr], [run.steps, grid], level, ["logged", "curve"])
    at_logged, on_grid = bands.bands
    coverage = None
    if at_logged is not None:
        inside = (at_logged[0] <= run.loss) & (run.loss <= at_logged[1])
        coverage = float(np.mean(inside))
    points = {"step": run.steps.tolist(), "loss": run.loss.tolist()}
    if run.point_lr is not None:
        points["lr"] = run.point_lr.tolist()
    seen = run.num_points if points_fitted is None else points_fitted
    return {
        "run_id": run.id,
        "fit_id": fit.id,
        "law": fitted.law.name,
        "params": dict(fitted.params),
        "warmup": fitted.warmup,
        "points": points,
        "predicted_at_logged": logged.tolist(),
        "lower_at_logged": None if at_logged is None else at_logged[0].tolist(),
        "upper_at_logged": None if at_logged is None else at_logged[1].tolist(),
        "coverage": coverage,
        "level": bands.level,
        "interval_note": bands.note,
        "metrics": json_safe(curve_metrics(logged, run.loss)),
        "curve": Curve.on_schedule(lr, grid, curve, on_grid, run.name).to_json(),
        "identification": FitReport.from_json(fit.result).identification or None,
        "fit_run_ids": fit.run_ids,
        "freshness": {
            "points_fitted": seen,
            "points_stored": run.num_points,
            "current": seen >= run.num_points,
            "fitted_at": fit.created_at,
            "refit": refit,
        },
    }
