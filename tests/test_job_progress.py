"""A job's ``progress``: the stage its fit is at, written by the worker that runs it and read at
``GET /v1/jobs/{id}``; a new attempt starts it over; only the job's worker may write it."""

from __future__ import annotations

import time
from typing import get_args

from fastapi.testclient import TestClient

from app.main import create_app
from app.policy import FIT_STAGES, fit_stages
from app.schemas import FitCreate, JobProgress
from app.settings import Settings
from app.storage import Store
from tests.stored import worker_process


def test_the_stages_a_job_reports_are_the_policy_s():
    assert list(get_args(JobProgress.model_fields["stage"].annotation)) == list(FIT_STAGES)
    assert fit_stages(FitCreate(run_ids=["r"], law="auto")) == [
        "selecting",
        "other_laws",
        "intervals",
    ]
    assert fit_stages(FitCreate(run_ids=["r"], law="lr_annealing", intervals=False)) == ["fitting"]


def test_progress_is_the_job_s_worker_s_to_write_and_a_new_attempt_starts_it_over(database_url):
    store = Store(database_url)
    store.drop_schema()
    store.create_schema()
    try:
        job = store.enqueue_job("fit", {"run_ids": ["a"]})
        assert store.get_job(job.id).progress is None
        assert store.claim_job("first", 0.2, 3).id == job.id
        stage = {"stage": "fitting", "step": 1, "steps": 3}
        assert store.report_progress(job.id, "first", stage)
        assert not store.report_progress(job.id, "someone-else", {"stage": "intervals"})
        assert store.get_job(job.id).progress == stage
        time.sleep(0.3)  # the first worker's lease runs out
        again = store.claim_job("second", 30, 3)
        assert (again.id, again.attempts, again.progress) == (job.id, 2, None)
        assert not store.report_progress(job.id, "first", stage)  # not the first's any more
    finally:
        store.drop_schema()
        store.close()


def test_a_worker_process_reports_each_stage_of_an_auto_fit_at_get_jobs(
    tmp_path, jax_cache_dir, mpl
):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = Settings(
        database_url=url,
        warmup=False,
        refit=False,
        local_worker=False,  # the worker below, a process of its own, runs the job
        jax_cache_dir=str(jax_cache_dir),
    )
    worker = None
    with TestClient(create_app(settings)) as client:
        run = client.post("/v1/runs", json=mpl.run_body("25M", "cosine_24000"))
        body = {"run_ids": [run.json()["id"]], "law": "auto"}
        queued = client.post("/v1/fits", json=body, headers={"Prefer": "respond-async"})
        assert queued.status_code == 202, queued.text
        assert queued.json()["progress"] is None  # no worker has it yet
        location = queued.headers["Location"]
        worker = worker_process(url, str(jax_cache_dir), "w", "--once")
        try:
            seen: list[dict] = []  # each progress read while running, when it changed
            deadline = time.monotonic() + 900
            while (job := client.get(location).json())["status"] in ("queued", "running"):
                if job["status"] == "running" and job["progress"] and job["progress"] not in seen:
                    seen.append(job["progress"])
                assert time.monotonic() < deadline, job
                time.sleep(0.02)
            assert worker.wait(60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    assert job["status"] == "done", job
    stages = fit_stages(FitCreate(**body))
    assert stages == ["selecting", "other_laws", "intervals"]
    expected = [{"stage": name, "step": i + 1, "steps": 3} for i, name in enumerate(stages)]
    assert len(seen) >= 2, seen  # watched it move: each stage takes seconds
    assert seen == [stage for stage in expected if stage in seen]  # in order, none invented
    assert job["progress"] == expected[-1]  # done: the last stage it reached
