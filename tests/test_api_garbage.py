"""Garbage at every endpoint: whatever arrives, the answer is a JSON 4xx (or a 2xx), never a 500
or a traceback. Values are drawn small so that valid-looking schedules stay in a few shape
buckets (a new bucket costs a JIT compilation)."""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitting.schedules import SCHEDULE_TYPES

SETTINGS = settings(
    max_examples=int(os.environ.get("LOSSCAST_GARBAGE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

numbers = st.sampled_from(
    [0, 1, 2, 10, 100, -1, 3e-4, 0.5, 1.5, -0.0, 1e308, 2**31, 2**63, 10**30]
) | st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
number_lists = st.lists(numbers, max_size=6) | json_values
schedule_keys = st.sampled_from(
    [
        "peak_lr",
        "total_steps",
        "num_warmup_steps",
        "min_lr",
        "min_lr_ratio",
        "decay_type",
        "decay_fraction",
        "num_decay_steps",
        "milestones",
        "values",
        "gamma",
        "steps",
        "lr_per_step",
        "num_cycles",
        "power",
        "warmup_init_value",
        "bogus",
    ]
)
schedules = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(sorted(SCHEDULE_TYPES)) | st.text(max_size=8)}
    ).flatmap(
        lambda head: st.dictionaries(
            schedule_keys,
            st.sampled_from([1e-3, 10, 100, 50]) | scalars | st.lists(numbers, max_size=3),
            max_size=5,
        ).map(lambda rest: {**rest, **head})
    )
    | json_values
)
points = (
    st.fixed_dictionaries(
        {"step": number_lists, "loss": number_lists},
        optional={"lr": number_lists, "extra": json_values},
    )
    | json_values
)


def _send(client, method, url, body):
    if isinstance(body, bytes):
        response = client.request(
            method, url, content=body, headers={"content-type": "application/json"}
        )
    else:
        text = json.dumps(body, allow_nan=True)
        response = client.request(
            method, url, content=text, headers={"content-type": "application/json"}
        )
    assert response.status_code < 500, (method, url, body, response.text)
    assert response.headers["content-type"].startswith(
        "application/json"
    ) or response.status_code in (204, 304)
    return response


@pytest.fixture(scope="module")
def stored(client, mpl_fit):
    run = client.post(
        "/v1/runs",
        json={
            "name": "garbage-target",
            "lr_per_step": [1e-3] * 100,
            "points": {"step": [1, 2], "loss": [3.0, 2.9]},
        },
    ).json()
    return {"run_id": run["id"], "fit_id": mpl_fit["id"], "run_ids": mpl_fit["run_ids"]}


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {"name": st.text(max_size=5) | json_values, "points": points},
        optional={"schedule": schedules, "lr_per_step": number_lists, "metadata": json_values},
    )
    | json_values
)
def test_post_runs_never_500(client, body):
    _send(client, "POST", "/v1/runs", body)


