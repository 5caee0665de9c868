"""``/v1/runs``: logged runs in, listed, appended to (idempotent on step), deleted; forecasts."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app import __version__, budgets, http_cache, queries, schemas, services
from app.deps import Compute, get_compute, get_refits, get_settings, get_store, in_thread
from app.errors import REFUSES_METHODS, InputError
from app.io import Selection, parse_mapping, read_points
from app.refits import Refits
from app.services import imports, predictions, runs
from app.settings import Settings
from app.storage import Store

router = APIRouter(prefix="/v1/runs", tags=["runs"])

StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RefitsDep = Annotated[Refits, Depends(get_refits)]

# The form fields of both uploads (CSV and other tools' logs).
GroupForm = Annotated[str | None, Form(min_length=1, max_length=256, description=schemas.GROUP_DOC)]
MetadataForm = Annotated[str | None, Form(description="a JSON object")]
ScheduleForm = Annotated[
    str | None,
    Form(description="a JSON spec, or the compact form cosine:peak_lr=3e-4,total_steps=..."),
]
NO_RUN = {"e404": "no such run"}
#: OpenAPI links from a created run to what can be done with it (clients and schemathesis'
#: stateful tests follow them).
RUN_LINKS = {
    "GetRun": {
        "operationId": "get_run_v1_runs__run_id__get",
        "parameters": {"run_id": "$response.body#/id"},
    },
    "AppendPoints": {
        "operationId": "append_points_v1_runs__run_id__points_post",
        "parameters": {"run_id": "$response.body#/id"},
    },
    "Forecast": {
        "operationId": "forecast_v1_runs__run_id__forecast_get",
        "parameters": {"run_id": "$response.body#/id"},
    },
    "FitRun": {
        "operationId": "create_fit_v1_fits_post",
        "description": "fit this run alone, without bands (the quickest fit)",
        "requestBody": {"run_ids": ["$response.body#/id"], "intervals": False},
        # The body is the request, not a part of one: merged into a generated body, run_ids
        # would keep the generated ids after this one (each a 404).
        "x-schemathesis": {"merge_body": False},
    },
    "DeleteRun": {
        "operationId": "delete_run_v1_runs__run_id__delete",
        "parameters": {"run_id": "$response.body#/id"},
    },
}


def _created(run, warnings, response: Response) -> dict:
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return runs.run_out(run, warnings=warnings)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.RunOut,
    responses={201: {"links": RUN_LINKS}, **schemas.error_responses(413, 422, 503)},
)
def create_run(body: schemas.RunCreate, store: StoreDep, settings: SettingsDep, response: Response):
    """Store a logged run: its points and where its per-step learning rate comes from.
    A run over the budgets (``LOSSCAST_MAX_RUN_POINTS``, ``LOSSCAST_MAX_RUN_STEPS``) is a 422."""
    budgets.check_new_run(settings, body)
    runs.check_continues(store, body)
    new_run, warnings = runs.build_run(body)
    return _created(store.create_run(new_run), warnings, response)


@router.post(
    "/csv",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.RunOut,
    responses=schemas.error_responses(413, 422, 503),
)
def upload_run_csv(
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV with header step,lr,loss (lr optional)")],
    name: Annotated[str, Form(min_length=1, max_length=256)],
    group: GroupForm = None,
    metadata: MetadataForm = None,
    schedule: ScheduleForm = None,
):
    """Store a run uploaded as CSV (multipart form). Without ``schedule`` the rate is
    interpolated from the lr column."""
    points = read_points(file.file.read(), "csv")
    meta = _metadata(metadata)
    spec = queries.parse_compact_schedule(schedule) if schedule else None
    try:
        body = schemas.RunCreate(
            name=name, group=group, metadata=meta, points=points, schedule=spec
        )
    except ValidationError as error:
        raise InputError(str(error)) from error
    budgets.check_new_run(settings, body)
    new_run, warnings = runs.build_run(body)
    return _created(store.create_run(new_run), warnings, response)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ImportOut,
    responses=schemas.error_responses(413, 422, 503),
)
def import_runs(
    store: StoreDep,
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="the log as the tool wrote it: one file (a TensorBoard event file, "
            "trainer_state.json, metrics.csv, an MLflow SQLite store, a W&B CSV/JSON lines "
            "export, a CSV/TSV), several files of one log directory, or a zip of a directory "
            "(a TensorBoard log dir, an mlruns file store)"
        ),
    ],
    format: Annotated[
        str | None,
        Form(description="tensorboard, wandb, hf, lightning, mlflow or table (default: detected)"),
    ] = None,
    loss: Annotated[
        str | None, Form(description="the training loss's series (default: guessed)")
    ] = None,
    eval_loss: Annotated[
        str | None, Form(description="the validation loss's series, or none (default: guessed)")
    ] = None,
    lr: Annotated[str | None, Form(description="the learning rate's series, or none")] = None,
    step: Annotated[
        str | None, Form(description="a table's step column (default: guessed)")
    ] = None,
    columns: Annotated[
        str | None,
        Form(description="a table's column mapping: step=iteration,loss=train_loss,lr=lr"),
    ] = None,
    name: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    group: GroupForm = None,
    metadata: MetadataForm = None,
    schedule: ScheduleForm = None,
):
    """Store the curves of another tool's log, one run per curve: the training loss and the
    validation loss (a second run, ``<name>/<metric>``, of the same group). Every run is
    validated before any is stored. The learning rate comes from ``schedule`` or from the log."""
    mapping = parse_mapping(columns)
    selection = Selection(
        loss=loss or mapping.get("loss"),
        eval_loss=eval_loss or mapping.get("eval_loss"),
        lr=lr or mapping.get("lr"),
    )
    meta = _metadata(metadata)
    spec = queries.parse_compact_schedule(schedule) if schedule else None
    uploads = [(upload.filename or "", upload.file.read()) for upload in files]
    found, curves = imports.import_upload(
        uploads,
        format,
        selection,
        step=step or mapping.get("step"),
        name=name,
        group=group,
        declared_schedule=spec is not None,
    )
    built = imports.build_runs(imports.run_bodies(curves, schedule=spec, metadata=meta), settings)
    stored = [(store.create_run(new_run), warnings) for new_run, warnings in built]
    notes = list(dict.fromkeys(note for curve in curves for note in curve.notes))
    return {
        "format": found,
        "runs": [{**runs.summary_out(run), "warnings": warnings} for run, warnings in stored],
        "notes": notes,
    }


def _metadata(text: str | None) -> dict:
    try:
        meta = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error}", "metadata") from error
    if not isinstance(meta, dict):
        raise InputError("must be a JSON object", "metadata")
    return meta


@router.api_route(
    "/import", methods=["GET", "DELETE"], include_in_schema=False, name=REFUSES_METHODS
)
def import_is_upload_only():
    """Like ``/csv``: a path to upload to, not a run called "import"."""
    raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED)


@router.api_route("/csv", methods=["GET", "DELETE"], include_in_schema=False, name=REFUSES_METHODS)
def csv_is_upload_only():
    """``/v1/runs/csv`` is only uploaded to: without this, ``GET /v1/runs/csv`` would read a run
    called "csv" (``/{run_id}``) and answer 404 where the path exists and the method does not."""
    raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED)


@router.get("", response_model=schemas.RunPage, responses=schemas.error_responses(422, 503))
def list_runs(
    store: StoreDep,
    name: Annotated[str | None, Query(description="exact name")] = None,
    name_contains: Annotated[str | None, Query(max_length=256)] = None,
    group: Annotated[str | None, Query(max_length=256, description="runs of this group")] = None,
    metadata: Annotated[
        list[str] | None, Query(description="key=value, repeatable; values compared as JSON")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=schemas.MAX_OFFSET)] = 0,
    domain: Annotated[str | None, Query(max_length=256, description="runs of this domain")] = None,
    continues: Annotated[
        str | None, Query(max_length=64, description="the runs that continue this run (by id)")
    ] = None,
):
    """Runs, newest first, one page at a time."""
    filters = queries.parse_metadata_filters(metadata or [])
    found, total = store.list_runs(
        name=name,
        name_contains=name_contains,
        group=group,
        domain=domain,
        continues=continues,
        metadata=filters,
        limit=limit,
        offset=offset,
    )
    return services.page([runs.summary_out(run) for run in found], total, limit, offset)


@router.get(
    "/{run_id}",
    response_model=schemas.RunOut,
    responses=schemas.error_responses(404, 422, 503, **NO_RUN),
)
def get_run(run_id: str, store: StoreDep, include_lr: bool = False):
    """One run with its points (``include_lr=true`` adds an explicit ``lr_per_step``)."""
    return runs.run_out(store.get_run(run_id), include_lr=include_lr)


@router.post(
    "/{run_id}/points",
    response_model=schemas.AppendOut,
    responses=schemas.error_responses(
        404, 409, 413, 422, 503, **NO_RUN, e409="a logged step with a different value"
    ),
)
def append_points(
    run_id: str, points: schemas.Points, store: StoreDep, settings: SettingsDep, refits: RefitsDep
):
    """Append points from a live job. Idempotent on step: a step already logged with the same
    loss is skipped, with a different loss it is a 409; new steps come after the last one.
    Points of a run whose points carry a logged ``lr`` must carry it too (422 otherwise).
    New points of a run in a group, or of one fitted before, schedule a background refit
    (debounced; the forecast's ``freshness`` says how current its fit is)."""
    outcome = runs.append_points(store, run_id, points, settings)
    if outcome.appended and refits.wanted(outcome.run):
        refits.schedule(run_id)
    return {
        **runs.run_out(outcome.run),
        "appended": outcome.appended,
        "unchanged": outcome.unchanged,
    }


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=schemas.error_responses(404, 503, **NO_RUN),
)
def delete_run(run_id: str, store: StoreDep) -> Response:
    """Delete a run. Fits that used it keep what they saw of it."""
    store.delete_run(run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{run_id}/forecast",
    response_model=schemas.ForecastOut,
    responses={
        304: {"description": "If-None-Match matched the ETag: nothing new since"},
        **schemas.error_responses(404, 422, 503, e404="no such run or fit, or no fit yet"),
    },
)
async def forecast(
    run_id: str,
    request: Request,
    store: StoreDep,
    compute: Annotated[Compute, Depends(get_compute)],
    refits: RefitsDep,
    fit_id: Annotated[str | None, Query(description="default: the run's latest fit")] = None,
    num_points: Annotated[int, Query(ge=1, le=schemas.MAX_CURVE_POINTS)] = (
        schemas.DEFAULT_NUM_POINTS
    ),
    level: schemas.LevelQuery = str(schemas.DEFAULT_LEVEL),
):
    """The run's logged points with the prediction of its latest fit for its own schedule,
    with the ``level`` band at the logged steps and on the curve (when the fit has an
    uncertainty) and the fraction of logged points inside it (``coverage``); what the fit's
    runs identify of the law (``identification``: what rests on a prior) and how current the
    fit is (``freshness``). A strong ETag (the run's version, the fit, the refit's state, the
    query) lets a dashboard poll: 304 on If-None-Match, with nothing computed."""
    band_level = queries.parse_level(level)
    refit = await in_thread(refits.state, run_id)  # reads the refit's job, if queued
    run, fit, seen = await in_thread(predictions.forecast_inputs, store, run_id, fit_id)
    etag = http_cache.forecast_etag(
        run.id, run.version, fit.id, refit, num_points, __version__, band_level
    )
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if http_cache.etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    out = await compute.run(
        predictions.forecast_out, run, fit, num_points, band_level, refit, seen, store
    )
    return JSONResponse(schemas.ForecastOut(**out).model_dump(mode="json"), headers=headers)
