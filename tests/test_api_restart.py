"""Durability with a real server: runs and fits acknowledged by a uvicorn process survive its
kill -9 and are all there after a restart on the same SQLite file."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from bench.server import free_port, start_server


def _start(database: Path, jax_cache_dir: Path, port: int, log) -> subprocess.Popen:
    """A server on ``database`` (the same file across restarts), no warm-up, the tests' cache."""
    environment = {
        "DATABASE_URL": f"sqlite:///{database}",
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    server, _ = start_server(database.parent, port, log, environment)
    return server


def test_runs_and_fits_survive_kill_minus_9_and_restart(tmp_path, jax_cache_dir, client, mpl):
    # `client` first: its warm-up fills the compilation cache the servers below reuse.
    database = tmp_path / "var" / "losscast.db"
    database.parent.mkdir()
    log = (tmp_path / "server.log").open("a")
    port = free_port()
    server = _start(database, jax_cache_dir, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            runs = []
            for name in mpl.fitting:
                response = http.post("/v1/runs", json=mpl.run_body("25M", name))
                assert response.status_code == 201, response.text
                runs.append(response.json())
            fit = http.post("/v1/fits", json={"run_ids": [r["id"] for r in runs]})
            assert fit.status_code == 201, fit.text
            fit = fit.json()
            extra = http.post(
                "/v1/runs",
                json={
                    "name": "last-write",
                    "lr_per_step": [1e-3] * 50,
                    "points": {"step": [1], "loss": [3.0]},
                },
            ).json()
            appended = http.post(
                f"/v1/runs/{extra['id']}/points", json={"step": [7], "loss": [2.5]}
            )
            assert appended.status_code == 200
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    assert server.returncode == -signal.SIGKILL

    server = _start(database, jax_cache_dir, port, log)
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            for run in runs:
                again = http.get(f"/v1/runs/{run['id']}")
                assert again.status_code == 200
                assert again.json()["points"] == run["points"]
            assert http.get(f"/v1/fits/{fit['id']}").json() == fit
            last = http.get(f"/v1/runs/{extra['id']}").json()
            assert last["points"]["step"] == [1, 7] and last["version"] == 2
            listed = http.get("/v1/runs").json()
            assert listed["total"] == 4
            prediction = http.post(
                "/v1/predictions",
                json={"fit_id": fit["id"], "schedule": mpl.specs()["cosine_24000"]},
            )
            assert prediction.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
