"""Law choice and prediction intervals over HTTP: what a fit records of its cross-validation and
uncertainty, ``law: "auto"``, and the ``lower``/``upper`` bands of predictions, polled curves
and forecasts at a requested ``level`` (and the 422 of a bad one)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fitting.laws import LAWS
from fitting.select import ALL_FOLDS, TARGET_FOLDS

COSINE_QUERY = "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5"


def assert_banded(curve: dict) -> None:
    lower, loss, upper = (np.asarray(curve[key]) for key in ("lower", "loss", "upper"))
    assert lower.shape == loss.shape == upper.shape == (len(curve["steps"]),)
    assert np.all(lower < loss) and np.all(loss < upper)


def assert_auto_choice(fit: dict, registered: list[str]) -> None:
    """A fit with law auto: every registered law's validation recorded, the lowest one fitted."""
    selection = fit["selection"]
    candidates = {c["law"]: c for c in selection["candidates"]}
    assert sorted(candidates) == sorted(registered)
    assert selection["scheme"] == "leave-one-run-out"
    for candidate in candidates.values():
        assert candidate["scheme"] == "leave-one-run-out" and len(candidate["folds"]) == 3
        assert math.isfinite(candidate["pred_e"]) and candidate["pred_e"] > 0
    assert selection["criterion"] == ALL_FOLDS
    assert selection["scores"] == {name: c["pred_e"] for name, c in candidates.items()}
    best = min(candidates, key=lambda name: candidates[name]["pred_e"])
    assert selection["chosen"] == best and fit["law"] == best
    assert fit["validation"] == candidates[best]
    assert fit["uncertainty"]["folds"] == 3 and fit["uncertainty_note"] is None
    # The other laws, fitted to the same runs, widen the chosen law's bands by their disagreement.
    assert fit["uncertainty"]["other_laws"] == [name for name in registered if name != best]
    stored = fit["result"]["uncertainty"]["alternatives"]
    assert [a["law"] for a in stored] == fit["uncertainty"]["other_laws"]


# ---------------------------------------------------------------------------------------------
# Fits.


def test_a_fit_stores_its_cross_validation_and_uncertainty(client, mpl_fit):
    validation = mpl_fit["validation"]
    assert validation["law"] == "lr_annealing" and validation["scheme"] == "leave-one-run-out"
    assert [fold["held_out"] for fold in validation["folds"]] == mpl_fit["run_ids"]
    assert 0 < validation["pred_e"] < 0.005
    assert mpl_fit["selection"] is None  # a named law
    stored = mpl_fit["result"]["uncertainty"]
    assert np.asarray(stored["covariance"]).shape == (5, 5) and len(stored["fold_params"]) == 3
    summary = mpl_fit["uncertainty"]
    assert summary["model_error"] == stored["model_error"] > summary["noise"] > 0
    assert mpl_fit["uncertainty_note"] is None


def test_auto_over_a_registry_of_one_law_is_that_law_s_fit(client, mpl_fit, monkeypatch):
    """The plumbing of ``auto``, fast: the registry narrowed to lr_annealing (the full one is
    the slow test below)."""
    import fitting.laws

    for name in [name for name in fitting.laws.LAWS if name != "lr_annealing"]:
        monkeypatch.delitem(fitting.laws.LAWS, name)
    response = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": "auto"})
    assert response.status_code == 201, response.text
    fit = response.json()
    assert_auto_choice(fit, ["lr_annealing"])
    assert fit["validation"] == mpl_fit["validation"] and fit["params"] == mpl_fit["params"]
    assert client.get("/v1/fits", params={"law": "auto"}).json()["total"] == 0  # stored as chosen


