"""``/v1/jobs``: fits queued with ``POST /v1/fits`` and ``Prefer: respond-async``, polled here
until done (``result`` links the fit) or failed (``error``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app import jobs, schemas
from app.deps import get_store
from app.storage import Store

router = APIRouter(prefix="/v1/jobs", tags=["fits"])


@router.get(
    "/{job_id}",
    response_model=schemas.JobOut,
    responses=schemas.error_responses(404, 503, e404="no such job"),
)
def get_job(job_id: str, store: Annotated[Store, Depends(get_store)]):
    """A job's state: queued, running (a worker has it), done (``result``), failed (``error``)."""
    return jobs.job_out(store.get_job(job_id))
