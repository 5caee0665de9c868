"""``losscast worker`` limits the threads of its fits (``LOSSCAST_WORKER_THREADS``, default 1,
or ``--threads``) before JAX starts: XLA's CPU pool (its ``tf_XLAEigen`` threads, counted in
/proc after a real job) has that many threads, where it would have one per core."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.storage import Store
from losscast_cli.admin import THREAD_VARIABLES, limit_threads
from tests.stored import store_small_run

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")


def _xla_threads(pid: int) -> int:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return names.count("tf_XLAEigen")


def _worker_after_a_job(tmp_path: Path, jax_cache_dir: Path, *extra: str, **env: str) -> int:
    """XLA's CPU threads in a ``losscast worker`` process once it has fitted a job."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = Store(url)
    store.create_schema()
    run = store_small_run(store)
    job = store.enqueue_job("fit", {"run_ids": [run.id], "law": "lr_annealing", "intervals": False})
    environment = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    environment.update(LOSSCAST_JAX_CACHE_DIR=str(jax_cache_dir), LOSSCAST_JOB_POLL="0.1", **env)
    command = [sys.executable, "-m", "losscast_cli", "worker", "--database-url", url, *extra]
    worker = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while store.get_job(job.id).status != "done":
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        return _xla_threads(worker.pid)
    finally:
        worker.terminate()
        worker.wait(60)
        store.close()


def test_a_worker_fits_on_one_thread_by_default(tmp_path, jax_cache_dir):
    assert _worker_after_a_job(tmp_path, jax_cache_dir) == 1


def test_the_worker_s_thread_count_is_a_setting(tmp_path, jax_cache_dir):
    # 3 is neither the default (1) nor this machine's every core (XLA's own default) on 2 cores
    assert _worker_after_a_job(tmp_path, jax_cache_dir, "--threads", "3") == 3


def test_the_limit_leaves_variables_already_set_and_0_leaves_them_all(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert limit_threads(0) == {}
    assert "NPROC" not in os.environ
    chosen = limit_threads(2)
    assert chosen == {"NPROC": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert os.environ["OMP_NUM_THREADS"] == "4"  # the operator's choice stands
