"""``POST /v1/predictions``: predicted loss curves for candidate schedules, from a stored fit or
inline law parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app import schemas, service
from app.deps import Compute, get_compute, get_store
from app.storage import Store

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post(
    "",
    response_model=schemas.PredictionOut,
    responses={404: {"description": "no such fit"}, 422: {"description": "bad candidate"}},
)
async def predict(
    body: schemas.PredictionRequest,
    store: Annotated[Store, Depends(get_store)],
    compute: Annotated[Compute, Depends(get_compute)],
):
    """One curve per candidate schedule (``schedule`` or ``lr_per_step``) at ``steps`` or on an
    even grid of ``num_points`` (default 300) from the end of warmup to the last step.

    From a fit with an uncertainty, each curve carries ``lower`` and ``upper``: the prediction
    band at ``level`` (default 0.9; ``"level": null`` for none). Inline law+params and fits
    without an uncertainty give no band (``lower``/``upper`` null, ``interval_note`` says why).
    """
    return await compute.run(service.predict, store, body)
