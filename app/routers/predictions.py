"""``POST /v1/predictions``: predicted loss curves for candidate schedules, from a stored fit or
inline law parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app import budgets, schemas
from app.deps import Compute, get_compute, get_settings, get_store
from app.services import predictions
from app.settings import Settings
from app.storage import Store

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.post(
    "",
    response_model=schemas.PredictionOut,
    responses=schemas.error_responses(404, 413, 422, 503, e404="no such fit"),
)
async def predict(
    body: schemas.PredictionRequest,
    store: Annotated[Store, Depends(get_store)],
    compute: Annotated[Compute, Depends(get_compute)],
    settings: Annotated[Settings, Depends(get_settings)],
):
    """One curve per candidate schedule (``schedule`` or ``lr_per_step``) at ``steps`` or on an
    even grid of ``num_points`` (default 300) from the end of warmup to the last step.

    From a fit with an uncertainty, each curve carries ``lower`` and ``upper``: the prediction
    band at ``level`` (default 0.9; ``"level": null`` for none). Inline law+params and fits
    without an uncertainty give no band (``lower``/``upper`` null, ``interval_note`` says why).

    A request whose candidates' schedules or points add up to more than the service's budget
    (``LOSSCAST_MAX_PREDICTION_STEPS``, ``LOSSCAST_MAX_PREDICTION_POINTS``) is a 422 at once.
    """
    budgets.check_prediction(settings, body)
    return await compute.run(predictions.predict, store, body)
