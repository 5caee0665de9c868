"""Fixtures for the service's tests: one warmed-up app and client per session (the JIT warm-up
costs seconds; every API test shares it), on a SQLite file in a temporary folder, and the MPL
curves as request bodies."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import pytest

from tests.curves import DATA, FITTING, HELD_OUT, schedule_specs

# One source of truth for the shipped curves and the split (tests/curves.py).
MPL = DATA
FITTING_RUNS = FITTING
HELD_OUT_RUNS = HELD_OUT
mpl_specs = schedule_specs

# The suite's synchronous fits (every law, cross-validated, on 2 busy cores) may take longer than
# the service's time limit (LOSSCAST_SYNC_FIT_SECONDS, 20 s), past which they are answered 202;
# the apps and servers the tests start wait for them. tests/test_sync_fit_limit.py sets it low.
os.environ.setdefault("LOSSCAST_SYNC_FIT_SECONDS", "3600")

#: The test PostgreSQL database (.ci/run starts a server and sets it), or None: its cases skip.
POSTGRES_URL = os.environ.get("LOSSCAST_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.skipif(not POSTGRES_URL, reason="LOSSCAST_TEST_POSTGRES_URL unset"),
                # One shared database: `make test` runs these cases apart, one at a time.
                pytest.mark.postgresql,
            ],
        ),
    ]
)
def database_url(request, tmp_path) -> str:
    """Each storage backend in turn: a SQLite file in a folder not yet made, then the test
    PostgreSQL database (shared: a test drops and creates its schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'losscast.db'}"
    return POSTGRES_URL


@cache
def mpl_columns(size: str, name: str) -> dict[str, list]:
    """The logged columns of one MPL curve: step, lr, loss."""
    lines = (MPL / size / f"{name}.csv").read_text().split()
    assert lines[0] == "step,lr,loss"
    rows = [line.split(",") for line in lines[1:]]
    return {
        "step": [int(row[0]) for row in rows],
        "lr": [float(row[1]) for row in rows],
        "loss": [float(row[2]) for row in rows],
    }


def mpl_run_body(size: str, name: str, *, with_lr: bool = False) -> dict:
    """The body of POST /v1/runs for one MPL curve, with its schedule spec."""
    columns = mpl_columns(size, name)
    points = {"step": columns["step"], "loss": columns["loss"]}
    if with_lr:
        points["lr"] = columns["lr"]
    return {
        "name": f"{size}/{name}",
        "metadata": {"model_size": size, "source": "MPL"},
        "schedule": mpl_specs()[name],
        "points": points,
    }


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory) -> Path:
    """One persistent compilation cache for the session: the uvicorn subprocesses of the
    restart test reuse what the in-process app compiled."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="session")
def service_settings(tmp_path_factory, jax_cache_dir):
    from app.settings import Settings

    folder = tmp_path_factory.mktemp("service")
    return Settings(
        database_url=f"sqlite:///{folder / 'losscast.db'}",
        jax_cache_dir=str(jax_cache_dir),
        max_body_bytes=64 * 1024 * 1024,
    )


@pytest.fixture(scope="session")
def client(service_settings):
    """A TestClient on a warmed-up app; server errors come back as responses (500), so tests
    can assert they never happen."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(service_settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        deadline = time.monotonic() + 600
        while test_client.get("/healthz").status_code != 200:
            assert app.state.warmup_state != "failed", "JIT warm-up failed"
            assert time.monotonic() < deadline, "JIT warm-up did not finish in 10 minutes"
            time.sleep(0.1)
        yield test_client


@pytest.fixture(scope="session")
def mpl_fit(client) -> dict:
    """The three 25M fitting runs posted, and lr_annealing fitted to them with defaults."""
    run_ids = []
    for name in FITTING_RUNS:
        response = client.post("/v1/runs", json=mpl_run_body("25M", name))
        assert response.status_code == 201, response.text
        run_ids.append(response.json()["id"])
    response = client.post("/v1/fits", json={"run_ids": run_ids, "law": "lr_annealing"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="session")
def mpl():
    """Helpers on the MPL curves, for test modules (they do not import conftest)."""

    class MPLCurves:
        specs = staticmethod(mpl_specs)
        columns = staticmethod(mpl_columns)
        run_body = staticmethod(mpl_run_body)
        fitting = FITTING_RUNS
        held_out = HELD_OUT_RUNS

    return MPLCurves
