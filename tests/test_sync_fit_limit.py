"""Synchronous fits with a time limit (``LOSSCAST_SYNC_FIT_SECONDS``): a fit that ends within it
is answered 201 as before, with no job; one that outlasts it is answered 202 with a running job,
which the same process finishes and stores once; if that process is killed first, a worker fits
the job again after the lease, and the fit is still stored once."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.schemas import SMALL_RUN, FitCreate
from app.services.fits import new_fit
from app.settings import Settings
from app.storage import Store
from bench.server import free_port, start_server
from tests.stored import worker_process


def _app(tmp_path: Path, jax_cache_dir: Path, sync_fit_seconds: float):
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'api.db'}",
            warmup=False,
            refit=False,
            local_worker=False,  # no worker: what ends a handed-over fit is the request's process
            job_poll=0.1,
            jax_cache_dir=str(jax_cache_dir),
            sync_fit_seconds=sync_fit_seconds,
        )
    )


def _poll(get, location: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get(location)
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("done", "failed"):
            return job.json()
        assert time.monotonic() < deadline, job.json()
        time.sleep(0.1)


def test_a_fit_within_the_limit_answers_201_as_before_and_makes_no_job(tmp_path, jax_cache_dir):
    with TestClient(_app(tmp_path, jax_cache_dir, 600)) as client:
        run_id = client.post("/v1/runs", json=SMALL_RUN).json()["id"]
        fit = client.post("/v1/fits", json={"run_ids": [run_id], "law": "lr_annealing"})
        assert fit.status_code == 201, fit.text
        assert fit.headers["Location"] == f"/v1/fits/{fit.json()['id']}"
        assert client.app.state.store.count_jobs() == {}


def test_a_fit_past_the_limit_answers_202_and_its_job_stores_the_same_fit_once(
    tmp_path, jax_cache_dir
):
    with TestClient(_app(tmp_path, jax_cache_dir, 0.01)) as client:
        store = client.app.state.store
        run_id = client.post("/v1/runs", json=SMALL_RUN).json()["id"]
        body = {"run_ids": [run_id], "law": "lr_annealing"}
        accepted = client.post("/v1/fits", json=body)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert accepted.headers["Location"] == f"/v1/jobs/{job['id']}"
        assert accepted.headers["Retry-After"] == "2"
        assert "Preference-Applied" not in accepted.headers  # the client did not ask for it
        assert (job["status"], job["attempts"], job["fit_id"]) == ("running", 1, None)
        assert store.get_job(job["id"]).worker.startswith("api:")
        assert store.list_fits()[1] == 0  # not stored yet: the fit goes on

        ended = _poll(client.get, accepted.headers["Location"])
        assert (ended["status"], ended["attempts"], ended["error"]) == ("done", 1, None)
        assert ended["progress"] == {"stage": "intervals", "step": 3, "steps": 3}  # the last
        fits, total = store.list_fits()
        assert total == 1 and fits[0].id == ended["fit_id"]  # stored once, by the job
        fit = client.get(ended["result"])
        assert fit.status_code == 200
        # The fit the request would have answered: the same law and numbers.
        direct = new_fit(store, FitCreate(**body))
        assert fit.json()["law"] == direct.law
        for name, expected in direct.params.items():
            assert fit.json()["params"][name] == pytest.approx(expected, rel=1e-9)
        assert store.count_jobs() == {"done": 1}


def test_a_server_killed_after_handing_a_fit_over_leaves_it_to_a_worker_and_one_fit_is_stored(
    tmp_path, jax_cache_dir
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        "LOSSCAST_SYNC_FIT_SECONDS": "0.01",
        "LOSSCAST_LOCAL_WORKER": "0",
        "LOSSCAST_JOB_LEASE": "3",
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_REFIT": "0",
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    survivor = None
    with open(tmp_path / "server.log", "w") as log:
        server, _ = start_server(tmp_path, port, log, environment)
        try:
            run_id = httpx.post(f"{base}/v1/runs", json=SMALL_RUN, timeout=30).json()["id"]
            # auto cross-validates every law: seconds of fitting, so the kill lands mid-fit
            body = {"run_ids": [run_id], "law": "auto"}
            accepted = httpx.post(f"{base}/v1/fits", json=body, timeout=60)
            assert accepted.status_code == 202, accepted.text
            server.send_signal(signal.SIGKILL)
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
    store = Store(url)
    try:
        job_id = accepted.json()["id"]
        held = store.get_job(job_id)
        assert held.status == "running" and held.worker.startswith("api:")  # nobody finished it
        assert store.list_fits()[1] == 0
        while datetime.now(UTC) <= held.lease_expires_at:  # the killed server's lease runs out
            time.sleep(0.1)
        survivor = worker_process(url, str(jax_cache_dir), "survivor", "--once")
        assert survivor.wait(600) == 0
        ended = store.get_job(job_id)
        assert (ended.status, ended.worker, ended.attempts) == ("done", "survivor", 2)
        fits, total = store.list_fits()
        assert total == 1 and fits[0].id == ended.fit_id  # never lost, never twice
    finally:
        if survivor is not None and survivor.poll() is None:
            survivor.kill()
        store.close()


def test_the_cli_and_the_client_follow_a_202_to_the_fit(tmp_path, jax_cache_dir, capsys):
    """``losscast fit --url`` and ``Client.fit`` poll the job of a fit past the limit and end
    with the fit itself, as if it had been answered at once."""
    from losscast.client import Client
    from losscast_cli import main as cli
    from tests.curves import DATA, schedule_specs

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        "LOSSCAST_SYNC_FIT_SECONDS": "0.01",
        "LOSSCAST_LOCAL_WORKER": "0",
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_REFIT": "0",
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    with open(tmp_path / "server.log", "w") as log:
        server, _ = start_server(tmp_path, port, log, environment)
        try:
            name = "cosine_24000"
            csv = str(DATA / "25M" / f"{name}.csv")
            spec = json.dumps(schedule_specs()[name])
            status = cli.main(["fit", csv, "--schedule", spec, "--url", base, "--json"])
            assert status == 0
            by_cli = json.loads(capsys.readouterr().out)
            assert by_cli["id"].startswith("fit_") and by_cli["law"] == "lr_annealing"

            by_client = Client(base).fit(by_cli["run_ids"], law="lr_annealing", intervals=False)
            assert by_client["id"].startswith("fit_") and by_client["id"] != by_cli["id"]
            assert by_client["run_ids"] == by_cli["run_ids"]
            for param, expected in by_cli["params"].items():  # intervals do not move the fit
                assert by_client["params"][param] == pytest.approx(expected, rel=1e-6)
        finally:
            server.kill()
            server.wait(30)
    store = Store(f"sqlite:///{tmp_path / 'bench.db'}")
    try:
        assert store.count_jobs() == {"done": 2}  # both were past the limit, and ended as jobs
        assert store.list_fits()[1] == 2
    finally:
        store.close()