@SETTINGS
@given(body=points)
def test_post_points_never_500(client, stored, body):
    _send(client, "POST", f"/v1/runs/{stored['run_id']}/points", body)


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "run_ids": st.just("existing")
            | st.lists(st.text(max_size=6), max_size=3)
            | json_values,
            "law": st.sampled_from(["lr_annealing", "auto", "nope", ""]) | json_values,
            "intervals": st.booleans() | json_values,
            "warmup": st.sampled_from(["include", "exclude", "x"]) | json_values,
            "fixed": st.dictionaries(st.text(max_size=4), numbers, max_size=2) | json_values,
            "bounds": json_values,
            "huber_delta": numbers | json_values,
            "min_step": st.sampled_from([10**9, -1, "x", None]),
        },
    )
    | json_values
)
def test_post_fits_never_500(client, stored, body):
    if isinstance(body, dict) and body.get("run_ids") == "existing":
        body["run_ids"] = stored["run_ids"]
        body.setdefault("min_step", 10**9)  # keeps the fit from running: garbage must fail fast
    _send(client, "POST", "/v1/fits", body)


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "fit_id": st.just("existing") | st.text(max_size=6) | json_values,
            "law": st.sampled_from(["lr_annealing", "nope"]) | json_values,
            "params": st.dictionaries(
                st.sampled_from(["L0", "A", "alpha", "C", "decay", "x"]), numbers, max_size=6
            )
            | json_values,
            "warmup": st.sampled_from(["include", "exclude", "x"]),
            "schedule": schedules,
            "lr_per_step": number_lists,
            "steps": number_lists,
            "num_points": numbers | json_values,
            "level": st.sampled_from([0.9, 0.5, None]) | numbers | json_values,
            "candidates": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "schedule": schedules,
                        "steps": number_lists,
                        "num_points": numbers,
                        "name": json_values,
                    },
                ),
                max_size=3,
            )
            | json_values,
        },
    )
    | json_values
)
def test_post_predictions_never_500(client, stored, body):
    if isinstance(body, dict) and body.get("fit_id") == "existing":
        body["fit_id"] = stored["fit_id"]
    _send(client, "POST", "/v1/predictions", body)


@SETTINGS
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_malformed_json_bodies_never_500(client, stored, raw):
    for url in ("/v1/runs", f"/v1/runs/{stored['run_id']}/points", "/v1/fits", "/v1/predictions"):
        _send(client, "POST", url, raw)


@SETTINGS
@given(
    schedule=st.text(max_size=80)
    | st.builds(
        lambda kind, items: kind + ":" + ",".join(f"{k}={v}" for k, v in items),
        st.sampled_from(sorted(SCHEDULE_TYPES)) | st.text(max_size=5),
        st.lists(
            st.tuples(
                schedule_keys,
                st.sampled_from(["1e-3", "100", "[1,2]", "[", "x", "", "nan", "-1", "1e999"]),
            ),
            max_size=4,
        ),
    ),
    num_points=st.sampled_from(["1", "300", "0", "-5", "x", "1e3", "999999999"]),
    level=st.sampled_from(["0.9", "none", "NONE", "0", "1", "x", "", "nan", "1e-3", "-inf"])
    | st.text(max_size=8),
)
def test_curve_queries_never_500(client, stored, schedule, num_points, level):
    response = client.get(
        f"/v1/fits/{stored['fit_id']}/curve",
        params={"schedule": schedule, "num_points": num_points, "level": level},
    )
    assert response.status_code < 500, (schedule, response.text)


@SETTINGS
@given(
    path=st.text(max_size=10),
    params=st.dictionaries(
        st.sampled_from(
            [
                "limit",
                "offset",
                "name",
                "name_contains",
                "metadata",
                "fit_id",
                "num_points",
                "include_lr",
                "run_id",
                "law",
                "level",
            ]
        ),
        st.text(max_size=10),
        max_size=4,
    ),
)
def test_get_and_delete_with_odd_ids_and_params_never_500(client, stored, path, params):
    path = quote(path, safe="")
    for url in (
        "/v1/runs",
        "/v1/fits",
        f"/v1/runs/{path or 'x'}",
        f"/v1/fits/{path or 'x'}",
        f"/v1/runs/{stored['run_id']}/forecast",
        f"/v1/runs/{path or 'x'}/forecast",
    ):
        response = client.get(url, params=params)
        assert response.status_code < 500, (url, params, response.text)
    assert client.delete(f"/v1/runs/x{path}").status_code == 404


@SETTINGS
@given(
    csv=st.text(max_size=120)
    | st.lists(st.tuples(numbers, numbers, numbers), max_size=4).map(
        lambda rows: "step,lr,loss\n" + "\n".join(",".join(map(str, row)) for row in rows)
    ),
    form=st.dictionaries(
        st.sampled_from(["name", "metadata", "schedule"]), st.text(max_size=20), max_size=3
    ),
)
def test_csv_uploads_never_500(client, csv, form):
    response = client.post(
        "/v1/runs/csv", files={"file": ("x.csv", csv.encode(), "text/csv")}, data=form
    )
    assert response.status_code < 500, (csv, form, response.text)


