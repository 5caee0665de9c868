"""``/v1/fits``: fit a law to stored runs (in the compute pool); list, read, and poll curves."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app import __version__, budgets, http_cache, jobs, queries, schemas, services
from app.deps import Compute, get_compute, get_settings, get_store, in_thread
from app.services import fits, predictions
from app.settings import Settings
from app.storage import Store

router = APIRouter(prefix="/v1/fits", tags=["fits"])
logger = logging.getLogger("losscast")

StoreDep = Annotated[Store, Depends(get_store)]
ComputeDep = Annotated[Compute, Depends(get_compute)]
#: OpenAPI links from a fit (created or read) to what can be asked of it.
FIT_LINKS = {
    "GetFit": {
        "operationId": "get_fit_v1_fits__fit_id__get",
        "parameters": {"fit_id": "$response.body#/id"},
    },
    "FitCurve": {
        "operationId": "fit_curve_v1_fits__fit_id__curve_get",
        "parameters": {
            "fit_id": "$response.body#/id",
            "schedule": "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5",
        },
    },
    "Predict": {
        "operationId": "predict_v1_predictions_post",
        "description": "the fit's curve for a schedule",
        "requestBody": {"fit_id": "$response.body#/id", "schedule": schemas.COSINE_24000},
        # The body is the request: a generated one it were merged into holds law and params,
        # warmup, lr_per_step or steps beyond the schedule about as often as not (each a 422).
        "x-schemathesis": {"merge_body": False},
    },
    "Forecast": {
        "operationId": "forecast_v1_runs__run_id__forecast_get",
        "parameters": {"run_id": "$response.body#/run_ids/0", "fit_id": "$response.body#/id"},
    },
    "ComparePlan": {
        "operationId": "create_plan_v1_plans_post",
        "requestBody": {
            "kind": "compare",
            "fit_id": "$response.body#/id",
            "candidates": [{"schedule": schemas.COSINE_24000}, {"schedule": schemas.WSD_24000}],
        },
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.FitOut,
    responses={
        201: {"links": FIT_LINKS},
        202: {
            "model": schemas.JobOut,
            "description": (
                "queued as a job (Prefer: respond-async), or a fit that outlasted the time "
                "limit (LOSSCAST_SYNC_FIT_SECONDS) and goes on as a running job; Location "
                "polls it"
            ),
            "headers": {
                "Location": {"description": "the job: /v1/jobs/{id}", "schema": {"type": "string"}},
                "Retry-After": {
                    "description": "seconds to wait before polling it",
                    "schema": {"type": "integer"},
                },
            },
        },
        **schemas.error_responses(
            404, 413, 422, 503, e404="no such run", e422="bad options, or the fit failed"
        ),
    },
)
async def create_fit(
    body: schemas.FitCreate,
    store: StoreDep,
    compute: ComputeDep,
    settings: Annotated[Settings, Depends(get_settings)],
    response: Response,
    prefer: Annotated[
        str | None,
        Header(description="`respond-async`: queue the fit as a job (202, poll /v1/jobs/{id})"),
    ] = None,
):
    """Fit a law jointly to runs as they are now. The fit records what it saw, so later
    appends do not change it. A fit that did not converge is stored with converged=false.

    With ``Prefer: respond-async`` the fit is queued for a worker (``losscast worker``; on the
    embedded SQLite database the server runs one itself) and the answer is a 202 with the job,
    whose ``Location`` is polled until ``done``. Without it the fit runs in the request, for at
    most ``LOSSCAST_SYNC_FIT_SECONDS`` (20 s): a fit still running then is answered the same
    way (202, its job ``running``) and stored by that job when it ends, once.

    ``law: "auto"`` cross-validates every registered law and fits the best (``selection``
    says why). Unless ``intervals`` is false, the law is cross-validated and the fit stores
    its uncertainty, so predictions from it carry prediction bands; with too few points to
    hold any out, the fit succeeds without (``uncertainty`` null, ``uncertainty_note``).
    The cross-validation fits run in the same worker call, so fits stay one at a time."""
    if prefer and "respond-async" in prefer.lower():
        job = await in_thread(jobs.submit_fit, store, body)
        return _job_accepted(job, {"Preference-Applied": "respond-async"})
    worker = jobs.Worker(store, f"api:{jobs.worker_name()}", lease=settings.job_lease)
    sync_fit = jobs.SyncFit(worker, body)
    started = await compute.start_fit(sync_fit.run)
    if not await started.wait(settings.sync_fit_seconds):
        try:
            job = await in_thread(sync_fit.hand_over)
        except Exception:  # no job without the database: the client waits for the fit instead
            logger.exception("a fit past its time limit could not become a job")
            job = None
        if job is not None:
            return _job_accepted(job)
        await started.wait()
    fit = started.result()
    response.headers["Location"] = f"/v1/fits/{fit.id}"
    return fits.fit_out(fit)


def _job_accepted(job, headers: dict[str, str] | None = None) -> JSONResponse:
    """202 with the job, where to poll it and when."""
    headers = {
        "Location": f"/v1/jobs/{job.id}",
        "Retry-After": str(jobs.POLL_AFTER_SECONDS),
        **(headers or {}),
    }
    body = jsonable_encoder(schemas.JobOut(**jobs.job_out(job)))
    return JSONResponse(body, status_code=202, headers=headers)


@router.get("", response_model=schemas.FitPage, responses=schemas.error_responses(422, 503))
def list_fits(
    store: StoreDep,
    run_id: Annotated[str | None, Query(description="fits that used this run")] = None,
    law: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=schemas.MAX_OFFSET)] = 0,
):
    """Fits, newest first."""
    found, total = store.list_fits(run_id=run_id, law=law, limit=limit, offset=offset)
    return services.page([fits.fit_out(fit) for fit in found], total, limit, offset)


@router.get(
    "/{fit_id}",
    response_model=schemas.FitOut,
    responses={
        200: {"links": FIT_LINKS},
        **schemas.error_responses(404, 503, e404="no such fit"),
    },
)
def get_fit(fit_id: str, store: StoreDep):
    return fits.fit_out(store.get_fit(fit_id))


@router.get(
    "/{fit_id}/curve",
    response_model=schemas.PredictionOut,
    responses={
        304: {"description": "If-None-Match matched the ETag"},
        **schemas.error_responses(404, 422, 503, e404="no such fit"),
    },
)
async def fit_curve(
    fit_id: str,
    request: Request,
    store: StoreDep,
    compute: ComputeDep,
    settings: Annotated[Settings, Depends(get_settings)],
    schedule: Annotated[
        str,
        Query(
            max_length=4096,
            description="type:key=value,... (lists as [a,b]) or a JSON spec",
            examples=["cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5"],
        ),
    ],
    num_points: Annotated[int, Query(ge=1, le=schemas.MAX_CURVE_POINTS)] = (
        schemas.DEFAULT_NUM_POINTS
    ),
    level: schemas.LevelQuery = str(schemas.DEFAULT_LEVEL),
):
    """The fit's predicted curve for a schedule given in the query, for dashboards that poll:
    the same body as ``POST /v1/predictions`` (with ``lower``/``upper`` at ``level``), a strong
    ETag (fit id and normalised query) and Cache-Control; 304 on If-None-Match."""
    spec = queries.parse_compact_schedule(schedule)
    band_level = queries.parse_level(level)
    budgets.check_curve(settings, spec, num_points)
    fit = await in_thread(lambda: store.get_fit(fit_id, with_runs=False))
    etag = http_cache.curve_etag(fit.id, spec, num_points, __version__, band_level)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={settings.curve_max_age}"}
    if http_cache.etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    out = await compute.run(predictions.fit_curve, fit, spec, num_points, band_level)
    body = schemas.PredictionOut(**out)
    return JSONResponse(body.model_dump(mode="json"), headers=headers)
