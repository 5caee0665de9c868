"""Fits over HTTP: what a fit stores and returns, that it keeps what it saw when its runs change,
fitter options and their errors, the polled curve (ETag, 304) and the run forecast."""

from __future__ import annotations

import pytest

COSINE_QUERY = "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5"


def test_fit_returns_the_whole_result_and_what_it_saw(client, mpl_fit):
    assert mpl_fit["id"].startswith("fit_")
    assert set(mpl_fit["params"]) == {"L0", "A", "alpha", "C", "decay"}
    result = mpl_fit["result"]
    for key in ("objective", "converged", "message", "iterations", "bounds", "warmup", "metrics"):
        assert key in result
    assert mpl_fit["warmup"] == "include" and mpl_fit["min_step"] == 0
    assert [run["run_id"] for run in mpl_fit["runs"]] == mpl_fit["run_ids"]
    assert all(run["version"] == 1 and len(run["points_sha256"]) == 64 for run in mpl_fit["runs"])
    for metrics in mpl_fit["metrics"].values():
        assert metrics["pred_e"] < 0.01 and metrics["r2"] > 0.99


def test_fit_is_listed_and_read_back_unchanged(client, mpl_fit):
    assert client.get(f"/v1/fits/{mpl_fit['id']}").json() == mpl_fit
    listed = client.get("/v1/fits", params={"run_id": mpl_fit["run_ids"][0]}).json()
    assert mpl_fit["id"] in [fit["id"] for fit in listed["items"]]
    assert client.get("/v1/fits", params={"law": "no_such_law"}).json()["total"] == 0


def test_appending_to_a_run_leaves_an_earlier_fit_as_it_was(client, mpl):
    body = mpl.run_body("25M", "cosine_24000")
    steps, loss = body["points"]["step"], body["points"]["loss"]
    body["points"] = {"step": steps[:160], "loss": loss[:160]}
    run_id = client.post("/v1/runs", json=body).json()["id"]
    others = [
        client.post("/v1/runs", json=mpl.run_body("25M", n)).json()["id"] for n in mpl.fitting[1:]
    ]
    plain = {"intervals": False}  # what is tested here does not need the cross-validation
    fit = client.post("/v1/fits", json={"run_ids": [run_id, *others], **plain}).json()

    appended = client.post(
        f"/v1/runs/{run_id}/points", json={"step": steps[160:], "loss": loss[160:]}
    )
    assert appended.status_code == 200 and appended.json()["version"] == 2

    again = client.get(f"/v1/fits/{fit['id']}").json()
    assert again == fit
    assert again["runs"][0]["version"] == 1 and again["runs"][0]["num_points"] == 160
    refit = client.post("/v1/fits", json={"run_ids": [run_id, *others], **plain}).json()
    assert refit["runs"][0]["version"] == 2 and refit["runs"][0]["num_points"] == len(steps)
    assert refit["params"] != fit["params"]

    # Deleting the run does not take the fit with it.
    assert client.delete(f"/v1/runs/{run_id}").status_code == 204
    assert client.get(f"/v1/fits/{fit['id']}").json() == fit


def test_fixed_parameter_and_options_are_honoured(client, mpl_fit):
    response = client.post(
        "/v1/fits",
        json={
            "run_ids": mpl_fit["run_ids"],
            "fixed": {"decay": 0.999},
            "warmup": "exclude",
            "min_step": 3000,
            "huber_delta": 0.002,
        },
    )
    assert response.status_code == 201, response.text
    fit = response.json()
    assert fit["params"]["decay"] == 0.999 and fit["result"]["fixed"] == {"decay": 0.999}
    assert fit["warmup"] == "exclude" and fit["min_step"] == 3000
    assert fit["result"]["huber_delta"] == 0.002


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"law": "no_such_law"}, 422, "known laws"),
        ({"fixed": {"beta": 1.0}}, 422, "no parameter 'beta'"),
        ({"fixed": {"decay": 2.0}}, 422, "outside its bounds"),
        ({"min_step": 1_000_000}, 422, "no logged point at or after min_step"),
        ({"warmup": "sometimes"}, 422, "include"),
        ({"huber_delta": -1}, 422, "greater than 0"),
        ({"bounds": {"alpha": [2.0, 1.0]}}, 422, "lower <= upper"),
        ({"run_ids": []}, 422, "at least 1"),
        ({"run_ids": ["run_missing"]}, 404, "run_missing"),
        ({"duplicate": True}, 422, "once"),
    ],
)
def test_bad_fit_requests_get_4xx_saying_why(client, mpl_fit, body, status, says):
    request = {"run_ids": mpl_fit["run_ids"], **body}
    if request.pop("duplicate", False):
        request["run_ids"] = [mpl_fit["run_ids"][0]] * 2
    response = client.post("/v1/fits", json=request)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


