"""``/v1/runs``: logged runs in, listed, appended to (idempotent on step), deleted; forecasts."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile, status

from app import schemas, service
from app.deps import Compute, get_compute, get_store
from app.errors import InputError
from app.storage import Store

router = APIRouter(prefix="/v1/runs", tags=["runs"])

StoreDep = Annotated[Store, Depends(get_store)]
NOT_FOUND = {404: {"description": "no such run"}}


def _created(run, warnings, response: Response) -> dict:
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return service.run_out(run, warnings=warnings)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.RunOut)
def create_run(body: schemas.RunCreate, store: StoreDep, response: Response):
    """Store a logged run: its points and where its per-step learning rate comes from."""
    new_run, warnings = service.build_run(body)
    return _created(store.create_run(new_run), warnings, response)


@router.post("/csv", status_code=status.HTTP_201_CREATED, response_model=schemas.RunOut)
def upload_run_csv(
    store: StoreDep,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV with header step,lr,loss (lr optional)")],
    name: Annotated[str, Form(min_length=1, max_length=256)],
    metadata: Annotated[str | None, Form(description="a JSON object")] = None,
    schedule: Annotated[
        str | None,
        Form(description="a JSON spec, or the compact form cosine:peak_lr=3e-4,total_steps=..."),
    ] = None,
):
    """Store a run uploaded as CSV (multipart form). Without ``schedule`` the rate is
    interpolated from the lr column."""
    points = service.parse_run_csv(file.file.read())
    try:
        meta = json.loads(metadata) if metadata else {}
    except ValueError as error:
        raise InputError(f"not valid JSON: {error}", "metadata") from error
    if not isinstance(meta, dict):
        raise InputError("must be a JSON object", "metadata")
    spec = service.parse_compact_schedule(schedule) if schedule else None
    try:
        body = schemas.RunCreate(name=name, metadata=meta, points=points, schedule=spec)
    except ValueError as error:
        raise InputError(str(error)) from error
    new_run, warnings = service.build_run(body)
    return _created(store.create_run(new_run), warnings, response)


@router.get("", response_model=schemas.RunPage)
def list_runs(
    store: StoreDep,
    name: Annotated[str | None, Query(description="exact name")] = None,
    name_contains: Annotated[str | None, Query(max_length=256)] = None,
    metadata: Annotated[
        list[str] | None, Query(description="key=value, repeatable; values compared as JSON")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    """Runs, newest first, one page at a time."""
    filters = service.parse_metadata_filters(metadata or [])
    runs, total = store.list_runs(
        name=name, name_contains=name_contains, metadata=filters, limit=limit, offset=offset
    )
    return service.page([service.summary_out(run) for run in runs], total, limit, offset)


@router.get("/{run_id}", response_model=schemas.RunOut, responses=NOT_FOUND)
def get_run(run_id: str, store: StoreDep, include_lr: bool = False):
    """One run with its points (``include_lr=true`` adds an explicit ``lr_per_step``)."""
    return service.run_out(store.get_run(run_id), include_lr=include_lr)


@router.post(
    "/{run_id}/points",
    response_model=schemas.AppendOut,
    responses={**NOT_FOUND, 409: {"description": "a logged step with a different value"}},
)
def append_points(run_id: str, points: schemas.Points, store: StoreDep):
    """Append points from a live job. Idempotent on step: a step already logged with the same
    loss is skipped, with a different loss it is a 409; new steps come after the last one."""
    outcome = service.append_points(store, run_id, points)
    return {
        **service.run_out(outcome.run),
        "appended": outcome.appended,
        "unchanged": outcome.unchanged,
    }


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_run(run_id: str, store: StoreDep) -> Response:
    """Delete a run. Fits that used it keep what they saw of it."""
    store.delete_run(run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{run_id}/forecast", response_model=schemas.ForecastOut, responses=NOT_FOUND)
async def forecast(
    run_id: str,
    store: StoreDep,
    compute: Annotated[Compute, Depends(get_compute)],
    fit_id: Annotated[str | None, Query(description="default: the run's latest fit")] = None,
    num_points: Annotated[int, Query(ge=1, le=schemas.MAX_CURVE_POINTS)] = (
        schemas.DEFAULT_NUM_POINTS
    ),
    level: schemas.LevelQuery = str(schemas.DEFAULT_LEVEL),
):
    """The run's logged points with the prediction of its latest fit for its own schedule,
    with the ``level`` band at the logged steps and on the curve (when the fit has an
    uncertainty) and the fraction of logged points inside it (``coverage``)."""
    band_level = service.parse_level(level)
    return await compute.run(service.forecast, store, run_id, fit_id, num_points, band_level)
