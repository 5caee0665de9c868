"""Fit jobs on worker processes: do two workers fit two dense curves in the time of one?

``python -m bench.jobs [--database-url URL] [--workers 2]``: the dense, noisy 36k-step cosine
curve of ``bench.core`` (33,840 points, losses from a fit of the 25M MPL runs), stored once;
``--workers`` ``losscast worker`` processes on the database; every worker warmed up by a job of
its own (each process compiles, or loads from the shared JAX cache, its kernels); then one job
alone, then one job per worker submitted together, timed from submission until every job is
``done``, ``--repeats`` times (with the CPU seconds the workers and the rest of the machine used
meanwhile). Prints both times and their ratio each time, then the medians
(the issue's target: under 1.3x on 2 cores, 2 workers), with the load average before and after.
The fits run in separate processes, so the in-process rule of one fit at a time
(``app.deps.Compute``) does not serialise them. Each worker limits its fits' threads
(``LOSSCAST_WORKER_THREADS``, default 1, inherited from this process's environment; 0 for the
libraries' defaults).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.storage import NewRun, Store
from bench.core import LAW, dense_curve, load_run
from fitting.fit import fit_law


def _submit(store: Store, run_id: str, count: int) -> list[str]:
    body = {"run_ids": [run_id], "law": LAW.name}
    return [store.enqueue_job("fit", body).id for _ in range(count)]


def _wait(store: Store, job_ids: list[str], timeout: float = 1800) -> float:
    started = time.perf_counter()
    while True:
        jobs = [store.get_job(job_id) for job_id in job_ids]
        failed = [job for job in jobs if job.status == "failed"]
        if failed:
            raise SystemExit(f"job failed: {failed[0].error}")
        if all(job.status == "done" for job in jobs):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"jobs not done after {timeout} s: {[j.status for j in jobs]}")
        time.sleep(0.1)


def _cpu(pids: list[int]) -> tuple[float, float] | None:
    """CPU seconds the processes ``pids`` have used, and the rest of the machine's busy CPU
    seconds (Linux /proc; None elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        mine = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            mine += int(fields[11]) + int(fields[12])  # utime, stime
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        busy = sum(int(value) for i, value in enumerate(cpu) if i not in (3, 4))  # not idle
    except (OSError, IndexError, ValueError):
        return None
    return mine / tick, (busy - mine) / tick


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="losscast-bench-jobs-")
    url = args.database_url or f"sqlite:///{folder}/jobs.db"
    store = Store(url)
    store.drop_schema()
    store.create_schema()
    params = fit_law(LAW, [load_run("25M", name) for name in ("cosine_24000", "constant_24000")])
    curve = dense_curve(params.params)
    run = store.create_run(
        NewRun(
            name=curve.name,
            metadata={"source": "bench.core.dense_curve"},
            lr_source="lr_per_step",
            schedule=None,
            lr_per_step=curve.lr,
            steps=curve.steps,
            loss=curve.loss,
            point_lr=None,
            total_steps=int(curve.lr.size),
        )
    )
    print(
        f"dense run: {curve.steps.size} points, {curve.lr.size} steps; law {LAW.name}; "
        f"{store.backend}"
    )
    env = {
        **os.environ,
        "LOSSCAST_JAX_CACHE_DIR": os.environ.get("LOSSCAST_JAX_CACHE_DIR", f"{folder}/jax"),
        "LOSSCAST_JOB_POLL": "0.1",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "losscast_cli", "worker", "--database-url", url]
    workers = [
        subprocess.Popen([*command, "--name", f"bench-{i}"], env=env) for i in range(args.workers)
    ]
    threads = os.environ.get("LOSSCAST_WORKER_THREADS", "1 (default)")
    print(f"{args.workers} workers, {threads} thread(s) each; {_load()}")
    pids = [worker.pid for worker in workers]
    try:
        warm, warmed = 0.0, set()
        while len(warmed) < args.workers:  # each worker compiles (or loads) its kernels once
            warm_ids = _submit(store, run.id, args.workers)
            warm += _wait(store, warm_ids)
            warmed |= {store.get_job(job_id).worker for job_id in warm_ids}
        print(f"warm-up (every worker fitted a job, compiling): {warm:.1f} s")
        ones, togethers = [], []
        for repeat in range(args.repeats):
            before = _cpu(pids)
            one = _wait(store, _submit(store, run.id, 1))
            middle = _cpu(pids)
            together_ids = _submit(store, run.id, args.workers)
            together = _wait(store, together_ids)
            after = _cpu(pids)
            runners = {store.get_job(job_id).worker for job_id in together_ids}
            ones.append(one)
            togethers.append(together)
            print(
                f"repeat {repeat + 1}: 1 job alone {one:.1f} s; {args.workers} jobs together "
                f"{together:.1f} s on {len(runners)} workers = {together / one:.2f}x; {_load()}"
            )
            if before is not None:
                alone_cpu, together_cpu = middle[0] - before[0], after[0] - middle[0]
                others = (middle[1] - before[1], after[1] - middle[1])
                print(
                    f"  CPU s of the workers: alone {alone_cpu:.1f}, together {together_cpu:.1f} "
                    f"({args.workers} jobs); of the machine's other processes meanwhile: "
                    f"{others[0]:.1f} and {others[1]:.1f}"
                )
        ratios = sorted(t / o for t, o in zip(togethers, ones, strict=True))
        print(
            f"median: 1 job {statistics.median(ones):.1f} s, {args.workers} together "
            f"{statistics.median(togethers):.1f} s, ratio {statistics.median(ratios):.2f}x "
            f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; target < 1.3x); {_load()} "
            f"on {os.cpu_count()} CPUs"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
        store.close()


if __name__ == "__main__":
    main()
