"""Forecasts of running jobs: what a cut job identifies, the prior for the rest, honest bands,
borrowing strength from a group of complete runs, and background refits that keep the forecast
current (the MPL curves of tests/data, cut as a running job would be)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fitting.fit import Run, fit_law
from fitting.intervals import estimate_uncertainty, predict_intervals
from fitting.laws import get_law
from fitting.select import cross_validate
from tests.curves import load_run, schedule_specs

LAW = get_law("lr_annealing")


def cut(size: str, name: str, share: float) -> tuple[Run, float]:
    """The job logged up to ``share`` of its schedule, and its true final loss."""
    full = load_run(size, name)
    keep = full.steps < share * full.lr.size
    return Run(full.lr, full.steps[keep], full.loss[keep], name), float(full.loss[-5:].mean())


def final_band(run: Run) -> tuple[float, float, float]:
    """The alone-fitted job's predicted final loss with its 90% band."""
    result = fit_law(LAW, [run])
    uncertainty = estimate_uncertainty(LAW, result, [run], cross_validate(LAW, [run]))
    (band,) = predict_intervals(
        LAW, result.params, uncertainty, [run.lr], [np.array([run.lr.size - 1])], result.warmup
    )
    return band["loss"][0], band["lower"][0], band["upper"][0]


def test_a_stable_phase_job_gets_the_cooldown_from_the_prior_with_a_band_that_holds():
    # Before the prior, this job (fitted alone) was 3.1% off with a band of +-0.06%.
    run, truth = cut("400M", "wsd_20000_24000", 0.5)
    predicted, lower, upper = final_band(run)
    assert abs(predicted / truth - 1) < 0.02
    assert lower <= truth <= upper
    assert (upper - lower) / 2 / predicted < 0.10


def test_a_job_that_never_anneals_gets_no_width_from_the_prior_it_cannot_use():
    # The prior's gain only shifts the warmup ramp's after-effect, which L0 absorbs.
    run, truth = cut("400M", "constant_72000", 0.7)
    predicted, lower, upper = final_band(run)
    assert abs(predicted / truth - 1) < 0.005
    assert lower <= truth <= upper
    assert (upper - lower) / 2 / predicted < 0.01


# ---------------------------------------------------------------------------------------------
# Over HTTP.


def _post(client, size, name, *, share=1.0, group=None) -> str:
    run, _ = cut(size, name, share)
    body = {
        "name": f"{name}@{share:.0%}",
        "schedule": schedule_specs()[name],
        "points": {"step": run.steps.tolist(), "loss": run.loss.tolist()},
    }
    if group:
        body["group"] = group
    response = client.post("/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def history(client):
    group = f"400M-{time.time_ns()}"
    ids = [_post(client, "400M", name, group=group) for name in ("cosine_24000", "constant_24000")]
    return group, ids


def test_a_fit_says_that_the_cooldown_rests_on_the_prior(client):
    job = _post(client, "400M", "wsd_20000_24000", share=0.5)
    fit = client.post("/v1/fits", json={"run_ids": [job], "law": "lr_annealing"})
    assert fit.status_code == 201, fit.text
    identification = fit.json()["identification"]
    assert identification["source"] == "prior" and identification["identified_by"] == []
    assert set(identification["prior"]["parameters"]) == {"C", "decay"}
    forecast = client.get(f"/v1/runs/{job}/forecast").json()
    assert "no LR decay observed yet" in forecast["identification"]["note"]
    _, truth = cut("400M", "wsd_20000_24000", 0.5)
    lower, upper = forecast["curve"]["lower"][-1], forecast["curve"]["upper"][-1]
    assert lower <= truth <= upper


def test_a_job_in_a_group_borrows_the_cooldown_from_its_complete_runs(client, history):
    group, (cosine, constant) = history
    job = _post(client, "400M", "wsd_20000_24000", share=0.5, group=group)
    listed = client.get("/v1/runs", params={"group": group}).json()
    assert {run["id"] for run in listed["items"]} == {job, cosine, constant}
    assert all(run["group"] == group for run in listed["items"])

    fit = client.post(
        "/v1/fits", json={"run_ids": [job], "law": "lr_annealing", "with_group": True}
    )
    assert fit.status_code == 201, fit.text
    fit = fit.json()
    assert fit["run_ids"][0] == job and set(fit["run_ids"]) == {job, cosine, constant}
    assert fit["identification"]["source"] == "data"
    assert cosine in fit["identification"]["identified_by"]

    forecast = client.get(f"/v1/runs/{job}/forecast").json()
    assert forecast["fit_id"] == fit["id"] and forecast["fit_run_ids"] == fit["run_ids"]
    assert forecast["freshness"]["current"] is True
    _, truth = cut("400M", "wsd_20000_24000", 0.5)
    predicted = forecast["curve"]["loss"][-1]
    # Both laws over-predict the 400M WSD cooldown's gain from cosine and constant runs: -1.4%.
    assert abs(predicted / truth - 1) < 0.02
    half_width = (forecast["curve"]["upper"][-1] - forecast["curve"]["lower"][-1]) / 2
    assert half_width / predicted < 0.03


def test_explicit_run_ids_fit_only_those_runs(client, history):
    group, _ = history
    job = _post(client, "400M", "wsd_20000_24000", share=0.3, group=group)
    fit = client.post("/v1/fits", json={"run_ids": [job], "law": "lr_annealing"}).json()
    assert fit["run_ids"] == [job]


def test_appending_points_refits_in_the_background_until_the_forecast_is_current(
    service_settings, tmp_path
):
    from fastapi.testclient import TestClient

    from app.main import create_app

    settings = service_settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'refits.db'}",
            "warmup": False,
            "refit_delay": 0,
            "refit_max_wait": 0,
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        job = _post(client, "25M", "cosine_24000", share=0.5, group="refits")
        fit = client.post("/v1/fits", json={"run_ids": [job], "law": "lr_annealing"})
        assert fit.status_code == 201, fit.text
        run, _ = cut("25M", "cosine_24000", 0.6)
        stored = client.get(f"/v1/runs/{job}").json()["num_points"]
        new = run.steps > client.get(f"/v1/runs/{job}").json()["last_step"]
        appended = client.post(
            f"/v1/runs/{job}/points",
            json={"step": run.steps[new].tolist(), "loss": run.loss[new].tolist()},
        )
        assert appended.status_code == 200, appended.text
        freshness = client.get(f"/v1/runs/{job}/forecast").json()["freshness"]
        assert freshness["points_fitted"] == stored < freshness["points_stored"]
        deadline = time.monotonic() + 120
        while not freshness["current"]:
            assert time.monotonic() < deadline, freshness
            time.sleep(0.2)
            freshness = client.get(f"/v1/runs/{job}/forecast").json()["freshness"]
        assert freshness["points_fitted"] == run.steps.size
        assert freshness["refit"] in ("idle", "pending")
        fits = client.get("/v1/fits", params={"run_id": job}).json()["items"]
        assert len(fits) == 2 and fits[0]["law"] == "lr_annealing"
        # The refit was a fit job, run by the server's own worker (SQLite), not by the web process.
        assert client.app.state.store.count_jobs().get("done") == 1
        assert client.app.state.refits.stats()["queued"] == 1
