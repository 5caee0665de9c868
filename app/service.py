"""What the endpoints do, between HTTP and ``fitting/``: build a run's per-step learning rate from
its source, validate points, fit, predict, forecast, and the JIT warm-up.

Every function here is synchronous and may be CPU-heavy: routers call the heavy ones through the
compute thread pool (``app/deps.py``), never on the event loop. The numerics are ``fitting/``'s:
this module only chooses which steps to predict at and shapes arrays for the store and the wire.
A ``ValueError`` from ``fitting/`` comes back as :class:`~app.errors.InputError` with where in
the request it came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import schemas
from app.errors import Conflict, InputError, NotFound
from app.storage import (
    FitRecord,
    FitRunSnapshot,
    NewFit,
    NewRun,
    PointsUpdate,
    RunRecord,
    Store,
    json_safe,
)
from fitting.fit import COMPILATIONS, DEFAULT_WARMUP, Run, fit_law, predict_losses
from fitting.laws import LAWS, Law, get_law, natural_bounds
from fitting.metrics import curve_metrics
from fitting.schedules import learning_rates, warmup_steps_of

logger = logging.getLogger("losscast")

# A logged lr that differs from the declared schedule's by more than this (relative) is reported.
LR_MISMATCH_RTOL = 1e-6


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()


def _schedule_lr(spec: Any, where: str) -> np.ndarray:
    try:
        return learning_rates(spec)
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        raise InputError(str(error), where) from error


def _explicit_lr(values: Sequence[float], where: str) -> np.ndarray:
    return _schedule_lr({"type": "explicit", "lr_per_step": list(values)}, where)


def _law(name: str, where: str = "law") -> Law:
    try:
        return get_law(name)
    except ValueError as error:
        raise InputError(str(error), where) from error


# ---------------------------------------------------------------------------------------------
# Runs.


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
    except ValueError as error:
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


def append_points(store: Store, run_id: str, points: schemas.Points) -> AppendOutcome:
    """Append points to a run, idempotent on step.

    A step already stored with the same loss (and lr, if both have one) is skipped; with a
    different value it is a conflict (409). New steps must come after the last stored one.
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
        all_steps = np.concatenate([current.steps, steps[new]])
        all_loss = np.concatenate([current.loss, loss[new]])
        all_lr = None
        if current.lr_source == "interpolated":
            _check_point_lr(point_lr, "points.lr")
            all_lr = np.concatenate([current.point_lr, point_lr[new]])
            lr = interpolated_lr(all_steps, all_lr)
        else:
            if current.point_lr is not None and point_lr is not None:
                all_lr = np.concatenate([current.point_lr, point_lr[new]])
            lr = run_lr(current)
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


def parse_metadata_filters(filters: Sequence[str]) -> dict[str, Any]:
    """``["model_size=25M", "layers=12"]`` -> ``{"model_size": "25M", "layers": 12}`` (values
    that parse as JSON are compared as JSON, others as strings)."""
    parsed = {}
    for item in filters:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {item!r}", "query.metadata")
        try:
            parsed[key] = json.loads(raw)
        except ValueError:
            parsed[key] = raw
    return parsed


def parse_run_csv(content: bytes) -> schemas.Points:
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
    except ValueError as error:
        raise InputError(str(error), "file") from error


# ---------------------------------------------------------------------------------------------
# Fits.


