"""A shared deployment under load and faults: 2 API replicas (uvicorn processes) and 2
``losscast worker`` processes on one PostgreSQL database, on loopback, with API keys on.

``python -m bench.deploy --database-url postgresql+psycopg://... [--duration 60]``

Load (asyncio + httpx, each request to the replicas in turn, the other one when a replica does
not answer): 8 clients alternating ``POST /v1/predictions`` and ``GET /v1/fits/{id}/curve``;
4 live jobs each appending a point every 0.5 s to a run of its own; a fit job
(``Prefer: respond-async``) every 2 s. A third of the way in, replica 0 and worker 0 are killed
with SIGKILL; they are started again ten seconds later.

Reported: requests, throughput and p50/p99 per kind, 5xx answers and requests that got no
answer (only those in flight on the killed replica may fail). Checked afterwards: every
acknowledged append is in its run exactly once, every fit job reached ``done``, and each done
job's fit is stored once (no fit without a job, none twice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

from app.auth import create_key
from app.storage import Store
from bench.server import free_port, mpl_run_body, start_server

FITTING_RUNS = ("cosine_24000", "constant_24000", "wsdcon_9")
CURVE = "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5"


class Replicas:
    """The API processes; ``call`` sends to the next live one, then to the other on failure."""

    def __init__(self, folder: Path, url: str, count: int):
        self.folder, self.url = folder, url
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.turn = 0

    def start(self, index: int) -> float:
        log = (self.folder / f"api-{index}.log").open("ab")
        environment = {
            "DATABASE_URL": self.url,
            "LOSSCAST_WARMUP": "0",
            "LOSSCAST_REFIT": "0",
            "LOSSCAST_LOCAL_WORKER": "0",
            "LOSSCAST_JAX_CACHE_DIR": str(self.folder / "jax"),
        }
        process, took = start_server(self.folder, self.ports[index], log, environment)
        self.processes[index] = process
        return took

    def kill(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait()

    def base(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"


class Recorder:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.unanswered: list[tuple] = []  # kind, replica, when, error

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.latency[kind].append(seconds)
        self.statuses[kind][status] += 1


async def _call(client, replicas, recorder, kind, method, path, began, **kwargs):
    """One request, to the replicas in turn; a replica that gives no answer is recorded and
    the request sent to the other (what a load balancer does)."""
    first = replicas.turn = (replicas.turn + 1) % len(replicas.ports)
    for attempt in range(len(replicas.ports)):
        index = (first + attempt) % len(replicas.ports)
        started = time.perf_counter()
        try:
            response = await client.request(method, replicas.base(index) + path, **kwargs)
        except httpx.TransportError as error:  # ConnectError: refused (down); others: in flight
            when = round(time.monotonic() - began, 1)
            recorder.unanswered.append((kind, index, when, type(error).__name__))
            continue
        recorder.add(kind, response.status_code, time.perf_counter() - started)
        return response
    return None


async def _load(replicas, recorder, token, fit_id, runs, live_runs, duration, events):
    headers = {"Authorization": f"Bearer {token}"}
    prediction = {"fit_id": fit_id, "schedule": mpl_run_body("cosine_24000")["schedule"]}
    acknowledged: dict[str, list[int]] = {run_id: [] for run_id in live_runs}
    jobs: list[str] = []
    began = time.monotonic()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:

        async def reader(i: int) -> None:
            while time.monotonic() - began < duration:
                if i % 2 == 0:
                    await _call(
                        client,
                        replicas,
                        recorder,
                        "prediction",
                        "POST",
                        "/v1/predictions",
                        began,
                        json=prediction,
                    )
                else:
                    path = f"/v1/fits/{fit_id}/curve"
                    params = {"schedule": CURVE}
                    await _call(
                        client, replicas, recorder, "curve", "GET", path, began, params=params
                    )
                i += 1

        async def live(run_id: str, first_step: int) -> None:
            step = first_step
            while time.monotonic() - began < duration:
                step += 10
                loss = 3.0 + 100.0 / step
                response = await _call(
                    client,
                    replicas,
                    recorder,
                    "append",
                    "POST",
                    f"/v1/runs/{run_id}/points",
                    began,
                    json={"step": [step], "loss": [loss]},
                )
                if response is not None and response.status_code == 200:
                    acknowledged[run_id].append(step)
                await asyncio.sleep(0.5)

        async def fitter() -> None:
            while time.monotonic() - began < duration:
                response = await _call(
                    client,
                    replicas,
                    recorder,
                    "fit_job",
                    "POST",
                    "/v1/fits",
                    began,
                    json={"run_ids": runs, "law": "lr_annealing"},
                    headers={**headers, "Prefer": "respond-async"},
                )
                if response is not None and response.status_code == 202:
                    jobs.append(response.json()["id"])
                await asyncio.sleep(2.0)

        async def faults() -> None:
            for at, action in events:
                await asyncio.sleep(max(0.0, at - (time.monotonic() - began)))
                await asyncio.to_thread(action)

        await asyncio.gather(
            *(reader(i) for i in range(8)),
            *(live(run_id, first) for run_id, first in live_runs.items()),
            fitter(),
            faults(),
        )
    return acknowledged, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("LOSSCAST_BENCH_POSTGRES_URL"))
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url postgresql+psycopg://... (or LOSSCAST_BENCH_POSTGRES_URL)")
    folder = Path(tempfile.mkdtemp(prefix="losscast-bench-deploy-"))
    store = Store(args.database_url)
    store.drop_schema()
    store.create_schema()
    _, token = create_key(store, "bench", ["admin"])
    replicas = Replicas(folder, args.database_url, 2)
    for index in range(2):
        print(f"replica {index} healthy in {replicas.start(index):.1f} s")
    worker_command = [sys.executable, "-m", "losscast_cli", "worker", "--lease", "5"]
    worker_env = {
        **os.environ,
        "LOSSCAST_JAX_CACHE_DIR": str(folder / "jax"),
        "LOG_LEVEL": "WARNING",
    }
    worker_env["DATABASE_URL"] = args.database_url
    workers: list[subprocess.Popen] = []

    def start_worker(index: int) -> None:
        log = (folder / f"worker-{index}.log").open("ab")
        process = subprocess.Popen(
            [*worker_command, "--name", f"worker-{index}"],
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if index < len(workers):
            workers[index] = process
        else:
            workers.append(process)

    for index in range(2):
        start_worker(index)
    headers = {"Authorization": f"Bearer {token}"}
    base = replicas.base(0)
    runs = [
        httpx.post(f"{base}/v1/runs", json=mpl_run_body(name), headers=headers, timeout=60).json()[
            "id"
        ]
        for name in FITTING_RUNS
    ]
    fit = httpx.post(f"{base}/v1/fits", json={"run_ids": runs}, headers=headers, timeout=600)
    fit_id = fit.json()["id"]
    live_runs = {}
    for i in range(4):
        body = mpl_run_body("cosine_24000")
        body["name"] = f"live-{i}"
        body["points"] = {key: values[:20] for key, values in body["points"].items()}
        created = httpx.post(f"{base}/v1/runs", json=body, headers=headers, timeout=60).json()
        live_runs[created["id"]] = created["last_step"]
    for index in range(2):  # each replica compiles its prediction shapes before the clock starts
        for _ in range(2):
            body = {"fit_id": fit_id, "schedule": mpl_run_body("cosine_24000")["schedule"]}
            httpx.post(
                f"{replicas.base(index)}/v1/predictions", headers=headers, timeout=600, json=body
            )
            httpx.get(
                f"{replicas.base(index)}/v1/fits/{fit_id}/curve",
                headers=headers,
                params={"schedule": CURVE},
                timeout=600,
            )
    seed_fits = store.list_fits()[1]
    kill_at, restart_at = args.duration / 3, args.duration / 3 + 10

    def kill() -> None:
        replicas.kill(0)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        print(f"t={kill_at:.0f} s: SIGKILL replica 0 and worker 0")

    def restart() -> None:
        start_worker(0)
        threading.Thread(target=replicas.start, args=(0,), daemon=True).start()
        print(f"t={restart_at:.0f} s: restarting replica 0 and worker 0")

    recorder = Recorder()
    began = time.monotonic()
    acknowledged, jobs = asyncio.run(
        _load(
            replicas,
            recorder,
            token,
            fit_id,
            runs,
            live_runs,
            args.duration,
            [(kill_at, kill), (restart_at, restart)],
        )
    )
    elapsed = time.monotonic() - began
    print(f"\n{args.duration:.0f} s of load ({elapsed:.1f} s with the last answers):")
    print(f"{'kind':<12}{'requests':>9}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for kind in ("prediction", "curve", "append", "fit_job"):
        times = sorted(recorder.latency[kind])
        if not times:
            continue
        p50 = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))] * 1000
        statuses = dict(sorted(recorder.statuses[kind].items()))
        rate = len(times) / elapsed
        print(f"{kind:<12}{len(times):>9}{rate:>8.1f}{p50:>9.0f}{p99:>9.0f}  {statuses}")
    errors = sum(n for kind in recorder.statuses.values() for s, n in kind.items() if s >= 500)
    in_flight = [item for item in recorder.unanswered if item[3] != "ConnectError"]
    refused = len(recorder.unanswered) - len(in_flight)
    print(
        f"5xx answers: {errors}; sent to a replica that was down (refused, sent to the other): "
        f"{refused}; in flight on the killed replica (no answer, sent again): {in_flight}"
    )
    # Afterwards: every acknowledged append once, every job done, each fit once.
    deadline = time.monotonic() + 900
    while True:
        states = [store.get_job(job_id) for job_id in jobs]
        pending = [job for job in states if job.status in ("queued", "running")]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    done = [job for job in states if job.status == "done"]
    print(
        f"fit jobs: {len(jobs)} submitted, {len(done)} done, "
        f"{sum(j.status == 'failed' for j in states)} failed, {len(pending)} not finished; "
        f"retried after a worker was killed: {sum(j.attempts > 1 for j in states)}"
    )
    fit_ids = [job.fit_id for job in done]
    total_fits = store.list_fits()[1]
    verdict = "ok" if total_fits == seed_fits + len(done) == seed_fits + len(set(fit_ids)) else "NO"
    print(
        f"fits stored: {total_fits} = {seed_fits} before the load + {len(set(fit_ids))} "
        f"distinct fits of done jobs: {verdict}"
    )
    missing = duplicated = 0
    for run_id, steps in acknowledged.items():
        stored = store.get_run(run_id).steps.tolist()
        missing += len(set(steps) - set(stored))
        duplicated += len(stored) - len(set(stored))
    appended = sum(len(steps) for steps in acknowledged.values())
    print(f"acknowledged appends: {appended}, missing {missing}, duplicated {duplicated}")
    for process in [*workers, *replicas.processes]:
        if process is not None and process.poll() is None:
            process.terminate()
    for process in [*workers, *replicas.processes]:
        if process is not None:
            process.wait(60)
    store.close()
    print(f"logs in {folder}")


if __name__ == "__main__":
    main()
