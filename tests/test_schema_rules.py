"""The OpenAPI document states the rules between fields that the validators enforce ("fit_id, or
law and params"; "one source for the learning rate"; "schedule or lr_per_step"; "steps or
num_points"): for each body below, the request schema in ``/openapi.json`` accepts it exactly when
the pydantic model does. A rule kept in a validator only (a 422 for a body the document calls
valid) or in the schema only fails here."""

from __future__ import annotations

import jsonschema_rs
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.schemas import Candidate, PredictionRequest, RunCreate
from app.settings import Settings

SCHEDULE = {"type": "constant", "peak_lr": 3e-4, "total_steps": 100}
POINTS = {"step": [10, 20], "loss": [3.0, 2.9]}
PARAMS = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0, "decay": 0.99}

RUNS = [
    {"name": "a", "points": POINTS, "schedule": SCHEDULE},
    {"name": "a", "points": POINTS, "lr_per_step": [3e-4] * 100},
    {"name": "a", "points": {**POINTS, "lr": [3e-4, 3e-4]}},
    {"name": "a", "points": {**POINTS, "lr": [3e-4, 3e-4]}, "schedule": SCHEDULE},
    {"name": "a", "points": POINTS},  # no learning rate at all
    {"name": "a", "points": {**POINTS, "lr": None}},
    {"name": "a", "points": POINTS, "schedule": SCHEDULE, "lr_per_step": [3e-4] * 100},
    {"name": "a", "points": POINTS, "schedule": None, "lr_per_step": [3e-4] * 100},
    {"name": "a", "points": POINTS, "schedule": None, "lr_per_step": None},
]

CANDIDATES = [
    {"schedule": SCHEDULE},
    {"lr_per_step": [3e-4] * 10},
    {"schedule": SCHEDULE, "lr_per_step": [3e-4] * 10},
    {},
    {"schedule": None, "lr_per_step": [3e-4] * 10},
    {"schedule": SCHEDULE, "num_points": 5},
    {"schedule": SCHEDULE, "steps": [1, 2]},
    {"schedule": SCHEDULE, "steps": [1, 2], "num_points": 5},
    {"schedule": SCHEDULE, "steps": None, "num_points": 5},
]

PREDICTIONS = [
    {"fit_id": "fit_1", "schedule": SCHEDULE},
    {"law": "lr_annealing", "params": PARAMS, "schedule": SCHEDULE},
    {"law": "lr_annealing", "params": PARAMS, "warmup": "include", "schedule": SCHEDULE},
    {"fit_id": "fit_1", "warmup": "include", "schedule": SCHEDULE},  # warmup comes from the fit
    {"fit_id": "fit_1", "law": "lr_annealing", "params": PARAMS, "schedule": SCHEDULE},
    {"law": "lr_annealing", "schedule": SCHEDULE},  # params missing
    {"params": PARAMS, "schedule": SCHEDULE},
    {"schedule": SCHEDULE},  # neither
    {"fit_id": "fit_1", "law": None, "params": None, "schedule": SCHEDULE},
    {"fit_id": None, "law": "lr_annealing", "params": PARAMS, "schedule": SCHEDULE},
    {"fit_id": "fit_1", "candidates": [{"schedule": SCHEDULE}, {"lr_per_step": [3e-4]}]},
    {"fit_id": "fit_1", "candidates": [{"schedule": SCHEDULE}], "schedule": SCHEDULE},
    {"fit_id": "fit_1", "candidates": [{"schedule": SCHEDULE}], "num_points": 5},
    {"fit_id": "fit_1", "candidates": [{}]},
    {"fit_id": "fit_1", "candidates": None, "schedule": SCHEDULE},
    {"fit_id": "fit_1"},  # no schedule
    {"fit_id": "fit_1", "schedule": SCHEDULE, "lr_per_step": [3e-4]},
    {"fit_id": "fit_1", "schedule": SCHEDULE, "steps": [1], "num_points": 3},
]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schema-rules")
    app = create_app(
        Settings(database_url=f"sqlite:///{folder}/x.db", warmup=False, jax_cache_dir="")
    )
    return app.openapi()


def _validator(openapi: dict, component: str):
    schema = {"$ref": f"#/components/schemas/{component}", "components": openapi["components"]}
    return jsonschema_rs.validator_for(schema)


def _model_accepts(model, body: dict) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("model", "component", "body"),
    [(RunCreate, "RunCreate", body) for body in RUNS]
    + [(Candidate, "Candidate", body) for body in CANDIDATES]
    + [(PredictionRequest, "PredictionRequest", body) for body in PREDICTIONS],
)
def test_the_schema_accepts_a_body_exactly_when_the_validator_does(openapi, model, component, body):
    validator = _validator(openapi, component)
    assert validator.is_valid(body) == _model_accepts(model, body), (
        f"{component}: schema says {validator.is_valid(body)}, validator says "
        f"{_model_accepts(model, body)} for {body}"
    )


def test_each_table_holds_bodies_both_accepted_and_refused():
    """The table above tests the rules only if it has both kinds of body for each model."""
    for model, bodies in (
        (RunCreate, RUNS),
        (Candidate, CANDIDATES),
        (PredictionRequest, PREDICTIONS),
    ):
        verdicts = {_model_accepts(model, body) for body in bodies}
        assert verdicts == {True, False}, model.__name__
