"""Fits as jobs: the queue in the store on SQLite always and on PostgreSQL when
LOSSCAST_TEST_POSTGRES_URL is set (each job to one worker, however many claim at once; leases
that expire hand a job to another worker; a fit stored once), ``POST /v1/fits`` with
``Prefer: respond-async`` run by the server's own worker, and a ``losscast worker`` process
killed with SIGKILL mid-fit whose job another worker process finishes."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.jobs import Worker
from app.main import create_app
from app.schemas import SMALL_RUN
from app.settings import Settings
from app.storage import FitRunSnapshot, NewFit, Store
from tests.stored import store_small_run, worker_process
from tests.test_observability import scrape, value


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    store.drop_schema()
    store.create_schema()
    yield store
    store.drop_schema()
    store.close()


def _new_fit(run_id: str = "run_x") -> NewFit:
    steps = np.array([10, 20])
    snapshot = FitRunSnapshot(run_id, "r", 1, "schedule", 100, "0" * 64, "1" * 64, steps, steps / 7)
    return NewFit("lr_annealing", {"L0": 2.5}, True, {}, {}, [snapshot])


def test_jobs_are_claimed_oldest_first_once_each(store):
    first = store.enqueue_job("fit", {"run_ids": ["a"]})
    second = store.enqueue_job("fit", {"run_ids": ["b"]})
    a = store.claim_job("worker-a", 30, 3)
    b = store.claim_job("worker-b", 30, 3)
    assert (a.id, a.status, a.worker, a.attempts) == (first.id, "running", "worker-a", 1)
    assert (b.id, b.worker) == (second.id, "worker-b")
    assert store.claim_job("worker-c", 30, 3) is None
    assert store.count_jobs() == {"running": 2}


def test_many_workers_claiming_at_once_get_each_job_exactly_once(store):
    queued = {store.enqueue_job("fit", {"n": i}).id for i in range(24)}
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def claim_all(name):
        start.wait()
        while (job := store.claim_job(name, 30, 3)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(queued)  # every job once, none twice
    assert all(job.attempts == 1 for job in map(store.get_job, queued))


def test_an_expired_lease_hands_the_job_over_and_the_fit_is_stored_once(store):
    job = store.enqueue_job("fit", {})
    assert store.claim_job("paused", 0.3, 3).id == job.id
    assert store.claim_job("other", 30, 3) is None  # the lease holds
    assert store.renew_lease(job.id, "paused", 0.3)
    time.sleep(0.5)
    taken = store.claim_job("other", 30, 3)
    assert (taken.id, taken.worker, taken.attempts) == (job.id, "other", 2)
    # The worker that paused past its lease can neither renew nor store its fit.
    assert not store.renew_lease(job.id, "paused", 30)
    assert store.complete_job(job.id, "paused", _new_fit()) is None
    stored = store.complete_job(job.id, "other", _new_fit())
    assert stored is not None
    assert store.complete_job(job.id, "other", _new_fit()) is None  # done: not again
    done = store.get_job(job.id)
    assert (done.status, done.fit_id, done.lease_expires_at) == ("done", stored.id, None)
    assert store.list_fits()[1] == 1


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(store):
    job = store.enqueue_job("fit", {})
    for attempt in (1, 2):
        assert store.claim_job(f"w{attempt}", 0.05, 2).attempts == attempt
        time.sleep(0.1)
    assert store.claim_job("w3", 0.05, 2) is None
    failed = store.get_job(job.id)
    assert failed.status == "failed" and failed.error["type"] == "worker_lost"


def _app(tmp_path, **overrides):
    values = {
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "warmup": False,
        "refit": False,
        "job_poll": 0.1,
        "jax_cache_dir": overrides.pop("jax_cache_dir", ""),
    }
    return create_app(Settings(**{**values, **overrides}))


def _wait_for(client, location, timeout=300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location)
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("done", "failed"):
            return job.json()
        assert time.monotonic() < deadline, job.json()
        time.sleep(0.1)


def test_respond_async_queues_the_fit_and_the_server_s_worker_makes_the_same_fit(
    tmp_path, jax_cache_dir
):
    app = _app(tmp_path, jax_cache_dir=str(jax_cache_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        run_id = client.post("/v1/runs", json=SMALL_RUN).json()["id"]
        body = {"run_ids": [run_id], "law": "lr_annealing"}
        queued = client.post("/v1/fits", json=body, headers={"Prefer": "respond-async"})
        assert queued.status_code == 202, queued.text
        assert queued.headers["Preference-Applied"] == "respond-async"
        location = queued.headers["Location"]
        assert location == f"/v1/jobs/{queued.json()['id']}"
        assert queued.json()["status"] == "queued"
        job = _wait_for(client, location)
        assert (job["status"], job["attempts"], job["error"]) == ("done", 1, None)
        fit = client.get(job["result"])
        assert fit.status_code == 200
        direct = client.post("/v1/fits", json=body)  # the synchronous fit still answers 201
        assert direct.status_code == 201
        for name, expected in direct.json()["params"].items():
            assert fit.json()["params"][name] == pytest.approx(expected, rel=1e-9)
        assert client.get("/v1/fits").json()["total"] == 2
        samples = scrape(client)
        assert value(samples, "losscast_jobs", status="done") == 1
        assert value(samples, "losscast_jobs", status="queued") == 0
        job_fits = value(
            samples, "losscast_fit_duration_seconds_count", task="new_fit", outcome="ok"
        )
        assert job_fits >= 1
        # What can be refused at once is refused at once, not queued.
        unknown = client.post(
            "/v1/fits", json={"run_ids": ["run_nope"]}, headers={"Prefer": "respond-async"}
        )
        assert unknown.status_code == 404
        assert client.get("/v1/jobs/job_nope").status_code == 404


def test_a_job_whose_run_is_deleted_before_it_runs_fails_saying_so(tmp_path):
    app = _app(tmp_path, local_worker=False)
    with TestClient(app) as client:
        run_id = client.post("/v1/runs", json=SMALL_RUN).json()["id"]
        queued = client.post(
            "/v1/fits", json={"run_ids": [run_id]}, headers={"Prefer": "respond-async"}
        )
        assert client.delete(f"/v1/runs/{run_id}").status_code == 204
        assert client.get(queued.headers["Location"]).json()["status"] == "queued"
        ended = Worker(app.state.store, "test").run_one()
        assert ended.status == "failed"
        assert ended.error["type"] == "not_found" and run_id in ended.error["msg"]
        answered = client.get(queued.headers["Location"]).json()["error"]
        assert {key: answered[key] for key in ("loc", "msg", "type")} == ended.error


def _worker_process(url: str, cache: str, name: str, *extra: str) -> subprocess.Popen:
    return worker_process(url, cache, name, "--lease", "3", *extra, LOSSCAST_JOB_POLL="0.2")


def test_a_worker_killed_mid_fit_leaves_its_job_to_another_worker(
    database_url, tmp_path, jax_cache_dir
):
    store = Store(database_url)
    store.drop_schema()
    store.create_schema()
    records = store.get_runs([store_small_run(store).id])
    job = store.enqueue_job("fit", {"run_ids": [records[0].id], "law": "lr_annealing"})
    doomed = _worker_process(database_url, str(jax_cache_dir), "doomed")
    survivor = None
    try:
        deadline = time.monotonic() + 120
        while store.get_job(job.id).status == "queued":
            assert time.monotonic() < deadline and doomed.poll() is None
            time.sleep(0.05)
        assert store.get_job(job.id).worker == "doomed"
        doomed.send_signal(signal.SIGKILL)  # mid-fit: the fit takes seconds, this is at once
        doomed.wait(30)
        held = store.get_job(job.id)
        assert held.status == "running"  # nobody finished it
        while datetime.now(UTC) <= held.lease_expires_at:  # the doomed worker's lease runs out
            time.sleep(0.1)
        survivor = _worker_process(database_url, str(jax_cache_dir), "survivor", "--once")
        assert survivor.wait(300) == 0
        ended = store.get_job(job.id)
        assert (ended.status, ended.worker, ended.attempts) == ("done", "survivor", 2)
        fits, total = store.list_fits()
        assert total == 1 and fits[0].id == ended.fit_id  # stored once
    finally:
        for process in (doomed, survivor):
            if process is not None and process.poll() is None:
                process.kill()
        store.drop_schema()
        store.close()


def test_a_job_that_meets_an_unreachable_database_is_left_for_retry(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.create_schema()
    job = store.enqueue_job("fit", {"run_ids": ["run_x"], "law": "lr_annealing"})
    worker = Worker(store, "w", lease=0.3)
    claimed = worker.claim()
    with store.engine.begin() as connection:  # SQLite's OperationalError, as for a locked file
        connection.execute(text("DROP TABLE runs"))
    assert worker.process(claimed) is None
    left = store.get_job(job.id)
    assert (left.status, left.error, left.worker) == ("running", None, "w")  # not failed
    time.sleep(0.5)
    assert store.claim_job("other", 30, 3).attempts == 2  # its lease ran out: claimed again
    store.close()
