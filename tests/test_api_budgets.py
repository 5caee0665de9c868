"""Request budgets (app/budgets.py): a request that asks for too much work is refused at once
with a 422 naming the budget and its setting; every realistic request is admitted."""

from __future__ import annotations

import pytest

from app import budgets, plan_schemas, schemas
from app.errors import BudgetExceeded
from app.settings import Settings

INLINE = {
    "law": "lr_annealing",
    "params": {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 1.0, "decay": 0.998},
}


def _cosine(total_steps: int) -> dict:
    return {
        "type": "cosine",
        "peak_lr": 3e-4,
        "total_steps": total_steps,
        "num_warmup_steps": 2160,
        "min_lr": 3e-5,
    }


def test_32_candidates_of_10m_steps_are_refused_before_any_work_naming_the_budget(
    client, monkeypatch
):
    """The reported request: it took 30 s and 4-6 GB. Refused before a schedule is built or a
    prediction made (the time it takes is measured by bench/, not here)."""
    import app.services.predictions
    import app.services.runs

    def no_work(*args, **kwargs):
        raise AssertionError("the refused request did work")

    monkeypatch.setattr(app.services.runs, "learning_rates", no_work)
    monkeypatch.setattr(app.services.predictions, "predict_losses", no_work)
    body = {
        **INLINE,
        "candidates": [{"schedule": _cosine(10_000_000), "num_points": 300}] * 32,
    }
    response = client.post("/v1/predictions", json=body)
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["type"] == "budget_exceeded" and item["loc"] == ["body", "candidates"]
    assert "candidates x schedule length" in item["msg"] and "320,000,000" in item["msg"]
    assert "LOSSCAST_MAX_PREDICTION_STEPS" in item["msg"]


def _prediction(**fields) -> schemas.PredictionRequest:
    return schemas.PredictionRequest(**INLINE, **fields)


@pytest.mark.parametrize(
    "request_body",
    [
        {"candidates": [{"schedule": _cosine(100_000)}] * 64},  # a dashboard
        {"schedule": _cosine(200_000), "num_points": 200_000},  # a dense curve
        {"candidates": [{"schedule": _cosine(10_000_000)}] * 2},  # the longest schedules
        {"lr_per_step": [1e-3] * 200_000, "steps": list(range(0, 200_000, 2))},
    ],
)
def test_realistic_predictions_are_within_the_default_budget(request_body):
    budgets.check_prediction(Settings(), _prediction(**request_body))


def test_the_points_budget_counts_candidates_x_points():
    body = _prediction(candidates=[{"schedule": _cosine(24_000), "num_points": 200_000}] * 6)
    with pytest.raises(BudgetExceeded, match="candidates x points.*LOSSCAST_MAX_PREDICTION_POINTS"):
        budgets.check_prediction(Settings(), body)
    budgets.check_prediction(Settings(max_prediction_points=1_200_000), body)


def test_runs_budgets_count_points_and_schedule_length():
    dense = schemas.RunCreate(
        name="dense",
        schedule=_cosine(200_000),
        points={"step": list(range(200_000)), "loss": [3.0] * 200_000},
    )
    budgets.check_new_run(Settings(), dense)
    with pytest.raises(BudgetExceeded, match="logged points.*LOSSCAST_MAX_RUN_POINTS"):
        budgets.check_new_run(Settings(max_run_points=199_999), dense)
    with pytest.raises(BudgetExceeded, match="schedule length.*LOSSCAST_MAX_RUN_STEPS"):
        budgets.check_new_run(Settings(max_run_steps=100_000), dense)


def test_default_plans_of_a_24000_step_frame_are_within_the_budget():
    for body in (
        {"kind": "cooldown", "schedule": _cosine(24_000)},
        {"kind": "steps_to_target", "schedule": _cosine(24_000), "target_loss": 3.0},
        {"kind": "optimise", "schedule": _cosine(24_000)},
        {"kind": "compare", "candidates": [{"schedule": _cosine(24_000)}] * 64},
        {"kind": "budget", "schedule": _cosine(24_000), "total_steps": 1_000_000},
    ):
        model = {
            "cooldown": plan_schemas.CooldownPlanRequest,
            "steps_to_target": plan_schemas.StepsToTargetPlan,
            "optimise": plan_schemas.OptimisePlan,
            "compare": plan_schemas.ComparePlan,
            "budget": plan_schemas.BudgetPlan,
        }[body["kind"]]
        budgets.check_plan(Settings(), model(**INLINE, **body))


@pytest.fixture(scope="module")
def small_budget_client(tmp_path_factory):
    """An app with small budgets (no warm-up: a refused request compiles nothing)."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    folder = tmp_path_factory.mktemp("budgets")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'db'}",
        warmup=False,
        jax_cache_dir="",
        max_run_points=5,
        max_run_steps=1000,
        max_plan_steps=1_000_000,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_run_creation_and_appends_over_the_budget_are_422(small_budget_client):
    client = small_budget_client
    points = {"step": [1, 2, 3, 4, 5, 6], "loss": [3.0] * 6}
    over = client.post(
        "/v1/runs", json={"name": "big", "lr_per_step": [1e-3] * 10, "points": points}
    )
    assert over.status_code == 422 and "LOSSCAST_MAX_RUN_POINTS" in over.text
    long = client.post(
        "/v1/runs",
        json={"name": "long", "schedule": _cosine(24_000), "points": {"step": [1], "loss": [3.0]}},
    )
    assert long.status_code == 422 and "LOSSCAST_MAX_RUN_STEPS" in long.text
    small = {"step": points["step"][:5], "loss": points["loss"][:5]}
    run = client.post("/v1/runs", json={"name": "ok", "lr_per_step": [1e-3] * 10, "points": small})
    assert run.status_code == 201, run.text
    grown = client.post(f"/v1/runs/{run.json()['id']}/points", json={"step": [7], "loss": [2.9]})
    assert grown.status_code == 422 and "LOSSCAST_MAX_RUN_POINTS" in grown.text


def test_a_plan_grid_over_the_budget_is_422(small_budget_client):
    response = small_budget_client.post(
        "/v1/plans", json={"kind": "cooldown", **INLINE, "schedule": _cosine(24_000)}
    )
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["type"] == "budget_exceeded" and "LOSSCAST_MAX_PLAN_STEPS" in item["msg"]
    assert "3 decay_types x 26 fractions x 24000 total_steps" in item["msg"]


def test_budgets_are_read_from_the_environment():
    settings = Settings.from_env(
        {"LOSSCAST_MAX_PREDICTION_STEPS": "5", "LOSSCAST_MAX_RUN_STEPS": "7"}
    )
    assert (settings.max_prediction_steps, settings.max_run_steps) == (5, 7)
    with pytest.raises(ValueError, match="LOSSCAST_MAX_PLAN_STEPS"):
        Settings.from_env({"LOSSCAST_MAX_PLAN_STEPS": "0"})