def fit_runs(store: Store, body: schemas.FitCreate) -> FitRecord:
    """Fit ``body.law`` to the runs as they are now; store the result with what it saw."""
    law = _law(body.law)
    if len(set(body.run_ids)) != len(body.run_ids):
        raise InputError(f"each run may appear once, got {body.run_ids}", "run_ids")
    records = store.get_runs(body.run_ids)
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
                lr_sha256=_digest(np.ascontiguousarray(lr, "<f8").tobytes()),
                points_sha256=_digest(
                    np.ascontiguousarray(record.steps, "<i8").tobytes(),
                    np.ascontiguousarray(record.loss, "<f8").tobytes(),
                ),
                steps=record.steps,
                loss=record.loss,
            )
        )
    try:
        result = fit_law(
            law,
            runs,
            warmup=body.warmup,
            min_step=body.min_step,
            fixed=body.fixed,
            bounds=body.bounds,
            huber_delta=body.huber_delta,
        )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        raise InputError(f"the fit failed: {error}") from error
    options = body.model_dump(exclude={"run_ids"})
    return store.create_fit(
        NewFit(
            law=law.name,
            params=result.params,
            converged=result.converged,
            result=json_safe(result.to_dict()),
            options=options,
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
    return {
        "id": fit.id,
        "law": fit.law,
        "params": fit.params,
        "converged": fit.converged,
        "message": fit.result.get("message", ""),
        "metrics": fit.result.get("metrics", {}),
        "warmup": fit.result.get("warmup", DEFAULT_WARMUP),
        "min_step": fit.result.get("min_step", 0),
        "run_ids": fit.run_ids,
        "runs": runs,
        "result": fit.result,
        "created_at": fit.created_at,
    }


# ---------------------------------------------------------------------------------------------
# Predictions.


def evenly_spaced_steps(lr: np.ndarray, num_points: int) -> np.ndarray:
    """``num_points`` integer steps evenly spaced over [first step after the warmup ramp (or 1),
    T - 1], duplicates removed (so short schedules give fewer)."""
    last = lr.size - 1
    ramp_end = warmup_steps_of(lr)
    first = min(ramp_end + 1 if ramp_end > 0 else 1, last)
    return np.unique(np.round(np.linspace(first, last, num_points)).astype(np.int64))


@dataclass
class Model:
    """A law with parameters: from a stored fit, or given inline."""

    law: Law
    params: dict[str, float]
    warmup: str
    fit_id: str | None = None


def model_of_fit(fit: FitRecord) -> Model:
    law = _law(fit.law, "fit.law")
    return Model(law, fit.params, fit.result.get("warmup", DEFAULT_WARMUP), fit.id)


def inline_model(law_name: str, params: Mapping[str, float], warmup: str | None) -> Model:
    law = _law(law_name)
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
    return Model(law, dict(params), warmup or DEFAULT_WARMUP)


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def predict_curves(
    model: Model, candidates: Sequence[schemas.Candidate], prefixes: Sequence[str]
) -> list[dict[str, Any]]:
    """One predicted curve per candidate, all in one call into ``fitting``; ``prefixes`` say
    where each candidate sits in the request (``candidates[2]``), for error messages."""
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
            steps = evenly_spaced_steps(lr, candidate.num_points or schemas.DEFAULT_NUM_POINTS)
        schedules.append(lr)
        grids.append(steps)
    try:
        losses = predict_losses(model.law, model.params, schedules, grids, model.warmup)
    except ValueError as error:
        raise InputError(str(error)) from error
    curves = []
    for candidate, prefix, lr, steps, loss in zip(
        candidates, prefixes, schedules, grids, losses, strict=True
    ):
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size:
            raise InputError(
                f"the law predicts a non-finite loss at step {int(steps[bad[0]])} with these "
                "parameters",
                prefix or None,
            )
        curves.append(
            {
                "name": candidate.name,
                "steps": steps.tolist(),
                "loss": loss.tolist(),
                "lr": lr[steps].tolist(),
                "total_steps": int(lr.size),
                "warmup_end": warmup_steps_of(lr),
            }
        )
    return curves


def predict(store: Store, body: schemas.PredictionRequest) -> dict[str, Any]:
    if body.fit_id is not None:
        model = model_of_fit(store.get_fit(body.fit_id, with_runs=False))
    else:
        model = inline_model(body.law, body.params, body.warmup)
    candidates = body.candidate_list()
    prefixes = [f"candidates[{j}]" if body.candidates else "" for j in range(len(candidates))]
    curves = predict_curves(model, candidates, prefixes)
    single = curves[0] if body.candidates is None else None
    return {
        "fit_id": model.fit_id,
        "law": model.law.name,
        "params": model.params,
        "warmup": model.warmup,
        "steps": single["steps"] if single else None,
        "loss": single["loss"] if single else None,
        "candidates": curves,
    }


# The compact query form of a schedule: ``type:key=value,key=value``; a list is ``[a,b]``.
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\[[^\]]*\]|[^,\[\]]*)\s*(?:,|$)")


