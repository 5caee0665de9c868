"""``POST /v1/plans``: budget planning under a stored fit or inline law parameters -- compare
schedules, choose a cooldown, find the steps to a target loss or the loss of a budget, optimise a
schedule. The numerics are :mod:`fitting.plan`'s and the JSON of its records
:mod:`app.plan_json`'s; this module picks the fitted law and the cost of a step, and assembles
the answer. Plans are computed, not stored."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from app import budgets
from app import plan_schemas as schemas
from app.deps import Compute, get_compute, get_settings, get_store
from app.domain import FittedLaw
from app.errors import InputError, NotFound
from app.plan_json import continuation_json, optimised_json, record_json
from app.schemas import error_responses
from app.services import continual, predictions
from app.settings import Settings
from app.storage import FitRecord, Store
from fitting import plan
from fitting.errors import InvalidInput
from fitting.laws import is_continual

router = APIRouter(prefix="/v1/plans", tags=["plans"])


def _metadata_scale(store: Store, fit: FitRecord) -> plan.TrainingScale:
    """Tokens per step and model size from the fitted runs' metadata, when they all agree."""
    try:
        runs = store.get_runs(fit.run_ids)
    except NotFound:  # a run was deleted since: the fit stands, its metadata is gone
        return plan.TrainingScale()
    scales = {plan.TrainingScale.from_metadata(run.metadata) for run in runs}
    return scales.pop() if len(scales) == 1 else plan.TrainingScale()


def _fitted_law(store: Store, body) -> tuple[FittedLaw, str | None, plan.TrainingScale]:
    if body.fit_id is not None:
        fit = store.get_fit(body.fit_id, with_runs=False)
        model = predictions.model_of_fit(fit)  # with the uncertainty POST /v1/fits stored
        known = _metadata_scale(store, fit)
    else:
        model = predictions.inline_model(body.law, body.params, body.warmup)
        known = plan.TrainingScale()
    try:
        scale = plan.TrainingScale(
            body.tokens_per_step if body.tokens_per_step is not None else known.tokens_per_step,
            body.n_params if body.n_params is not None else known.n_params,
        )
    except InvalidInput as error:
        raise InputError(str(error), "params") from error
    return model.fitted, model.fit_id, scale


def _compare(model, scale, body: schemas.ComparePlan):
    schedules, names = [], []
    for j, candidate in enumerate(body.candidates):
        given = candidate.schedule if candidate.schedule is not None else candidate.lr_per_step
        schedules.append(given)
        names.append(candidate.name or f"candidate {j}")
    ranking = plan.compare_schedules(
        model, schedules, names, num_points=body.num_points, scale=scale, level=body.level
    )
    return ranking[0].planned(), {"ranking": [record_json(f) for f in ranking]}


def _cooldown(model, scale, body: schemas.CooldownPlanRequest):
    result = plan.best_cooldown(
        model,
        **plan.frame_of(body.schedule),
        fractions=body.fractions,
        decay_types=body.decay_types,
        tolerance=body.tolerance,
        scale=scale,
    )
    return result.planned(), record_json(result)


def _steps_to_target(model, scale, body: schemas.StepsToTargetPlan):
    result = plan.steps_to_target(
        model,
        body.schedule,
        body.target_loss,
        min_steps=body.min_steps,
        max_steps=body.max_steps,
        scale=scale,
    )
    return result.planned(), record_json(result)


def _budget(model, scale, body: schemas.BudgetPlan, settings: Settings | None):
    if body.total_steps is None:  # tokens or FLOPs: their steps are known now, with the scale
        try:
            steps = scale.steps_for(tokens=body.tokens, flops=body.flops)
        except InvalidInput as error:
            raise InputError(str(error)) from error
        budgets.check_budget_plan(settings, steps, body.num_points)
    forecast = plan.loss_for_budget(
        model,
        body.schedule,
        total_steps=body.total_steps,
        tokens=body.tokens,
        flops=body.flops,
        scale=scale,
        num_points=body.num_points,
        level=body.level,
    )
    return forecast.planned(), record_json(forecast)


def _optimise(model, scale, body: schemas.OptimisePlan):
    result = plan.optimise_schedule(
        model,
        **plan.frame_of(body.schedule),
        num_knots=body.num_knots,
        max_iterations=body.max_iterations,
        scale=scale,
    )
    return result.planned(), optimised_json(result, include_lr=body.include_lr_per_step)