def test_auto_for_a_job_in_a_group_scores_the_laws_on_the_job(client, mpl, monkeypatch):
    """With the group's runs lending strength, ``auto`` scores each law by how well the others
    predict the runs asked for (the fold that holds out the job), not by every fold's mean."""
    import fitting.laws

    for name in [name for name in fitting.laws.LAWS if name != "lr_annealing"]:
        monkeypatch.delitem(fitting.laws.LAWS, name)
    group = f"25M-target-{id(client)}"
    ids = []
    for name in mpl.fitting:
        response = client.post("/v1/runs", json={**mpl.run_body("25M", name), "group": group})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    job = ids[-1]
    response = client.post("/v1/fits", json={"run_ids": [job], "law": "auto", "with_group": True})
    assert response.status_code == 201, response.text
    fit = response.json()
    assert fit["run_ids"][0] == job and sorted(fit["run_ids"]) == sorted(ids)
    selection = fit["selection"]
    assert selection["criterion"] == TARGET_FOLDS
    (candidate,) = selection["candidates"]
    (job_fold,) = [fold for fold in candidate["folds"] if fold["held_out"] == job]
    assert selection["scores"] == {"lr_annealing": job_fold["pred_e"]}
    assert job_fold["pred_e"] != candidate["pred_e"]  # the mean over the three folds differs


def test_auto_bands_add_the_other_laws_disagreement(client, mpl_fit, monkeypatch):
    """Fast stand-in for the full registry: lr_annealing beside a second registered law, the same
    law with its decay held at 0.999 (laws are data: a record with another name and bounds)."""
    import dataclasses

    import fitting.laws

    for name in [name for name in fitting.laws.LAWS if name != "lr_annealing"]:
        monkeypatch.delitem(fitting.laws.LAWS, name)
    base = fitting.laws.LAWS["lr_annealing"]
    held = tuple(
        dataclasses.replace(p, lower=0.999, upper=0.999) if p.name == "decay" else p
        for p in base.parameters
    )
    monkeypatch.setitem(
        fitting.laws.LAWS,
        "decay_0999",
        dataclasses.replace(base, name="decay_0999", parameters=held, data_bounds=None),
    )
    fit = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": "auto"}).json()
    assert_auto_choice(fit, ["lr_annealing", "decay_0999"])
    named = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": fit["law"]})
    assert named.json()["uncertainty"]["other_laws"] == []
    body = {
        "schedule": {
            "type": "cosine",
            "peak_lr": 3e-4,
            "total_steps": 72000,
            "num_warmup_steps": 2160,
            "min_lr": 3e-5,
        }
    }
    alone, both = (
        client.post("/v1/predictions", json={"fit_id": f["id"], **body}).json()
        for f in (named.json(), fit)
    )
    # The same law on the same runs: the same curve, and a band wider by the other law's gap.
    np.testing.assert_allclose(both["loss"], alone["loss"], rtol=1e-9)
    assert np.all(np.asarray(both["upper"]) >= np.asarray(alone["upper"]))
    assert np.all(np.asarray(both["lower"]) <= np.asarray(alone["lower"]))
    assert np.max(np.asarray(both["upper"]) / np.asarray(alone["upper"])) > 1.0005
    # A law taken out of the registry later: the curve still, the band not, and the note says so.
    (other,) = fit["uncertainty"]["other_laws"]
    monkeypatch.delitem(fitting.laws.LAWS, other)
    later = client.post("/v1/predictions", json={"fit_id": fit["id"], **body})
    assert later.status_code == 200, later.text
    assert later.json()["loss"] == both["loss"] and later.json()["upper"] is None
    assert "no longer registered" in later.json()["interval_note"]


@pytest.mark.slow  # cross-validates every registered law: multi_power's fits take minutes cold
def test_auto_records_every_law_s_validation_and_fits_the_lowest(client, mpl_fit):
    response = client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"], "law": "auto"})
    assert response.status_code == 201, response.text
    assert_auto_choice(response.json(), list(LAWS))