def _compact_value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith("["):
        inner = raw[1:-1].strip()
        return [_compact_value(item) for item in inner.split(",")] if inner else []
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def parse_compact_schedule(text: str) -> dict[str, Any]:
    """``cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5`` (or a JSON
    object) -> a schedule spec. Integral numbers become ints, so ``24000.0`` and ``24000`` are
    the same query."""
    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as error:
            raise InputError(f"not valid JSON: {error}", "query.schedule") from error
        if not isinstance(spec, dict):
            raise InputError("a JSON schedule must be an object", "query.schedule")
        return spec
    kind, sep, rest = text.partition(":")
    if not sep or not kind.strip():
        raise InputError(
            "expected type:key=value,... e.g. "
            "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5",
            "query.schedule",
        )
    spec: dict[str, Any] = {"type": kind.strip()}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if not match or match.end() == position:
            raise InputError(f"cannot read {rest[position:]!r} as key=value", "query.schedule")
        key, raw = match.group(1), match.group(2)
        if key in spec:
            raise InputError(f"{key!r} given twice", "query.schedule")
        spec[key] = _compact_value(raw)
        position = match.end()
    return spec


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def curve_etag(fit_id: str, spec: Mapping[str, Any], num_points: int, version: str) -> str:
    """A strong ETag: the fit (immutable) and the normalised query decide the curve."""
    query = canonical_json({"schedule": dict(spec), "num_points": num_points})
    return '"' + _digest(version, fit_id, query)[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return etag in tags


def fit_curve(fit: FitRecord, spec: dict[str, Any], num_points: int) -> dict[str, Any]:
    model = model_of_fit(fit)
    candidate = schemas.Candidate.model_construct(
        name=None, schedule=spec, lr_per_step=None, steps=None, num_points=num_points
    )
    return predict_curves(model, [candidate], ["query"])[0]


def forecast(store: Store, run_id: str, fit_id: str | None, num_points: int) -> dict[str, Any]:
    """The run's logged points with the prediction, for its own schedule, of its latest fit."""
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
    model = model_of_fit(fit)
    lr = run_lr(run)
    grid = evenly_spaced_steps(lr, num_points)
    logged, curve = predict_losses(
        model.law, model.params, [lr, lr], [run.steps, grid], model.warmup
    )
    if not (np.all(np.isfinite(logged)) and np.all(np.isfinite(curve))):
        raise InputError("the fit predicts a non-finite loss on this run's schedule", "fit_id")
    points = {"step": run.steps.tolist(), "loss": run.loss.tolist()}
    if run.point_lr is not None:
        points["lr"] = run.point_lr.tolist()
    return {
        "run_id": run.id,
        "fit_id": fit.id,
        "law": model.law.name,
        "params": model.params,
        "warmup": model.warmup,
        "points": points,
        "predicted_at_logged": logged.tolist(),
        "metrics": json_safe(curve_metrics(logged, run.loss)),
        "curve": {
            "name": run.name,
            "steps": grid.tolist(),
            "loss": curve.tolist(),
            "lr": lr[grid].tolist(),
            "total_steps": int(lr.size),
            "warmup_end": warmup_steps_of(lr),
        },
    }


# ---------------------------------------------------------------------------------------------
# JIT warm-up.

# The shapes warmed: a joint fit of three runs of up to 24,576 steps with up to 192 logged
# points each (the three MPL fitting runs are of this size), and one-candidate predictions at
# 300 points (the default grid) for schedules of up to 24,576 and up to 98,304 steps.
WARMUP_SCHEDULES = (
    {
        "type": "cosine",
        "peak_lr": 3e-4,
        "total_steps": 24000,
        "num_warmup_steps": 2160,
        "min_lr": 3e-5,
    },
    {"type": "constant", "peak_lr": 3e-4, "total_steps": 24000, "num_warmup_steps": 2160},
    {
        "type": "multistep",
        "peak_lr": 3e-4,
        "total_steps": 16000,
        "num_warmup_steps": 2160,
        "milestones": [8000],
        "values": [9e-5],
    },
)
WARMUP_PREDICTION_LENGTHS = (24000, 72000)


def synthetic_run(spec: Mapping[str, Any], num_points: int) -> Run:
    """A run whose loss falls as a power of the rate's running sum: enough to compile on."""
    lr = learning_rates(spec)
    steps = evenly_spaced_steps(lr, num_points)
    area = np.cumsum(lr)[steps] / lr.max()
    return Run(lr, steps, 3.0 + 5.0 * area**-0.3, spec["type"])


def warm_up(law_names: Sequence[str] = ("lr_annealing",)) -> dict[str, int]:
    """Compile the kernels typical requests use for the laws named (``"all"``: every registered
    law); returns the compilation counts after. Unknown names are skipped with a warning."""
    began = time.perf_counter()
    before = sum(COMPILATIONS.values())
    runs = [synthetic_run(spec, 171) for spec in WARMUP_SCHEDULES]
    names = list(LAWS) if "all" in law_names else list(law_names)
    for name in names:
        if name not in LAWS:
            logger.warning("warm-up: no law %r registered (known: %s)", name, sorted(LAWS))
            continue
        law = LAWS[name]
        fit = fit_law(law, runs)
        for length in WARMUP_PREDICTION_LENGTHS:
            lr = learning_rates({**WARMUP_SCHEDULES[0], "total_steps": length})
            predict_losses(law, fit.params, [lr], [evenly_spaced_steps(lr, 300)], fit.warmup)
    logger.info(
        "JIT warm-up of %s done in %.1f s: %d compilations (%s)",
        names,
        time.perf_counter() - began,
        sum(COMPILATIONS.values()) - before,
        dict(COMPILATIONS),
    )
    return dict(COMPILATIONS)
