"""Liveness/readiness (``/healthz``), the service's status, and the vocabulary it accepts (the
registered laws and schedule types)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import __version__, schemas
from fitting.fit import COMPILATIONS, WARMUP_TREATMENTS
from fitting.laws import CONTINUAL_LAWS, LAWS
from fitting.schedules import describe_schedule_types

router = APIRouter(tags=["health"])


def _status(request: Request) -> dict[str, Any]:
    state = request.app.state.warmup_state
    compilations = dict(COMPILATIONS)
    return {
        "status": state,
        "warmed_up": state == "ok",
        "compilations": compilations,
        "compilations_total": sum(compilations.values()),
        "database": request.app.state.store.backend,
        "version": __version__,
    }


@router.get(
    "/healthz",
    response_model=schemas.HealthOut,
    responses={
        **schemas.error_responses(),
        503: {"model": schemas.HealthOut, "description": "still warming up, or failed"},
    },
)
async def healthz(request: Request):
    """200 once the service can answer quickly (after its JIT warm-up), 503 before."""
    status = _status(request)
    return JSONResponse(status, status_code=200 if status["warmed_up"] else 503)


@router.get("/v1/status", response_model=schemas.HealthOut, responses=schemas.error_responses())
async def service_status(request: Request):
    """Always 200: warm-up state, JIT compilation counts per kernel, database backend."""
    return _status(request)


@router.get("/v1/laws", tags=["reference"], responses=schemas.error_responses())
async def laws() -> dict[str, Any]:
    """The laws ``POST /v1/fits`` accepts, with their parameters and bounds (and ``auto``);
    ``coordinate`` is what the fit moves (identity, log, or log1m: log(1 - value)), the
    coordinates of the covariance in a fit's ``result.uncertainty``."""
    return {
        "laws": {
            law.name: {
                "formula": law.formula,
                "parameters": [
                    {
                        "name": p.name,
                        "lower": p.lower,
                        "upper": p.upper,
                        "coordinate": p.coordinate,
                        "doc": p.doc,
                    }
                    for p in law.parameters
                ],
                "continual": law.name in CONTINUAL_LAWS,
            }
            for law in (*LAWS.values(), *CONTINUAL_LAWS.values())
        },
        "auto": (
            "law 'auto' cross-validates every law above on the fit's runs (leave one run out; "
            "one run: its last 20% of steps held out) and fits the one with the lowest held-out "
            "PredE; the continual laws (continual: true) read runs that continue runs and are "
            "compared only on them, the others only on runs that continue none"
        ),
        "warmup_treatments": list(WARMUP_TREATMENTS),
    }


@router.get("/v1/schedules", tags=["reference"], responses=schemas.error_responses())
async def schedule_types() -> dict[str, Any]:
    """Schedule types and their parameters (``fitting.schedules.describe_schedule_types``)."""
    return describe_schedule_types()