def test_intervals_false_is_a_plain_fit_whose_predictions_say_why_there_is_no_band(
    client, mpl, mpl_fit
):
    body = {"run_ids": mpl_fit["run_ids"], "intervals": False}
    fit = client.post("/v1/fits", json=body).json()
    assert fit["params"] == mpl_fit["params"]
    assert fit["validation"] is None and fit["uncertainty"] is None
    assert fit["result"]["uncertainty"] is None and "intervals: false" in fit["uncertainty_note"]
    prediction = client.post(
        "/v1/predictions", json={"fit_id": fit["id"], "schedule": mpl.specs()["cosine_24000"]}
    ).json()
    assert prediction["lower"] is None and prediction["upper"] is None
    assert prediction["level"] is None and "intervals: false" in prediction["interval_note"]


def test_too_few_points_to_cross_validate_still_fit_without_intervals(client, mpl):
    body = mpl.run_body("25M", "cosine_24000")
    body["points"] = {key: values[:3] for key, values in body["points"].items()}
    run_id = client.post("/v1/runs", json=body).json()["id"]

    named = client.post("/v1/fits", json={"run_ids": [run_id]})
    assert named.status_code == 201, named.text
    assert named.json()["uncertainty"] is None and named.json()["validation"] is None
    assert "too few logged points" in named.json()["uncertainty_note"]

    auto = client.post("/v1/fits", json={"run_ids": [run_id], "law": "auto"})
    assert auto.status_code == 201, auto.text
    selection = auto.json()["selection"]
    assert selection["chosen"] == auto.json()["law"] == "lr_annealing"
    assert selection["candidates"] == [] and "too few logged points" in selection["note"]
    assert auto.json()["uncertainty"] is None

    prediction = client.post(
        "/v1/predictions", json={"fit_id": auto.json()["id"], "schedule": body["schedule"]}
    )
    assert prediction.status_code == 200 and prediction.json()["lower"] is None
    assert "too few logged points" in prediction.json()["interval_note"]


# ---------------------------------------------------------------------------------------------
# Bands.


def test_prediction_band_brackets_the_loss_and_narrows_with_the_level(client, mpl, mpl_fit):
    body = {"fit_id": mpl_fit["id"], "schedule": mpl.specs()["cosine_72000"]}
    wide = client.post("/v1/predictions", json=body).json()  # default level 0.9
    narrow = client.post("/v1/predictions", json={**body, "level": 0.5}).json()
    plain = client.post("/v1/predictions", json={**body, "level": None}).json()
    assert wide["level"] == 0.9 and narrow["level"] == 0.5 and wide["interval_note"] is None
    assert_banded(wide)
    assert_banded(narrow)
    assert wide["candidates"][0]["lower"] == wide["lower"]
    assert wide["loss"] == narrow["loss"] == plain["loss"]
    assert np.all(np.asarray(wide["lower"]) < narrow["lower"])
    assert np.all(np.asarray(narrow["upper"]) < wide["upper"])
    assert plain["lower"] is plain["upper"] is plain["level"] is plain["interval_note"] is None


def test_every_candidate_has_a_band_and_it_widens_with_the_horizon(client, mpl, mpl_fit):
    # 600 points: the shapes of the held-out forecast below (one compilation for both)
    candidates = [
        {"name": name, "schedule": mpl.specs()[name], "num_points": 600}
        for name in ("constant_24000", "constant_72000")
    ]
    out = client.post(
        "/v1/predictions", json={"fit_id": mpl_fit["id"], "candidates": candidates}
    ).json()
    assert out["lower"] is None  # several candidates: the arrays are in each
    widths = []
    for curve in out["candidates"]:
        assert_banded(curve)
        widths.append((curve["upper"][-1] - curve["lower"][-1]) / curve["loss"][-1])
    assert widths[0] < widths[1]


def test_inline_params_give_no_band_and_say_so(client, mpl, mpl_fit):
    body = {"law": "lr_annealing", "params": mpl_fit["params"], "warmup": mpl_fit["warmup"]}
    out = client.post(
        "/v1/predictions", json={**body, "schedule": mpl.specs()["cosine_24000"], "level": 0.8}
    ).json()
    assert out["lower"] is None and out["level"] is None
    assert "inline" in out["interval_note"]