def _cpt(model, scale, body: schemas.CptPlan, store: Store | None):
    if store is None:
        raise InputError("a cpt plan continues a stored run: ask a running service (--url)")
    try:
        parent = store.get_run(body.continues.run_id)
    except NotFound:
        raise InputError(
            f"no run {body.continues.run_id!r} to continue", "continues.run_id"
        ) from None
    if continual.is_continuing(parent):
        raise InputError(
            f"run {parent.id!r} continues another run: the cpt law continues a base run",
            "continues.run_id",
        )
    if body.continues.at_step >= parent.total_steps:
        raise InputError(
            f"at_step must lie within the parent's schedule [0, {parent.total_steps - 1}], got "
            f"at_step={body.continues.at_step}",
            "continues.at_step",
        )
    result = plan.plan_continuation(
        model,
        continual.base_rates(parent, body.continues.at_step),
        body.total_steps,
        peaks=body.peaks,
        shapes=body.shapes,
        replays=body.replays,
        num_warmup_steps=body.num_warmup_steps,
        min_lr=body.min_lr,
        old_ceiling=body.old_ceiling,
        scale=scale,
    )
    return result.planned(), continuation_json(result)


PLANNERS = {
    "compare": _compare,
    "cooldown": _cooldown,
    "steps_to_target": _steps_to_target,
    "budget": _budget,
    "optimise": _optimise,
    "cpt": _cpt,
}


def make_plan(store: Store, body, settings: Settings | None = None) -> dict[str, Any]:
    """The plan ``body`` asks for, as the response's dict (synchronous, CPU-heavy). With
    ``settings``, a ``budget`` in tokens or FLOPs is held to the request budgets once the fit's
    cost of a step is known (the router checked the rest); the CLI computes without them."""
    began = time.perf_counter()
    model, fit_id, scale = _fitted_law(store, body)
    planner = PLANNERS[body.kind]
    if is_continual(model.law) != (body.kind == "cpt"):
        raise InputError(
            f"plan kind {body.kind!r} needs a fit of "
            + ("the continual law (cpt)" if body.kind == "cpt" else "a schedule law")
            + f"; this one is of {model.law.name!r}",
            "kind",
        )
    try:
        if body.kind == "budget":
            planned, result = planner(model, scale, body, settings)
        elif body.kind == "cpt":
            planned, result = planner(model, scale, body, store)
        else:
            planned, result = planner(model, scale, body)
    except InputError:
        raise
    except InvalidInput as error:  # fitting/ names the bad value; anything else is a bug (500)
        raise InputError(str(error)) from error
    return {
        "kind": body.kind,
        "fit_id": fit_id,
        "law": model.law.name,
        "params": dict(model.params),
        "warmup": model.warmup,
        "tokens_per_step": scale.tokens_per_step,
        "n_params": scale.n_params,
        "planned": record_json(planned),
        "result": result,
        "seconds": time.perf_counter() - began,
    }


@router.post(
    "",
    response_model=schemas.PlanOut,
    responses=error_responses(404, 413, 422, 503, e404="no such fit"),
)
async def create_plan(
    body: Annotated[schemas.PlanRequest, Body()],
    store: Annotated[Store, Depends(get_store)],
    compute: Annotated[Compute, Depends(get_compute)],
    settings: Annotated[Settings, Depends(get_settings)],
):
    """A budget plan under a fitted law; ``kind`` says which:

    - ``compare``: candidate schedules ranked by predicted final loss, with their curves.
    - ``cooldown``: WSD's final loss over cooldown fractions and shapes at a fixed length.
    - ``steps_to_target``: the fewest steps of a schedule family that reach ``target_loss``.
    - ``budget``: the final loss ``total_steps``, ``tokens`` or ``flops`` buy with a family.
    - ``optimise``: the monotone schedule that minimises the final loss, against cosine and
      the best WSD.
    - ``cpt`` (a fit of the continual law): continuing a stored run for ``total_steps``, every
      re-warm peak x decay shape x replay share with its final loss on the new and the old
      domain, the Pareto front, and the best new-domain final under ``old_ceiling``.

    ``planned`` is the run the plan recommends (or evaluates) and its predicted final loss.

    A plan whose grid holds more schedule steps than the service's budget
    (``LOSSCAST_MAX_PLAN_STEPS``; ``compare`` and ``budget``: the prediction budgets) is a 422
    at once."""
    budgets.check_plan(settings, body)
    return await compute.run(make_plan, store, body, settings)
