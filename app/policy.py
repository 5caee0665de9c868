"""The fit policy, shared by the service and the CLI: which law (``auto`` cross-validates every
registered law), its cross-validation, the other laws' fits and the uncertainty behind the
prediction bands, and what to say when one of them cannot be had.

No HTTP and no SQL here: :func:`fit_report` takes runs and a fit request and returns the
:class:`~app.domain.FitReport` (``app/services/fits.py`` stores it; ``losscast fit`` prints
it), so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from app import schemas
from app.domain import FitReport
from app.errors import InputError
from fitting.errors import InvalidInput
from fitting.fit import FitResult, Run, fit_law
from fitting.intervals import Uncertainty, estimate_uncertainty
from fitting.laws import LAWS, Law, get_law
from fitting.select import Validation, choose_law, cross_validate, selection_scores

#: What fitting valid-looking runs can raise and still not be a bug: input ``fitting/`` finds
#: wrong only once it looks closer (``min_step`` past every point), and numerical failure (a
#: singular matrix, an overflow). A fit that does not converge raises nothing: it says so in
#: ``FitResult.converged`` and ``message``. Any other exception is a bug and reaches the user as
#: a 500 with a request id (``app/errors.py``), not as "your input is wrong".
FIT_ERRORS = (InvalidInput, ArithmeticError, np.linalg.LinAlgError)


def law_named(name: str, where: str = "law") -> Law:
    """The registered law ``name``; an :class:`~app.errors.InputError` at ``where`` otherwise."""
    try:
        return get_law(name)
    except InvalidInput as error:
        raise InputError(str(error), where) from error


def fit_report(
    runs: Sequence[Run],
    body: schemas.FitCreate,
    laws: Sequence[Law] | None = None,
    groups: Sequence[str] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    targets: Sequence[int] | None = None,
    **report: Any,
) -> FitReport:
    """Fit ``body.law`` (or choose one, ``auto``) to ``runs`` and, unless ``body.intervals`` is
    false, cross-validate it for its prediction intervals. Returns the fit's report: the
    :class:`~fitting.fit.FitResult`'s fields, ``selection``, ``validation``, ``uncertainty`` and
    ``uncertainty_note`` (and ``report``'s other fields, e.g. a continual fit's ``domains``).

    ``laws``: the laws ``auto`` compares and whose disagreement widens the bands (default the
    schedule laws, :data:`~fitting.laws.LAWS`; runs that continue runs are fitted as histories,
    which only :data:`~fitting.laws.CONTINUAL_LAWS` read). ``groups``: a label per run; with at
    least two, the cross-validation holds out one group at a time
    (:func:`fitting.select.cross_validate`). ``progress`` is told each stage as the fit starts
    it (:data:`FIT_STAGES`, :func:`_stage_reporter`). ``targets``: the indices of the runs the
    fit is for when others only lend them strength (a group's runs): ``auto`` chooses by how
    well each law predicts those (:func:`fitting.select.selection_scores`), and their bands' model
    error is how well the law predicts them (:func:`fitting.intervals.estimate_uncertainty`)."""
    candidates = list(LAWS.values()) if laws is None else list(laws)
    began = time.perf_counter()
    options = {
        "warmup": body.warmup,
        "min_step": body.min_step,
        "fixed": body.fixed,
        "bounds": body.bounds,
        "huber_delta": body.huber_delta,
    }
    stage = _stage_reporter(body, progress)
    alternatives: list[FitResult] = []
    if body.law == schemas.AUTO:
        stage("selecting")
        law, result, validation, selection = _chosen_fit(runs, options, candidates, groups, targets)
        if body.intervals and not isinstance(validation, str):
            stage("other_laws")
            alternatives = _other_laws(law, runs, options, candidates)
    else:
        law, selection = law_named(body.law), None
        stage("fitting")
        result = _fit(law, runs, options)
        if body.intervals:
            stage("cross_validating")
        validation = _validated(law, runs, options, groups) if body.intervals else None
    uncertainty, note = None, None
    if isinstance(validation, str):  # why there is no cross-validation
        note, validation = f"no prediction intervals: {validation}", None
    if not body.intervals:
        note = "no prediction intervals: the fit was asked for without them (intervals: false)"
    elif validation is not None:
        stage("intervals")
        uncertainty, note = _uncertainty(law, result, runs, validation, alternatives, targets)
    return FitReport.of_fit(
        result,
        selection=selection,
        validation=None if validation is None else validation.summary(),
        uncertainty=None if uncertainty is None else uncertainty.to_dict(),
        uncertainty_note=note,
        total_seconds=time.perf_counter() - began,  # with the cross-validation
        **report,
    )


#: The stages of a fit, in the order it goes through them (a job's ``progress``).
FIT_STAGES = {
    "selecting": "law auto: every law cross-validated, and the best fitted to all runs",
    "fitting": "the law fitted to all runs",
    "cross_validating": "the law cross-validated (for its prediction intervals)",
    "other_laws": "law auto: the other laws fitted (their disagreement widens the bands)",
    "intervals": "the prediction intervals' uncertainty estimated",
}


def fit_stages(body: schemas.FitCreate) -> list[str]:
    """The stages of :data:`FIT_STAGES` a fit of ``body`` goes through, in order (one without
    enough points to cross-validate stops after the first)."""
    if body.law == schemas.AUTO:
        stages = ["selecting", "other_laws", "intervals"]
    else:
        stages = ["fitting", "cross_validating", "intervals"]
    return stages if body.intervals else stages[:1]


def _stage_reporter(
    body: schemas.FitCreate, progress: Callable[[dict[str, Any]], None] | None
) -> Callable[[str], None]:
    """``stage(name)``: tells ``progress`` (if any) that the fit starts stage ``name``, as
    ``{"stage": name, "step": its place (1-based), "steps": the stages of this fit}``."""
    stages = fit_stages(body)

    def stage(name: str) -> None:
        if progress is not None:
            progress({"stage": name, "step": stages.index(name) + 1, "steps": len(stages)})

    return stage


def _fit(law: Law, runs: Sequence[Run], options: Mapping[str, Any]) -> FitResult:
    try:
        return fit_law(law, runs, **options)
    except FIT_ERRORS as error:
        raise InputError(f"the fit failed: {error}") from error


def _validated(
    law: Law, runs: Sequence[Run], options: Mapping[str, Any], groups=None
) -> Validation | str:
    """The law's cross-validation on ``runs``, or why there is none (too few points)."""
    try:
        validation = cross_validate(law, runs, groups, **options)
    except FIT_ERRORS as error:
        return f"cannot cross-validate: {error}"
    if not validation.log_residuals:
        return "cannot cross-validate: no fold could be fitted and predict held-out points"
    return validation


def _chosen_fit(
    runs: Sequence[Run], options: Mapping[str, Any], laws: Sequence[Law], groups=None, targets=None
) -> tuple[Law, FitResult, Validation | str, dict[str, Any]]:
    """``law: auto``: every law of ``laws`` cross-validated, the best fitted to all runs
    (:func:`fitting.select.choose_law`). Without enough points to cross-validate, the default
    law (the first of ``laws`` when the default is not among them) is fitted and the selection
    says why."""
    reason = None
    try:
        result, chosen, validations = choose_law(runs, laws, groups, targets, **options)
    except FIT_ERRORS as error:  # too few points to hold any out, or the chosen law's fit failed
        reason = f"cannot cross-validate: {error}"
    if reason is not None:
        names = [law.name for law in laws]
        law = law_named(schemas.DEFAULT_LAW if schemas.DEFAULT_LAW in names else names[0])
        result = _fit(law, runs, options)
        selection = {
            "chosen": law.name,
            "scheme": None,
            "candidates": [],
            "note": f"no choice by evidence ({reason}); fitted the default law {law.name!r}",
        }
        return law, result, reason, selection
    scores, criterion = selection_scores(validations, targets)
    selection = {
        "chosen": chosen.law,
        "scheme": chosen.scheme,
        "criterion": criterion,
        "scores": {
            v.law: score if np.isfinite(score) else None
            for v, score in zip(validations, scores, strict=True)
        },
        "candidates": [validation.summary() for validation in validations],
    }
    validation = chosen if chosen.log_residuals else "no fold of the chosen law could be fitted"
    return law_named(result.law), result, validation, selection


def _other_laws(
    law: Law, runs: Sequence[Run], options: Mapping[str, Any], laws: Sequence[Law]
) -> list[FitResult]:
    """With ``auto``, every other law of ``laws`` fitted to the same runs: their disagreement
    with the chosen law widens its bands (:mod:`fitting.intervals`). A law whose fit fails is
    left out."""
    fits = []
    for other in laws:
        if other.name != law.name:
            try:
                fits.append(fit_law(other, runs, **options))
            except FIT_ERRORS:
                continue
    return fits


def _uncertainty(
    law: Law,
    result: FitResult,
    runs: Sequence[Run],
    validation: Validation,
    alternatives: Sequence[FitResult] = (),
    targets: Sequence[int] | None = None,
) -> tuple[Uncertainty | None, str | None]:
    try:
        uncertainty = estimate_uncertainty(law, result, runs, validation, alternatives, targets)
    except FIT_ERRORS as error:
        return None, f"no prediction intervals: the uncertainty could not be estimated ({error})"
    numbers = [uncertainty.noise, uncertainty.autocorrelation, uncertainty.model_error]
    if not (np.all(np.isfinite(uncertainty.covariance)) and np.all(np.isfinite(numbers))):
        return None, "no prediction intervals: the estimated uncertainty is not finite"
    return uncertainty, None