def test_curve_is_cached_by_etag_and_equals_the_post_prediction(client, mpl, mpl_fit):
    url = f"/v1/fits/{mpl_fit['id']}/curve"
    first = client.get(url, params={"schedule": COSINE_QUERY, "num_points": 300})
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert "max-age" in first.headers["cache-control"]
    posted = client.post(
        "/v1/predictions", json={"fit_id": mpl_fit["id"], "schedule": mpl.specs()["cosine_24000"]}
    ).json()
    assert first.json()["loss"] == posted["loss"] and first.json()["steps"] == posted["steps"]

    # The same schedule written differently is the same query.
    same = "cosine:min_lr=0.00003,peak_lr=0.0003,total_steps=24000.0,num_warmup_steps=2160"
    cached = client.get(url, params={"schedule": same}, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag and not cached.content
    other = client.get(
        url, params={"schedule": same, "num_points": 100}, headers={"If-None-Match": etag}
    )
    assert other.status_code == 200 and len(other.json()["steps"]) == 100

    as_json = client.get(
        url, params={"schedule": '{"type": "constant", "peak_lr": 3e-4, "total_steps": 24000}'}
    )
    assert as_json.status_code == 200


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("cosine", "type:key=value"),
        ("cosine:peak_lr", "key=value"),
        ("cosine:peak_lr=3e-4,peak_lr=1e-4,total_steps=10", "twice"),
        ("cosine:peak_lr=3e-4", "missing required"),
        ("cosine:peak_lr=abc,total_steps=10", "peak_lr"),
        ("{not json", "JSON"),
        ("wsd:peak_lr=3e-4,total_steps=100,decay_fraction=2", "decay_fraction"),
    ],
)
def test_bad_curve_queries_get_422_naming_the_query(client, mpl_fit, schedule, says):
    response = client.get(f"/v1/fits/{mpl_fit['id']}/curve", params={"schedule": schedule})
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["query", "schedule"] and says in item["msg"]


def test_curve_of_an_unknown_fit_is_404(client):
    response = client.get("/v1/fits/fit_nope/curve", params={"schedule": COSINE_QUERY})
    assert response.status_code == 404
    assert client.get("/v1/fits/fit_nope").status_code == 404


def test_forecast_shows_logged_points_and_the_latest_fit_s_prediction(client, mpl_fit):
    run_id = mpl_fit["run_ids"][0]
    response = client.get(f"/v1/runs/{run_id}/forecast")
    assert response.status_code == 200, response.text
    forecast = response.json()
    latest = client.get("/v1/fits", params={"run_id": run_id, "limit": 1}).json()["items"][0]
    assert forecast["fit_id"] == latest["id"]
    assert len(forecast["predicted_at_logged"]) == len(forecast["points"]["step"])
    assert forecast["metrics"]["pred_e"] < 0.01
    assert forecast["curve"]["steps"][-1] == 23999 and len(forecast["curve"]["steps"]) == 300
    pinned = client.get(f"/v1/runs/{run_id}/forecast", params={"fit_id": mpl_fit["id"]}).json()
    assert pinned["fit_id"] == mpl_fit["id"]


