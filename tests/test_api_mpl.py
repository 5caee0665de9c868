"""End to end through HTTP on the real MPL curves: post the three fitting runs, fit
lr_annealing with defaults, predict the six held-out schedules at their logged steps, and hold
the service to the core's accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.metrics import curve_metrics

# Average PredE over the six held-out curves, per model size (the core's own test's bounds).
MAX_MEAN_PRED_E = {"25M": 0.0015, "400M": 0.0019}
MAX_WORST_E = 0.012


@pytest.mark.parametrize("size", ["25M", "400M"])
def test_fit_on_three_runs_predicts_six_held_out_mpl_curves_over_http(client, mpl, size):
    run_ids = []
    for name in mpl.fitting:
        response = client.post("/v1/runs", json=mpl.run_body(size, name))
        assert response.status_code == 201, response.text
        run_ids.append(response.json()["id"])

    # A plain fit: the bands are tested in test_api_intervals.py.
    body = {"run_ids": run_ids, "law": "lr_annealing", "intervals": False}
    fit = client.post("/v1/fits", json=body)
    assert fit.status_code == 201, fit.text
    fit = fit.json()
    assert fit["converged"], fit["message"]
    assert fit["law"] == "lr_annealing"
    assert set(fit["metrics"]) == set(run_ids)

    candidates = [
        {"name": name, "schedule": mpl.specs()[name], "steps": mpl.columns(size, name)["step"]}
        for name in mpl.held_out
    ]
    response = client.post("/v1/predictions", json={"fit_id": fit["id"], "candidates": candidates})
    assert response.status_code == 200, response.text
    curves = response.json()["candidates"]
    assert [curve["name"] for curve in curves] == list(mpl.held_out)

    metrics = {}
    for curve in curves:
        logged = mpl.columns(size, curve["name"])
        assert curve["steps"] == logged["step"]
        np.testing.assert_allclose(curve["lr"], logged["lr"], rtol=0, atol=1e-12)
        metrics[curve["name"]] = curve_metrics(np.array(curve["loss"]), np.array(logged["loss"]))
    mean_pred_e = np.mean([m["pred_e"] for m in metrics.values()])
    assert mean_pred_e <= MAX_MEAN_PRED_E[size], metrics
    for name, m in metrics.items():
        assert m["worst_e"] <= MAX_WORST_E, (name, m)


def test_inline_params_predict_the_same_curve_as_the_stored_fit(client, mpl, mpl_fit):
    schedule = mpl.specs()["wsd_20000_24000"]
    by_fit = client.post("/v1/predictions", json={"fit_id": mpl_fit["id"], "schedule": schedule})
    inline = client.post(
        "/v1/predictions",
        json={
            "law": "lr_annealing",
            "params": mpl_fit["params"],
            "warmup": mpl_fit["warmup"],
            "schedule": schedule,
        },
    )
    assert by_fit.status_code == inline.status_code == 200, (by_fit.text, inline.text)
    assert by_fit.json()["loss"] == inline.json()["loss"]
    assert by_fit.json()["steps"] == inline.json()["steps"]


def test_default_grid_is_300_steps_from_the_end_of_warmup_to_the_last_step(client, mpl, mpl_fit):
    body = {"fit_id": mpl_fit["id"], "schedule": mpl.specs()["cosine_24000"]}
    response = client.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert len(steps) == 300
    assert steps[0] == 2160 and steps[-1] == 23999
    assert np.all(np.diff(steps) > 0)
    assert response.json()["candidates"][0]["warmup_end"] == 2159


def test_lr_per_step_and_schedule_spec_give_the_same_prediction(client, mpl, mpl_fit):
    from fitting.schedules import learning_rates

    spec = mpl.specs()["wsdcon_18"]
    steps = [3000, 8000, 12000, 15999]
    by_spec = client.post(
        "/v1/predictions", json={"fit_id": mpl_fit["id"], "schedule": spec, "steps": steps}
    )
    by_array = client.post(
        "/v1/predictions",
        json={
            "fit_id": mpl_fit["id"],
            "lr_per_step": learning_rates(spec).tolist(),
            "steps": steps,
        },
    )
    assert by_spec.status_code == by_array.status_code == 200
    assert by_spec.json()["loss"] == by_array.json()["loss"]
