"""Runs over HTTP: create (three learning-rate sources), read, list, append idempotently,
delete, CSV upload, and the 4xx a user gets for bad input."""

from __future__ import annotations

import json

import pytest


def _post(client, body, status=201):
    response = client.post("/v1/runs", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_run_with_schedule_is_stored_and_read_back_exactly(client, mpl):
    body = mpl.run_body("400M", "wsdcon_3", with_lr=True)
    run = _post(client, body)
    assert run["id"].startswith("run_")
    assert run["lr_source"] == "schedule" and run["schedule"] == body["schedule"]
    assert run["total_steps"] == 16000 and run["warnings"] == []
    again = client.get(f"/v1/runs/{run['id']}").json()
    assert again["points"] == body["points"]
    assert again["metadata"] == body["metadata"]
    assert again["num_points"] == len(body["points"]["step"])


def test_run_from_points_lr_says_the_rate_is_interpolated(client):
    run = _post(
        client,
        {"name": "live", "points": {"step": [0, 10, 20], "loss": [9, 5, 4], "lr": [0, 1e-3, 1e-3]}},
    )
    assert run["lr_source"] == "interpolated"
    assert "interpolated" in run["lr_source_note"] and "exact only" in run["lr_source_note"]
    assert run["total_steps"] == 21


def test_run_with_lr_per_step_keeps_the_array(client):
    lr = [1e-3] * 100
    run = _post(
        client, {"name": "explicit", "lr_per_step": lr, "points": {"step": [5, 50], "loss": [4, 3]}}
    )
    assert run["lr_source"] == "lr_per_step" and run["total_steps"] == 100
    assert run["lr_per_step"] is None
    read = client.get(f"/v1/runs/{run['id']}", params={"include_lr": "true"}).json()
    assert read["lr_per_step"] == lr


def test_logged_lr_that_disagrees_with_the_schedule_is_reported_not_refused(client, mpl):
    body = mpl.run_body("25M", "wsdcon_9", with_lr=True)
    body["points"]["lr"] = [lr * 1.5 for lr in body["points"]["lr"]]
    run = _post(client, body)
    assert len(run["warnings"]) == 1 and "declared rate is used" in run["warnings"][0]


@pytest.mark.parametrize(
    ("points", "extra", "where"),
    [
        ({"step": [0, 1], "loss": [3.0, float("nan")]}, {}, "loss[1]=nan"),
        ({"step": [0, 1], "loss": [3.0, -1.0]}, {}, "loss[1]=-1.0"),
        ({"step": [0, 1], "loss": [3.0, float("inf")]}, {}, "loss[1]=inf"),
        ({"step": [5, 5], "loss": [3.0, 2.0]}, {}, "strictly increasing"),
        ({"step": [0, 1, 2], "loss": [3.0, 2.0]}, {}, "same length"),
        ({"step": [], "loss": []}, {}, "empty"),
        ({"step": [0, 30000], "loss": [3.0, 2.0]}, {}, "[0, 24000)"),
        ({"step": [0, 1], "loss": [3.0, 2.0], "lr": [1e-3, -1e-3]}, {"schedule": None}, "lr[1]"),
        (
            {"step": [0, 1], "loss": [3.0, 2.0]},
            {"schedule": {"type": "cosine", "peak_lr": -1, "total_steps": 10}},
            "peak_lr",
        ),
        (
            {"step": [0, 1], "loss": [3.0, 2.0]},
            {"schedule": {"type": "cosine", "peak_lr": 1e-3, "total_steps": 0}},
            "total_steps",
        ),
        ({"step": [0, 1], "loss": [3.0, 2.0]}, {"schedule": {"type": "cosinus"}}, "unknown type"),
        (
            {"step": [0, 1], "loss": [3.0, 2.0]},
            {"schedule": None, "lr_per_step": [1e-3, float("nan")]},
            "lr_per_step[1]",
        ),
        ({"step": [0, 1], "loss": [3.0, 2.0]}, {"schedule": None}, "needs a learning rate"),
        ({"step": [0, 1.5], "loss": [3.0, 2.0]}, {}, "integer"),
        ({"step": [-1, 1], "loss": [3.0, 2.0]}, {}, "greater than or equal to 0"),
    ],
)
def test_bad_runs_get_422_saying_what_and_where(client, points, extra, where):
    body = {
        "name": "bad",
        "schedule": {"type": "cosine", "peak_lr": 3e-4, "total_steps": 24000},
        "points": points,
        **extra,
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post(
        "/v1/runs",
        content=json.dumps(body, allow_nan=True),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert where in json.dumps(response.json()["detail"]), response.json()


def test_append_is_idempotent_on_step_and_conflicts_on_a_different_loss(client, mpl):
    body = mpl.run_body("25M", "cosine_24000")
    steps, loss = body["points"]["step"], body["points"]["loss"]
    body["points"] = {"step": steps[:100], "loss": loss[:100]}
    run = _post(client, body)
    url = f"/v1/runs/{run['id']}/points"

    first = client.post(url, json={"step": steps[95:120], "loss": loss[95:120]})
    assert first.status_code == 200, first.text
    assert (first.json()["appended"], first.json()["unchanged"]) == (20, 5)
    assert first.json()["version"] == 2 and first.json()["num_points"] == 120

    again = client.post(url, json={"step": steps[95:120], "loss": loss[95:120]})
    assert (again.json()["appended"], again.json()["unchanged"]) == (0, 25)
    assert again.json()["version"] == 2

    conflict = client.post(url, json={"step": [steps[110]], "loss": [loss[110] + 0.1]})
    assert conflict.status_code == 409
    assert f"step {steps[110]} is already logged" in str(conflict.json()["detail"])

    gap = client.post(url, json={"step": [steps[50] + 1], "loss": [3.5]})
    assert gap.status_code == 409 and "appended after" in str(gap.json()["detail"])

    beyond = client.post(url, json={"step": [24000], "loss": [3.0]})
    assert beyond.status_code == 422 and "[0, 24000)" in str(beyond.json()["detail"])

    stored = client.get(f"/v1/runs/{run['id']}").json()["points"]
    assert stored["step"] == steps[:120] and stored["loss"] == loss[:120]


def test_append_to_an_interpolated_run_extends_its_rate_and_needs_lr(client):
    run = _post(
        client, {"name": "live-lr", "points": {"step": [0, 10], "loss": [9, 5], "lr": [0, 1e-3]}}
    )
    url = f"/v1/runs/{run['id']}/points"
    missing = client.post(url, json={"step": [20], "loss": [4.0]})
    assert missing.status_code == 422 and "lr" in str(missing.json()["detail"])
    grown = client.post(url, json={"step": [20, 30], "loss": [4.0, 3.8], "lr": [1e-3, 9e-4]})
    assert grown.status_code == 200 and grown.json()["total_steps"] == 31


def test_append_without_lr_to_a_run_whose_points_carry_lr_is_refused_and_loses_nothing(client):
    """It used to be stored, dropping the logged lr of every earlier point."""
    schedule = {"type": "constant", "peak_lr": 1e-3, "total_steps": 100}
    logged = {"step": [1, 2], "loss": [3.0, 2.9], "lr": [1e-3, 1e-3]}
    run = _post(client, {"name": "logged-lr", "schedule": schedule, "points": logged})
    url = f"/v1/runs/{run['id']}/points"

    response = client.post(url, json={"step": [3], "loss": [2.8]})
    assert response.status_code == 422, response.text
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "lr"] and "carry a logged lr" in item["msg"]
    assert client.get(f"/v1/runs/{run['id']}").json()["points"] == logged

    with_lr = client.post(url, json={"step": [3], "loss": [2.8], "lr": [1e-3]})
    assert with_lr.status_code == 200, with_lr.text
    assert with_lr.json()["points"]["lr"] == [1e-3] * 3


def test_append_with_lr_to_a_run_whose_points_carry_none_is_refused(client):
    """The storage keeps an lr for every point or for none: the new lr would be dropped."""
    schedule = {"type": "constant", "peak_lr": 1e-3, "total_steps": 100}
    run = _post(
        client, {"name": "no-lr", "schedule": schedule, "points": {"step": [1], "loss": [3.0]}}
    )
    url = f"/v1/runs/{run['id']}/points"
    response = client.post(url, json={"step": [2], "loss": [2.9], "lr": [1e-3]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "lr"]
    assert client.post(url, json={"step": [2], "loss": [2.9]}).status_code == 200


def test_unknown_run_is_404_for_every_run_endpoint(client):
    assert client.get("/v1/runs/run_nope").status_code == 404
    assert client.delete("/v1/runs/run_nope").status_code == 404
    assert client.get("/v1/runs/run_nope/forecast").status_code == 404
    response = client.post("/v1/runs/run_nope/points", json={"step": [1], "loss": [1.0]})
    assert response.status_code == 404 and "run_nope" in str(response.json()["detail"])


def test_delete_removes_the_run(client):
    run = _post(
        client,
        {"name": "doomed", "lr_per_step": [1e-3] * 10, "points": {"step": [1], "loss": [3.0]}},
    )
    assert client.delete(f"/v1/runs/{run['id']}").status_code == 204
    assert client.get(f"/v1/runs/{run['id']}").status_code == 404


def test_list_pages_and_filters_by_name_and_metadata(client):
    tag = "list-test"
    for i in range(5):
        _post(
            client,
            {
                "name": f"{tag}-{i}",
                "metadata": {"suite": tag, "layers": i % 2},
                "lr_per_step": [1e-3] * 10,
                "points": {"step": [1], "loss": [3.0]},
            },
        )
    page = client.get("/v1/runs", params={"name_contains": tag, "limit": 2}).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["next_offset"] == 2
    assert [item["name"] for item in page["items"]] == [f"{tag}-4", f"{tag}-3"]
    last = client.get("/v1/runs", params={"name_contains": tag, "limit": 2, "offset": 4}).json()
    assert len(last["items"]) == 1 and last["next_offset"] is None
    odd = client.get("/v1/runs", params=[("metadata", f"suite={tag}"), ("metadata", "layers=1")])
    assert sorted(item["name"] for item in odd.json()["items"]) == [f"{tag}-1", f"{tag}-3"]
    exact = client.get("/v1/runs", params={"name": f"{tag}-2"}).json()
    assert [item["name"] for item in exact["items"]] == [f"{tag}-2"]
    assert "points" not in exact["items"][0]
    bad = client.get("/v1/runs", params={"metadata": "no-equals-sign"})
    assert bad.status_code == 422 and "key=value" in str(bad.json()["detail"])


def test_csv_upload_with_a_compact_schedule_or_interpolated_lr(client, mpl):
    columns = mpl.columns("25M", "wsdcon_9")
    rows = zip(columns["step"], columns["lr"], columns["loss"], strict=True)
    csv = "step,lr,loss\n" + "\n".join(f"{s},{lr},{loss}" for s, lr, loss in rows)
    compact = (
        "multistep:peak_lr=3e-4,total_steps=16000,num_warmup_steps=2160,"
        "milestones=[8000],values=[9e-5]"
    )
    response = client.post(
        "/v1/runs/csv",
        files={"file": ("wsdcon_9.csv", csv, "text/csv")},
        data={"name": "csv-run", "metadata": '{"model_size": "25M"}', "schedule": compact},
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["lr_source"] == "schedule" and run["warnings"] == []
    assert run["schedule"] == mpl.specs()["wsdcon_9"]
    assert run["points"]["step"] == mpl.columns("25M", "wsdcon_9")["step"]

    interpolated = client.post(
        "/v1/runs/csv", files={"file": ("x.csv", csv, "text/csv")}, data={"name": "csv-lr"}
    )
    assert interpolated.status_code == 201 and interpolated.json()["lr_source"] == "interpolated"

    bad = client.post(
        "/v1/runs/csv",
        files={"file": ("x.csv", "step,lr,loss\n1,1e-3,3.0\n2,oops,2.9\n", "text/csv")},
        data={"name": "csv-bad"},
    )
    assert bad.status_code == 422 and "line 3" in str(bad.json()["detail"])


def test_body_over_the_limit_is_413_by_content_length_and_by_streamed_size(
    client, service_settings
):
    limit = service_settings.max_body_bytes
    declared = client.post(
        "/v1/runs",
        content=b"{}",
        headers={"content-length": str(limit + 1), "content-type": "application/json"},
    )
    assert declared.status_code == 413 and "MAX_BODY_BYTES" in str(declared.json()["detail"])

    def chunks():
        piece = b" " * (1 << 20)
        for _ in range(limit // len(piece) + 2):
            yield piece

    streamed = client.post(
        "/v1/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_a_dense_200000_step_run_with_per_step_lr_fits_under_the_default_limit(client):
    total = 200_000
    lr = [3e-4 * (1 - i / total) for i in range(total)]
    body = {
        "name": "dense-200k",
        "lr_per_step": lr,
        "points": {
            "step": list(range(total)),
            "loss": [3.0 + 5.0 / (1 + i) ** 0.3 for i in range(total)],
            "lr": lr,
        },
    }
    payload = json.dumps(body).encode()
    assert 10_000_000 < len(payload) < 64 * 1024 * 1024
    response = client.post(
        "/v1/runs", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text[:500]
    assert response.json()["num_points"] == total


def test_openapi_documents_every_request_body_with_an_example(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("RunCreate", "FitCreate", "PredictionRequest", "Points"):
        assert schemas[name].get("examples"), name
    assert client.get("/docs").status_code == 200