def _one_error(response, status: int) -> dict:
    """The one error shape (app.schemas.ErrorOut): its single item; the request id is the
    X-Request-ID header."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "request_id"}, body
    assert body["request_id"] == response.headers["x-request-id"]
    (item,) = body["detail"]
    assert {"loc", "msg", "type"} <= set(item) and isinstance(item["loc"], list)
    return item


def test_unknown_paths_and_methods_are_json_4xx_in_the_one_error_shape(client):
    assert _one_error(client.get("/nope"), 404) == {
        "loc": [],
        "msg": "Not Found",
        "type": "not_found",
    }
    not_allowed = client.put("/v1/runs")
    assert _one_error(not_allowed, 405)["type"] == "method_not_allowed"
    assert not_allowed.headers["allow"] == "GET, OPTIONS, POST"
    response = client.post("/v1/runs", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/runs", "GET, OPTIONS, POST"),
        ("/v1/runs/run_x", "DELETE, GET, OPTIONS"),
        ("/v1/runs/run_x/points", "OPTIONS, POST"),
        ("/v1/fits", "GET, OPTIONS, POST"),
        ("/v1/fits/fit_x/curve", "GET, OPTIONS"),
        ("/v1/predictions", "OPTIONS, POST"),
    ],
)
def test_options_and_405_list_exactly_the_methods_of_the_path(client, path, allow):
    """Starlette's 405 named only the first route matching the path (OPTIONS /v1/runs said
    POST, hiding GET)."""
    options = client.options(path)
    assert options.status_code == 204 and options.headers["allow"] == allow
    assert client.patch(path).headers["allow"] == allow


def test_a_client_request_id_is_kept_and_a_bad_one_replaced(client):
    assert (
        client.get("/v1/laws", headers={"X-Request-ID": "job-42.step:7"}).headers["x-request-id"]
        == "job-42.step:7"
    )
    response = client.get("/nope", headers={"X-Request-ID": "bad id\twith tabs"})
    assert response.headers["x-request-id"] != "bad id\twith tabs"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_body_that_cannot_be_parsed_is_422_not_an_undocumented_400(client):
    response = client.post(
        "/v1/runs/csv",
        content=b"--x\r\nnot a form",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    item = _one_error(response, 422)
    assert item["loc"] == ["body"] and item["type"] == "body_unparsable"
    not_utf8 = client.post(
        "/v1/runs", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
    )
    assert not_utf8.status_code == 422, not_utf8.text


def _app_with_routes(tmp_path):
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/db", warmup=False))

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/bug")
    def bug():
        list(zip([1], [1, 2], strict=True))  # a ValueError that is a bug, not bad input

    @app.get("/db-down")
    def db_down():
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    return app


def test_an_unexpected_error_is_a_json_500_with_a_request_id_and_no_traceback(tmp_path, caplog):
    from fastapi.testclient import TestClient

    losscast_logger = logging.getLogger("losscast")  # it does not propagate to caplog's root
    losscast_logger.addHandler(caplog.handler)
    try:
        with TestClient(_app_with_routes(tmp_path), raise_server_exceptions=False) as client:
            response = client.get("/boom", headers={"X-Request-ID": "req-500"})
            bug = client.get("/bug")
    finally:
        losscast_logger.removeHandler(caplog.handler)
    item = _one_error(response, 500)
    assert item["type"] == "internal_error" and "req-500" in item["msg"]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "req-500" in caplog.text and "secret internals" in caplog.text  # logged, with its id
    assert _one_error(bug, 500)["type"] == "internal_error"  # was a 422 "your input is wrong"


def test_an_unreachable_database_is_503_with_retry_after(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app_with_routes(tmp_path), raise_server_exceptions=False) as client:
        response = client.get("/db-down")
    assert _one_error(response, 503)["type"] == "service_unavailable"
    assert int(response.headers["retry-after"]) > 0