def test_polled_curve_carries_the_same_band_as_the_post(client, mpl, mpl_fit):
    url = f"/v1/fits/{mpl_fit['id']}/curve"
    posted = {"fit_id": mpl_fit["id"], "schedule": mpl.specs()["cosine_24000"]}
    for query, body in [({}, {}), ({"level": "0.8"}, {"level": 0.8})]:
        got = client.get(url, params={"schedule": COSINE_QUERY, **query})
        assert got.status_code == 200, got.text
        assert got.json() == client.post("/v1/predictions", json={**posted, **body}).json()
        assert_banded(got.json())
    default = client.get(url, params={"schedule": COSINE_QUERY})
    other = client.get(url, params={"schedule": COSINE_QUERY, "level": "0.8"})
    assert default.headers["etag"] != other.headers["etag"]
    plain = client.get(url, params={"schedule": COSINE_QUERY, "level": "none"}).json()
    assert plain["lower"] is None and plain["loss"] == default.json()["loss"]


def test_forecast_of_a_held_out_run_shows_the_band_and_its_coverage(client, mpl, mpl_fit):
    run_id = client.post("/v1/runs", json=mpl.run_body("25M", "cosine_72000")).json()["id"]
    response = client.get(
        f"/v1/runs/{run_id}/forecast", params={"fit_id": mpl_fit["id"], "num_points": 600}
    )
    assert response.status_code == 200, response.text
    forecast = response.json()
    assert forecast["level"] == 0.9 and forecast["interval_note"] is None
    assert_banded(forecast["curve"])
    loss = np.asarray(forecast["points"]["loss"])
    inside = (np.asarray(forecast["lower_at_logged"]) <= loss) & (
        loss <= np.asarray(forecast["upper_at_logged"])
    )
    assert forecast["coverage"] == pytest.approx(inside.mean())
    plain = client.get(
        f"/v1/runs/{run_id}/forecast", params={"fit_id": mpl_fit["id"], "level": "none"}
    ).json()
    assert plain["coverage"] is None and plain["curve"]["lower"] is None


def test_plans_use_the_uncertainty_the_fit_stored(client, mpl, mpl_fit):
    response = client.post(
        "/v1/plans",
        json={
            "kind": "compare",
            "fit_id": mpl_fit["id"],
            "candidates": [{"name": "cosine", "schedule": mpl.specs()["cosine_24000"]}],
        },
    )
    assert response.status_code == 200, response.text
    interval = response.json()["result"]["ranking"][0]["interval"]
    assert interval["level"] == 0.9 and interval["final"][0] < interval["final"][1]


@pytest.mark.parametrize("level", [0, 1, -0.5, 1.5, "x", math.nan, math.inf])
def test_a_bad_level_in_a_body_is_422(client, mpl, mpl_fit, level):
    body = {"fit_id": mpl_fit["id"], "schedule": mpl.specs()["cosine_24000"], "level": level}
    response = client.post(
        "/v1/predictions",
        content=json.dumps(body, allow_nan=True),  # NaN and Infinity as JavaScript writes them
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "level"]


@pytest.mark.parametrize("level", ["0", "1", "-0.1", "2", "abc", "", "nan", "inf"])
def test_a_bad_level_in_a_query_is_422_saying_what_is_allowed(client, mpl_fit, level):
    for url, params in [
        (f"/v1/fits/{mpl_fit['id']}/curve", {"schedule": COSINE_QUERY}),
        (f"/v1/runs/{mpl_fit['run_ids'][0]}/forecast", {}),
    ]:
        response = client.get(url, params={**params, "level": level})
        assert response.status_code == 422, response.text
        (item,) = response.json()["detail"]
        assert item["loc"] == ["query", "level"]
        assert item["msg"].startswith("must be a number in (0, 1), or none")
