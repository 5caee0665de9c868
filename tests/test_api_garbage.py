"""Garbage at every endpoint: whatever arrives, the answer is a JSON 4xx (or a 2xx), never a 500
or a traceback. Values are drawn small so that valid-looking schedules stay in a few shape
buckets (a new bucket costs a JIT compilation)."""

from __future__ import annotations

import json
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


def test_unknown_paths_and_methods_are_json_4xx(client):
    assert client.get("/nope").json() == {"detail": "Not Found"}
    assert client.put("/v1/runs").status_code == 405
    response = client.post("/v1/runs", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 422


def test_an_unexpected_error_is_a_generic_json_500_without_a_traceback(tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/db", warmup=False))

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