def test_forecast_of_a_run_without_a_fit_is_404_with_a_hint(client):
    run = client.post(
        "/v1/runs",
        json={
            "name": "unfitted",
            "lr_per_step": [1e-3] * 10,
            "points": {"step": [1], "loss": [3.0]},
        },
    ).json()
    response = client.get(f"/v1/runs/{run['id']}/forecast")
    assert response.status_code == 404 and "POST /v1/fits" in str(response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"schedule": {"type": "cosine", "peak_lr": 3e-4, "total_steps": 100}, "steps": [100]},
            "steps",
        ),
        (
            {
                "candidates": [
                    {"schedule": {"type": "constant", "peak_lr": 1e-3, "total_steps": 50}},
                    {"schedule": {"type": "cosine"}},
                ]
            },
            "['body', 'candidates', 1, 'schedule']",  # the loc
        ),
        ({"lr_per_step": [1e-3, -1.0]}, "lr_per_step"),
        (
            {
                "schedule": {"type": "constant", "peak_lr": 1e-3, "total_steps": 50},
                "lr_per_step": [1e-3],
            },
            "exactly one",
        ),
        (
            {
                "candidates": [],
            },
            "at least 1",
        ),
        (
            {"schedule": {"type": "constant", "peak_lr": 1e-3, "total_steps": 50}, "num_points": 0},
            "greater than or equal to 1",
        ),
    ],
)
def test_bad_prediction_requests_get_422_saying_where(client, mpl_fit, body, says):
    response = client.post("/v1/predictions", json={"fit_id": mpl_fit["id"], **body})
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"fit_id": "fit_nope"}, 404, "fit_nope"),
        ({"law": "lr_annealing"}, 422, "both law and params"),
        ({"law": "nope", "params": {}}, 422, "known laws"),
        ({"law": "lr_annealing", "params": {"L0": 3.0}}, 422, "needs"),
        (
            {
                "law": "lr_annealing",
                "params": {"L0": 3, "A": 0.5, "alpha": 9, "C": 1, "decay": 0.99},
            },
            422,
            "alpha=9",
        ),
        (
            {
                "law": "lr_annealing",
                "params": {"L0": 3, "A": 0.5, "alpha": 0.5, "C": 1, "decay": 0.99, "B": 1},
            },
            422,
            "'B'",
        ),
        ({}, 422, "fit_id"),
    ],
)
def test_prediction_model_errors(client, body, status, says):
    schedule = {"type": "constant", "peak_lr": 1e-3, "total_steps": 24000}
    response = client.post("/v1/predictions", json={"schedule": schedule, **body})
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


def test_health_checks_answer_while_fits_run_one_at_a_time(client, mpl_fit, monkeypatch):
    """Two fits posted at once, each with its cross-validation (3 more fits): no two fits ever
    run together (two concurrent fits hang on JAX's CPU backend, see app/deps.py), and the
    health check answers meanwhile."""
    import threading
    import time

    import app.policy
    import fitting.select

    lock, running, most, calls = threading.Lock(), [0], [0], [0]

    def counted(fit_law):
        def wrapper(*args, **kwargs):
            with lock:
                running[0] += 1
                calls[0] += 1
                most[0] = max(most[0], running[0])
            try:
                return fit_law(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1

        return wrapper

    monkeypatch.setattr(app.policy, "fit_law", counted(app.policy.fit_law))
    monkeypatch.setattr(fitting.select, "fit_law", counted(fitting.select.fit_law))
    statuses = []

    def fit():
        statuses.append(client.post("/v1/fits", json={"run_ids": mpl_fit["run_ids"]}).status_code)

    workers = [threading.Thread(target=fit) for _ in range(2)]  # one waits for the other
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    began = time.perf_counter()
    health = client.get("/healthz")
    waited = time.perf_counter() - began
    still_fitting = any(worker.is_alive() for worker in workers)
    for worker in workers:
        worker.join()
    assert health.status_code == 200 and statuses == [201, 201]
    assert still_fitting, "the fits ended before the health check: nothing was measured"
    assert waited < 0.5
    assert calls[0] == 2 * (1 + 3) and most[0] == 1


def test_the_forecast_answers_304_to_its_etag_until_points_arrive(client, mpl):
    body = mpl.run_body("25M", "cosine_24000")
    body["points"] = {key: values[:120] for key, values in body["points"].items()}
    run = client.post("/v1/runs", json={**body, "name": "etag-job"}).json()
    assert client.post("/v1/fits", json={"run_ids": [run["id"]], "intervals": False}).is_success
    url = f"/v1/runs/{run['id']}/forecast"
    first = client.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    other = client.get(url, params={"num_points": 50}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag  # the query decides too
    columns = mpl.columns("25M", "cosine_24000")
    more = {"step": columns["step"][120:125], "loss": columns["loss"][120:125]}
    assert client.post(f"/v1/runs/{run['id']}/points", json=more).json()["appended"] == 5
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()["points"]["step"]) == 125
