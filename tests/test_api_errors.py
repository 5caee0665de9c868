"""Bad input is a 422 naming what is wrong; a bug under it (a plain ValueError from a shape
mismatch, a TypeError) is a 500 with a request id, not "your input is wrong"."""

from __future__ import annotations

import numpy as np
import pytest

INLINE = {
    "law": "lr_annealing",
    "params": {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 1.0, "decay": 0.998},
}
COSINE = {"type": "cosine", "peak_lr": 3e-4, "total_steps": 2000, "num_warmup_steps": 100}


def _internal_error(response) -> dict:
    """The one error shape of a 500: its request id in the body, the header and the message."""
    assert response.status_code == 500, response.text
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    (item,) = body["detail"]
    assert item["type"] == "internal_error" and item["loc"] == []
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["request_id"] in item["msg"]
    assert "Traceback" not in response.text
    return body


def test_a_bad_schedule_is_422_at_its_place_in_the_request(client):
    response = client.post(
        "/v1/predictions", json={**INLINE, "schedule": {**COSINE, "peak_lr": -1.0}}
    )
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "schedule"] and "peak_lr" in item["msg"]


def test_steps_past_the_schedule_are_422(client):
    response = client.post(
        "/v1/predictions", json={**INLINE, "schedule": COSINE, "steps": [10, 5000]}
    )
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "steps"] and "[0, 2000)" in item["msg"]


def test_a_fit_whose_min_step_leaves_no_points_is_422(client, mpl_fit):
    response = client.post(
        "/v1/fits",
        json={"run_ids": mpl_fit["run_ids"], "law": "lr_annealing", "min_step": 9_999_999},
    )
    assert response.status_code == 422, response.text
    assert "the fit failed" in response.json()["detail"][0]["msg"]


def test_a_shape_bug_in_the_prediction_is_500_not_422(client, monkeypatch):
    import app.services.predictions

    def mismatched(*args, **kwargs):
        np.broadcast_shapes((3,), (4,))  # ValueError: shape mismatch

    monkeypatch.setattr(app.services.predictions, "predict_losses", mismatched)
    response = client.post(
        "/v1/predictions",
        json={**INLINE, "schedule": COSINE},
        headers={"X-Request-ID": "bug-in-predict"},
    )
    assert _internal_error(response)["request_id"] == "bug-in-predict"


def test_a_bug_in_the_bands_is_500_not_a_422_blaming_level(client, mpl_fit, monkeypatch):
    import app.services.predictions

    def unzippable(*args, **kwargs):
        list(zip([1, 2], [1], strict=True))

    monkeypatch.setattr(app.services.predictions, "predict_intervals", unzippable)
    response = client.post(
        "/v1/predictions", json={"fit_id": mpl_fit["id"], "schedule": COSINE, "level": 0.9}
    )
    _internal_error(response)


def test_a_type_error_in_the_fit_is_500(client, mpl_fit, monkeypatch):
    import app.policy

    def broken(*args, **kwargs):
        raise TypeError("fit_law() got an unexpected keyword argument 'like'")

    monkeypatch.setattr(app.policy, "fit_law", broken)
    response = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": "lr_annealing"})
    _internal_error(response)


def test_a_bug_in_the_cross_validation_is_500_not_a_fit_without_bands(client, mpl_fit, monkeypatch):
    """It used to be stored as a fit whose note said "cannot cross-validate: <the bug>"."""
    import app.policy

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(app.policy, "cross_validate", broken)
    response = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": "lr_annealing"})
    _internal_error(response)


@pytest.mark.parametrize("law", ["lr_annealing", "auto"])
def test_a_run_too_short_to_hold_out_is_fitted_and_says_why_there_is_no_band(client, law):
    """Too few points to cross-validate is about the input: a fit, with the reason, not a 500."""
    steps = [100, 200, 300]
    run = client.post(
        "/v1/runs",
        json={
            "name": "three points",
            "schedule": COSINE,
            "points": {"step": steps, "loss": [3.2, 3.0, 2.9]},
        },
    )
    assert run.status_code == 201, run.text
    fit = client.post("/v1/fits", json={"run_ids": [run.json()["id"]], "law": law})
    assert fit.status_code == 201, fit.text
    assert "too few logged points" in fit.json()["uncertainty_note"]
