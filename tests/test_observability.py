"""``GET /metrics`` parses with prometheus_client's own text parser and its numbers move as
requests are served (by route and status, latency histograms, a real fit's duration, JIT
compilations, database errors); the logs are JSON lines carrying the request id, with no API
token in them."""

from __future__ import annotations

import io
import json
import logging

import jax.numpy as jnp
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.auth import create_key
from app.logs import RequestIdFilter, formatter
from app.main import create_app
from app.schemas import SMALL_RUN
from app.settings import Settings
from fitting.compiled import KERNELS, bounded_jit


@pytest.fixture
def client(tmp_path, jax_cache_dir):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'metrics.db'}",
        warmup=False,
        refit=False,
        jax_cache_dir=str(jax_cache_dir),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def log_lines():
    """What the ``losscast`` loggers write, as the service's JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("losscast")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus_client: (name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_and_status_with_latency_histograms(client):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/v1/runs").status_code == 200
    assert client.get("/v1/runs/run_nope").status_code == 404
    assert client.post("/v1/runs", json={"name": "x"}).status_code == 422
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("http_requests_total", handler="/v1/runs", method="GET", status="200") == 3
    assert (
        moved("http_requests_total", handler="/v1/runs/{run_id}", method="GET", status="404") == 1
    )
    assert moved("http_requests_total", handler="/v1/runs", method="POST", status="422") == 1
    histogram = {"handler": "/v1/runs", "method": "GET"}
    assert moved("http_request_duration_seconds_count", **histogram) == 3
    assert moved("http_request_duration_seconds_bucket", le="+Inf", **histogram) == 3
    assert moved("http_request_duration_seconds_sum", **histogram) > 0
    # /metrics itself is not counted: scraping does not move the numbers it reports.
    assert not any(labels and ("handler", "/metrics") in labels for _, labels in after)


def test_a_fit_is_timed_and_the_jit_cache_is_counted(client):
    square = bounded_jit(name="test.square")(lambda x: x * x)
    try:
        before = scrape(client)
        square(jnp.ones(3)), square(jnp.ones(3)), square(jnp.ones(5))  # two shapes: two compiles
        run = client.post("/v1/runs", json=SMALL_RUN)
        assert run.status_code == 201, run.text
        fit = client.post("/v1/fits", json={"run_ids": [run.json()["id"]], "law": "lr_annealing"})
        assert fit.status_code == 201, fit.text
        after = scrape(client)
    finally:
        KERNELS.pop("test.square")
    kernel = {"kernel": "test.square"}
    assert value(before, "losscast_jit_compilations_total", **kernel) == 0
    assert value(after, "losscast_jit_compilations_total", **kernel) == 2
    assert value(after, "losscast_jit_signatures", **kernel) == 2
    labels = {"task": "fit_runs", "outcome": "ok"}
    count = "losscast_fit_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    took = value(after, "losscast_fit_duration_seconds_sum", **labels) - value(
        before, "losscast_fit_duration_seconds_sum", **labels
    )
    assert 0 < took <= fit.elapsed.total_seconds() + 1
    for name in ("fit.value_and_grad", "fit.starts"):  # the fit's kernels hold its shapes
        assert value(after, "losscast_jit_signatures", kernel=name) >= 1
        assert value(after, "losscast_jit_compilations_total", kernel=name) >= 1


def test_database_errors_are_counted_and_answered_503(client, log_lines):
    before = scrape(client)
    with client.app.state.store.engine.begin() as connection:
        connection.execute(text("DROP TABLE runs"))  # every query of runs now fails
        connection.execute(text("DROP TABLE jobs"))  # and /metrics' count of the jobs
    response = client.get("/v1/runs")
    assert response.status_code == 503
    after = scrape(client)  # still answers, without losscast_jobs
    assert not any(name == "losscast_jobs" for name, _ in after)
    error = {"error": "OperationalError"}
    assert (
        value(after, "losscast_database_errors_total", **error)
        - value(before, "losscast_database_errors_total", **error)
        >= 1
    )
    rid = response.headers["X-Request-ID"]
    # The handler's warning and the access line both carry the request's id.
    mine = [line for line in log_lines() if line["request_id"] == rid]
    assert {line["logger"] for line in mine} == {"losscast", "losscast.access"}
    assert any("database unavailable" in line["message"] for line in mine)


def test_access_lines_are_json_with_the_request_id_route_status_and_duration(client, log_lines):
    response = client.get("/v1/runs/run_nope", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 404
    (line,) = [line for line in log_lines() if line["request_id"] == "trace-42"]
    assert line["logger"] == "losscast.access" and line["level"] == "INFO"
    assert (line["method"], line["path"], line["route"], line["status"]) == (
        "GET",
        "/v1/runs/run_nope",
        "/v1/runs/{run_id}",
        404,
    )
    assert line["duration_ms"] > 0 and line["time"].endswith("+00:00")


def test_no_token_reaches_the_logs(client, log_lines):
    store = client.app.state.store
    read_key, read = create_key(store, "reader", ["read"])
    _, admin = create_key(store, "admin", ["admin"])
    client.get("/v1/runs", headers={"Authorization": f"Bearer {read}"})
    client.post("/v1/runs", json={}, headers={"Authorization": f"Bearer {read}"})  # 403
    client.get("/v1/runs", headers={"Authorization": f"Bearer {admin}x"})  # 401
    client.get("/v1/runs?token=" + admin)  # a token where none belongs: not logged either
    lines = log_lines()
    assert len(lines) == 4
    assert [line["status"] for line in lines] == [200, 403, 401, 401]
    assert lines[0]["api_key_id"] == read_key.id  # the key's id, which is not secret
    logged = json.dumps(lines)
    for token in (read, admin):
        secret = token.split("_", 2)[2]  # lck_<id>_<secret>; the secret may itself hold "_"
        assert token not in logged and secret not in logged
