"""The predictions' application service: the fitted law a request names (a stored fit, or an
inline law and parameters), predicted curves with their bands (``POST /v1/predictions``,
``GET /v1/fits/{id}/curve``), and a run's forecast (``GET /v1/runs/{id}/forecast``).

Every function here is synchronous and may be CPU-heavy: routers call the heavy ones through the
compute thread pool (``app/deps.py``), never on the event loop. The numerics are ``fitting/``'s:
this module only chooses which steps to predict at and shapes the records of
:mod:`app.domain` for the wire. No HTTP and no SQL beyond reading the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app import schemas
from app.domain import Curve, FitReport, FittedLaw, Model, json_safe
from app.errors import InputError, NotFound
from app.policy import law_named
from app.services import continual
from app.services.runs import explicit_lr, run_lr, schedule_lr
from app.storage import FitRecord, RunRecord, Store
from fitting.errors import InvalidInput
from fitting.fit import DEFAULT_WARMUP, predict_losses
from fitting.intervals import predict_intervals
from fitting.laws import is_continual, natural_bounds
from fitting.metrics import curve_metrics
from fitting.predict import curve_steps
from fitting.schedules import warmup_steps_of


def model_of_fit(fit: FitRecord) -> Model:
    """The law ``fit`` fitted, with the uncertainty it stored (or why it has none)."""
    law_named(fit.law, "fit.law")
    try:
        return Model.of_report(FitReport.from_json(fit.result), fit.id)
    except InvalidInput as error:  # e.g. a stored parameter that is not finite
        raise InputError(str(error), "fit_id") from error


def inline_model(law_name: str, params: Mapping[str, float], warmup: str | None) -> Model:
    """An inline law and parameters, held to the law's natural bounds; no uncertainty, so
    predictions under it have no band (``no_band`` says so)."""
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


def _continual_inputs(
    store: Store | None,
    model: Model,
    candidates: Sequence[schemas.Candidate],
    prefixes: Sequence[str],
) -> list[continual.Branch] | None:
    """Under a continual law (cpt), each candidate's history (:mod:`app.services.continual`);
    None under a schedule law, which refuses candidates that continue runs or name a domain."""
    if not is_continual(model.fitted.law):
        for candidate, prefix in zip(candidates, prefixes, strict=True):
            for name in ("continues", "domain"):
                if getattr(candidate, name, None) is not None:
                    raise InputError(
                        f"{name} needs a fit of a continual law (cpt); this fit's law is "
                        f"{model.fitted.law.name!r}",
                        _at(prefix, name),
                    )
        return None
    domains = _continual_domains(model, store)
    branches = []
    for candidate, prefix in zip(candidates, prefixes, strict=True):
        if candidate.schedule is not None:
            lr = schedule_lr(candidate.schedule, _at(prefix, "schedule"))
        else:
            lr = explicit_lr(candidate.lr_per_step, _at(prefix, "lr_per_step"))
        branches.append(
            continual.branch(
                store,
                domains,
                lr,
                getattr(candidate, "domain", None),
                getattr(candidate, "continues", None),
                getattr(candidate, "replay", 0.0),
                prefix,
            )
        )
    return branches


def _continual_domains(model: Model, store: Store | None) -> continual.Domains:
    """The domains of a continual law's fit, with the store its curves' parents are read from."""
    domains = continual.Domains.from_json(model.domains)
    if domains is None or store is None:
        raise InputError(
            f"law {model.fitted.law.name!r} predicts runs that continue stored runs: POST "
            "/v1/predictions with the fit_id of a cpt fit (whose runs name the domains) and "
            "candidates with continues and domain, or GET /v1/runs/{id}/forecast of a stored run",
            "fit_id",
        )
    return domains


def _continual_curves(
    model: Model,
    candidates: Sequence[schemas.Candidate],
    prefixes: Sequence[str],
    branches: Sequence[continual.Branch],
    level: float | None,
) -> tuple[list[Curve], Bands]:
    """:func:`predict_curves` under a continual law: the curves of the candidates' domains, at
    their own steps (a continuation's from its checkpoint, 0, to ``T``)."""
    grids = []
    for candidate, prefix, branch in zip(candidates, prefixes, branches, strict=True):
        if candidate.steps is not None:
            steps = np.asarray(candidate.steps, dtype=np.int64)
            beyond = np.flatnonzero(steps > branch.last_step)
            if beyond.size:
                raise InputError(
                    f"steps must lie in [0, {branch.last_step}] (the phase's steps), got "
                    f"steps[{beyond[0]}]={steps[beyond[0]]}",
                    _at(prefix, "steps"),
                )
        else:
            steps = branch.grid(candidate.num_points or schemas.DEFAULT_NUM_POINTS)
        grids.append(steps)
    histories = [branch.history for branch in branches]
    indices = [branch.indices(steps) for branch, steps in zip(branches, grids, strict=True)]
    names = _names(candidates, prefixes)
    losses, bands = _losses_and_bands(model, histories, indices, grids, names, prefixes, level)
    curves = [
        _branch_curve(branch, steps, loss, band, candidate.name)
        for candidate, branch, steps, loss, band in zip(
            candidates, branches, grids, losses, bands.bands, strict=True
        )
    ]
    return curves, bands


def _branch_curve(branch: continual.Branch, steps, loss, band, name: str | None) -> Curve:
    """A continual law's curve of ``branch`` at its own ``steps`` (a continuation's from its
    checkpoint, 0), with its rate at each step and its band (``(lower, upper)`` or None)."""
    return Curve(
        steps=steps,
        loss=np.asarray(loss, dtype=np.float64),
        lr=branch.rates_at(steps),
        total_steps=int(branch.lr.size),
        warmup_end=warmup_steps_of(branch.lr),
        lower=None if band is None else band[0],
        upper=None if band is None else band[1],
        name=name,
    )


def _losses_and_bands(model, inputs, at, grids, names, prefixes, level):
    """The model's losses for each of ``inputs`` (schedules, or a continual law's histories) at
    ``at`` (their indices into them; ``grids``, the curves' own steps, for messages), and
    their ``level`` bands (``names`` for their notes; ``prefixes`` locate the errors)."""
    try:
        fitted = model.fitted  # an inline model's parameters are checked here
        losses = predict_losses(fitted.law, fitted.params, inputs, at, fitted.warmup)
    except InvalidInput as error:
        raise InputError(str(error)) from error
    _check_finite(prefixes, grids, losses)
    bands = prediction_bands(model, inputs, at, level, names)
    return losses, bands


def _check_finite(prefixes, grids, losses) -> None:
    for prefix, steps, loss in zip(prefixes, grids, losses, strict=True):
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size:
            raise InputError(
                f"the law predicts a non-finite loss at step {int(steps[bad[0]])} with these "
                "parameters",
                prefix or None,
            )


def _names(candidates, prefixes) -> list[str]:
    return [
        candidate.name or prefix or f"candidate {j}"
        for j, (candidate, prefix) in enumerate(zip(candidates, prefixes, strict=True))
    ]


def predict_curves(
    model: Model,
    candidates: Sequence[schemas.Candidate],
    prefixes: Sequence[str],
    level: float | None = None,
    store: Store | None = None,
) -> tuple[list[Curve], Bands]:
    """One predicted curve per candidate, all in one call into ``fitting``, each with its
    ``level`` band when the model has an uncertainty; ``prefixes`` say where each candidate
    sits in the request (``candidates[2]``), for error messages. Under a continual law (cpt)
    the candidates may continue runs of ``store`` (:mod:`app.services.continual`)."""
    branches = _continual_inputs(store, model, candidates, prefixes)
    if branches is not None:
        return _continual_curves(model, candidates, prefixes, branches, level)
    schedules, grids = [], []
    for candidate, prefix in zip(candidates, prefixes, strict=True):
        if candidate.schedule is not None:
            lr = schedule_lr(candidate.schedule, _at(prefix, "schedule"))
        else:
            lr = explicit_lr(candidate.lr_per_step, _at(prefix, "lr_per_step"))
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
    names = _names(candidates, prefixes)
    losses, bands = _losses_and_bands(model, schedules, grids, grids, names, prefixes, level)
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
    curves, bands = predict_curves(model, candidates, prefixes, body.level, store)
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
    run, fit, seen = forecast_inputs(store, run_id, fit_id)
    return forecast_out(run, fit, num_points, level, refit, seen, store)


def forecast_inputs(
    store: Store, run_id: str, fit_id: str | None
) -> tuple[RunRecord, FitRecord, int]:
    """What decides a forecast (its ETag too): the run, its latest fit (or ``fit_id``) and how
    many of the run's points that fit saw. Only reads the store."""
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
    return run, fit, int(seen)


def forecast_out(
    run: RunRecord,
    fit: FitRecord,
    num_points: int,
    level: float | None,
    refit: str = "off",
    points_fitted: int | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """ForecastOut's fields: the prediction of ``fit`` for ``run``'s own schedule, with its
    ``level`` band at the logged steps and on the curve, how many logged points lie inside it,
    what the fit's runs identify, and how current the fit is (``points_fitted`` of the run's
    points seen by the fit, default all). Under a continual law (cpt) the curve is the run's
    domain along its history (:func:`app.services.continual.run_branch`: a continuation's from
    its checkpoint, step 0, to the end of its phase), its parent read from ``store``; no other
    storage, so the CLI calls it too, without one."""
    model = model_of_fit(fit)
    fitted = model.fitted
    branch = None
    if is_continual(fitted.law):
        branch = continual.run_branch(store, _continual_domains(model, store), run)
        grid = branch.grid(num_points)
        inputs, at = [branch.history] * 2, [branch.indices(run.steps), branch.indices(grid)]
    else:
        lr = run_lr(run)
        grid = curve_steps(lr, num_points)
        inputs, at = [lr, lr], [run.steps, grid]
    (logged, loss), bands = _losses_and_bands(
        model, inputs, at, [run.steps, grid], ["logged", "curve"], ["fit_id"] * 2, level
    )
    at_logged, on_grid = bands.bands
    if branch is not None:
        curve = _branch_curve(branch, grid, loss, on_grid, run.name)
    else:
        curve = Curve.on_schedule(lr, grid, loss, on_grid, run.name)
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
        "curve": curve.to_json(),
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
