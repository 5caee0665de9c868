"""A real ``uvicorn app.main:app`` for the benchmarks that measure the service over HTTP
(``bench/load.py``, ``bench/soak.py``, ``bench/deploy.py``): a free port on 127.0.0.1, a
throw-away SQLite database in the caller's folder, started and waited for until ``/healthz``
answers 200; and the real runs they post (:func:`mpl_run_body`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
MPL = ROOT / "tests" / "data" / "mpl"  # the MPL curves the tests carry (with their NOTICE)


def mpl_run_body(name: str) -> dict:
    """``POST /v1/runs``'s body for the 25M MPL curve ``name``, with its schedule spec."""
    specs = json.loads((MPL / "schedules.json").read_text())
    rows = [line.split(",") for line in (MPL / "25M" / f"{name}.csv").read_text().split()[1:]]
    return {
        "name": f"25M/{name}",
        "metadata": {"model_size": "25M"},
        "schedule": specs[name],
        "points": {"step": [int(r[0]) for r in rows], "loss": [float(r[2]) for r in rows]},
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    folder: Path,
    port: int,
    log: IO,
    environment: Mapping[str, str] = (),
    arguments: tuple[str, ...] = (),
    timeout_s: float = 120.0,
) -> tuple[subprocess.Popen, float]:
    """The server on ``port`` with its database in ``folder`` and its output in ``log``, and the
    seconds it took to become healthy; ``environment`` adds to (or overrides) the variables it
    reads (``app/settings.py``), ``arguments`` to uvicorn's. A server that exits, or is not
    healthy after ``timeout_s``, raises :class:`RuntimeError` with the end of ``log``'s file."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "LOG_LEVEL": "WARNING",
        "LOSSCAST_SYNC_FIT_SECONDS": "3600",  # the benchmarks time fits on the request path
        **dict(environment),
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), *arguments]
    began = time.monotonic()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while time.monotonic() - began < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited at start ({server.returncode}): {_tail(log)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server, time.monotonic() - began
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server was not healthy after {timeout_s:.0f} s: {_tail(log)}")


def _tail(log: IO) -> str:
    log.flush()
    return Path(log.name).read_text(errors="replace")[-2000:]
