"""Soak test of one server process: many fits of runs of many lengths must not exhaust it.

A server that fits runs of ever new lengths compiles ever new shapes, and every compiled
executable stays loaded with hundreds of memory mappings of its own: a fresh server died after
40-80 such fits, at ``vm.max_map_count``, with RAM to spare (see :mod:`fitting.compiled`). This
starts ONE real ``uvicorn app.main:app`` on 127.0.0.1 (a free port, a throw-away SQLite
database, no warm-up, no persistent JAX cache) and, over HTTP only:

- posts runs of ``--lengths`` distinct lengths, log-spaced from 100 to 200,000 steps, in
  ``--passes`` identical passes of increasing length (the same runs, shapes and laws each time,
  fresh noise): a bounded process fills its caches during the first passes and then stays level,
  so what the last pass holds beyond the one before it is a leak, not a working set that has
  not yet filled (see the verdict below). The runs are alternately sparse (a point
  every ~100 steps, at least 20) and dense (every step, at most :data:`DENSE_MAX_POINTS` points,
  evenly spaced beyond), on cosine, WSD and constant schedule specs in rotation;
- fits each (``POST /v1/fits``, one run, with its cross-validation and prediction intervals)
  with ``lr_annealing``, ``multi_power`` and ``auto`` in rotation, then asks for its forecast
  (``GET /v1/runs/{id}/forecast``);
- every :data:`SAMPLE_EVERY` fits records the server's resident memory (``VmRSS``), the lines of
  its ``/proc/<pid>/maps`` and the compilation counts (``GET /v1/status``).

``multi_power`` fits cost most (0.1-0.4 s per objective evaluation on thousands of points, tens
of seconds of compilation per shape on 2 cores), so to keep the soak to ~20 minutes there:
``auto`` is fitted with ``lr_annealing`` instead on runs of more than :data:`SLOW_LAW_MAX_STEPS`
steps, and both ``multi_power`` and ``auto`` on runs of more than :data:`SLOW_LAW_MAX_POINTS`
points (dense ones past 2,048 steps). Every length bucket still sees ``multi_power``.

The losses are ``lr_annealing``'s with known parameters (:data:`TRUE_PARAMS`) and 0.2%
multiplicative noise: this tests what the process holds, not the accuracy of the fits.

It fails (exit status 1) when the mappings or the RSS still grow from pass to pass (the last
pass's peak tops the previous pass's peak by more than :data:`LEVEL_FRACTION` of it), when the
mappings pass half of ``vm.max_map_count``, or when a request failed. Why passes, not a trend
over one long sequence: each kernel keeps up to 8 compiled shapes (:mod:`fitting.compiled`), and
a sequence of ever new lengths fills those tables over its first hundred-odd fits, so a rise
over it is expected; a rise between two identical passes is not. It stops at ``--max-seconds``
(default 7,200) and judges what it measured by then. Run: ``make soak`` or ``python -m
bench.soak [--lengths 24 --passes 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.server import free_port, start_server
from fitting.fit import predict_losses
from fitting.laws import LAWS
from fitting.schedules import learning_rates

SHORTEST, LONGEST = 100, 200_000
SPARSE_EVERY = 100  # a sparse run logs a point every this many steps
SPARSE_MIN_POINTS = 20
DENSE_MAX_POINTS = 8192
LAW_ROTATION = ("lr_annealing", "multi_power", "auto")
SLOW_LAW_MAX_STEPS = 50_000  # auto is fitted as lr_annealing on longer runs
SLOW_LAW_MAX_POINTS = 2048  # multi_power and auto are fitted as lr_annealing on denser runs
SAMPLE_EVERY = 10
LEVEL_FRACTION = 0.05  # "levelled off": the last pass's peak tops the one before by less
MAP_COUNT_SHARE = 0.5  # fail past this share of vm.max_map_count
TRUE_PARAMS = {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 1.0, "decay": 0.998}
NOISE = 0.002
REQUEST_TIMEOUT_S = 900.0


def lengths(count: int) -> list[int]:
    """``count`` distinct run lengths, log-spaced from SHORTEST to LONGEST steps, increasing.

    >>> lengths(6)
    [100, 457, 2091, 9564, 43734, 200000]
    """
    values = np.unique(np.round(np.geomspace(SHORTEST, LONGEST, count)).astype(int))
    if values.size != count:
        raise ValueError(f"cannot make {count} distinct lengths in [{SHORTEST}, {LONGEST}]")
    return values.tolist()


def schedule_spec(index: int, total: int) -> dict:
    """Cosine, WSD and constant specs in rotation (warmup of 5% of the run)."""
    warmup = max(1, total // 20)
    kind = ("cosine", "wsd", "constant")[index % 3]
    if kind == "cosine":
        return {
            "type": "cosine",
            "peak_lr": 3e-4,
            "total_steps": total,
            "num_warmup_steps": warmup,
            "min_lr": 3e-5,
        }
    if kind == "wsd":
        return {
            "type": "wsd",
            "peak_lr": 3e-4,
            "total_steps": total,
            "num_warmup_steps": warmup,
            "decay_fraction": 0.2,
            "min_lr": 3e-5,
        }
    return {"type": "constant", "peak_lr": 3e-4, "total_steps": total, "num_warmup_steps": warmup}


def logged_steps(total: int, dense: bool) -> np.ndarray:
    """Sparse: every SPARSE_EVERY steps (at least SPARSE_MIN_POINTS points); dense: every step,
    at most DENSE_MAX_POINTS points evenly spaced. Step 0 is never logged (no rate seen yet)."""
    if dense:
        count = min(total - 1, DENSE_MAX_POINTS)
    else:
        count = max(SPARSE_MIN_POINTS, (total - 1) // SPARSE_EVERY)
    return np.unique(np.round(np.linspace(1, total - 1, count)).astype(np.int64))


def law_for(index: int, total: int, points: int) -> str:
    law = LAW_ROTATION[index % len(LAW_ROTATION)]
    if law == "auto" and total > SLOW_LAW_MAX_STEPS:
        return "lr_annealing"
    if law != "lr_annealing" and points > SLOW_LAW_MAX_POINTS:
        return "lr_annealing"
    return law


def synthetic_run(index: int, total: int, rng: np.random.Generator) -> dict:
    """A run body for POST /v1/runs: lr_annealing's losses with TRUE_PARAMS and NOISE."""
    spec = schedule_spec(index, total)
    steps = logged_steps(total, dense=index % 2 == 1)
    clean = predict_losses(
        LAWS["lr_annealing"], TRUE_PARAMS, [learning_rates(spec)], [steps], "include"
    )[0]
    loss = clean * (1 + NOISE * rng.standard_normal(steps.size))
    return {
        "name": f"soak-{index:03d}-{total}",
        "schedule": spec,
        "points": {"step": steps.tolist(), "loss": [round(float(x), 7) for x in loss]},
    }


def process_sample(pid: int) -> dict:
    """The server's resident memory (MiB) and count of memory mappings now."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    with open(f"/proc/{pid}/maps") as maps:
        mappings = sum(1 for _ in maps)
    return {"rss_mib": rss_kib / 1024, "mappings": mappings}


def max_map_count() -> int:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65_530


def peaks_per_pass(values: list[float], passes: list[int]) -> dict[int, float]:
    """The highest of ``values`` taken in each pass (``passes[i]`` is the pass of ``values[i]``).

    >>> peaks_per_pass([10, 50, 100, 90], [0, 0, 1, 1])
    {0: 50, 1: 100}
    """
    peaks: dict[int, float] = {}
    for value, in_pass in zip(values, passes, strict=True):
        peaks[in_pass] = max(value, peaks.get(in_pass, value))
    return peaks


def still_growing(values: list[float], passes: list[int], fraction: float = LEVEL_FRACTION) -> bool:
    """Whether ``values`` (samples taken in pass ``passes[i]``) still grow from pass to pass: the
    last pass's highest sample tops the previous pass's by more than ``fraction`` of it.

    >>> still_growing([10, 50, 100, 90, 102, 98], [0, 0, 1, 1, 2, 2])
    False
    >>> still_growing([10, 50, 100, 200, 300, 400], [0, 0, 1, 1, 2, 2])
    True
    """
    peak = peaks_per_pass(values, passes)
    last = max(peak, default=0)
    if last < 1:
        return False
    return peak[last] - peak[last - 1] > fraction * peak[last - 1]


def soak(count: int, passes: int, max_seconds: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    limit = max_map_count()
    samples, failures, fitted = [], [], []
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="losscast-soak-") as directory,
        open(Path(directory) / "server.log", "w") as log,
    ):
        port = free_port()
        server, _ = start_server(
            Path(directory),
            port,
            log,
            {"LOSSCAST_WARMUP": "0", "LOSSCAST_JAX_CACHE_DIR": ""},
            ("--log-level", "warning"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:

                def sample(done: int, in_pass: int) -> None:
                    status = client.get("/v1/status").json()
                    row = {
                        "fits": done,
                        "pass": in_pass,
                        "seconds": round(time.monotonic() - began, 1),
                        **process_sample(server.pid),
                        "compilations_total": status["compilations_total"],
                        "compilations": status["compilations"],
                    }
                    samples.append(row)
                    print(_row(row, limit), flush=True)

                print(_header(), flush=True)
                sample(0, 0)
                runs = lengths(count)
                schedule = [(p, j, total) for p in range(passes) for j, total in enumerate(runs)]
                for index, (in_pass, j, total) in enumerate(schedule):
                    if time.monotonic() - began > max_seconds:
                        failures.append(f"stopped at --max-seconds after {index} fits")
                        break
                    if server.poll() is not None:
                        failures.append(f"the server died ({server.returncode}) at fit {index}")
                        break
                    body = synthetic_run(j, total, rng)  # the same run at j in every pass
                    body["name"] = f"{body['name']}-pass{in_pass}"
                    law = law_for(j, total, len(body["points"]["step"]))
                    t0 = time.monotonic()
                    outcome = _fit_and_forecast(client, body, law)
                    fitted.append(
                        {
                            "index": index,
                            "pass": in_pass,
                            "total_steps": total,
                            "points": len(body["points"]["step"]),
                            "law": law,
                            "seconds": round(time.monotonic() - t0, 2),
                            **outcome,
                        }
                    )
                    if outcome.get("error"):
                        failures.append(f"fit {index} ({total} steps, {law}): {outcome['error']}")
                    if (j + 1) % SAMPLE_EVERY == 0 or j + 1 == len(runs):
                        sample(index + 1, in_pass)
                if fitted and samples[-1]["fits"] != len(fitted) and server.poll() is None:
                    sample(len(fitted), fitted[-1]["pass"])
        except httpx.HTTPError as error:
            failures.append(f"HTTP error: {error!r} (server returncode {server.poll()})")
        finally:
            alive = server.poll() is None
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log_tail = (Path(directory) / "server.log").read_text()[-2000:]
    if not alive:
        failures.append("the server was not alive at the end")
    # A pass cut short by --max-seconds lacks its longest runs: judged on whole passes only.
    whole = len(fitted) // count
    verdict = judge([s for s in samples if s["pass"] < whole], limit)
    return {
        "lengths": count,
        "passes": passes,
        "fits_requested": count * passes,
        "fits_done": len(fitted),
        "max_map_count": limit,
        "samples": samples,
        "fits": fitted,
        "failures": failures,
        "verdict": verdict,
        # A soak stopped by --max-seconds is judged on what it measured by then.
        "passed": verdict["passed"] and all(f.startswith("stopped at") for f in failures),
        "server_log_tail": log_tail if failures else "",
    }


def _fit_and_forecast(client: httpx.Client, body: dict, law: str) -> dict:
    created = client.post("/v1/runs", json=body)
    if created.status_code != 201:
        return {"error": f"POST /v1/runs {created.status_code}: {created.text[:300]}"}
    run_id = created.json()["id"]
    fit = client.post("/v1/fits", json={"run_ids": [run_id], "law": law})
    if fit.status_code != 201:
        return {"error": f"POST /v1/fits {fit.status_code}: {fit.text[:300]}"}
    chosen = fit.json().get("law")
    forecast = client.get(f"/v1/runs/{run_id}/forecast")
    if forecast.status_code != 200:
        return {"error": f"GET forecast {forecast.status_code}: {forecast.text[:300]}"}
    return {"chosen": chosen, "pred_e": forecast.json()["metrics"].get("pred_e")}


def judge(samples: list[dict], limit: int) -> dict:
    """Levelled off (:func:`still_growing` false for mappings and RSS) and under
    MAP_COUNT_SHARE of ``limit``; with each pass's peaks, for the report."""
    mappings = [s["mappings"] for s in samples]
    rss = [s["rss_mib"] for s in samples]
    passes = [s["pass"] for s in samples]
    checks = {
        "two_passes": max(passes, default=0) >= 1,  # levelled needs a pass to compare with
        "mappings_levelled": not still_growing(mappings, passes),
        "rss_levelled": not still_growing(rss, passes),
        "mappings_under_limit": max(mappings, default=0) < MAP_COUNT_SHARE * limit,
    }
    rss_peaks = peaks_per_pass(rss, passes)
    peaks = {
        p: {"mappings": peak, "rss_mib": round(rss_peaks[p])}
        for p, peak in sorted(peaks_per_pass(mappings, passes).items())
    }
    return {
        **checks,
        "passed": all(checks.values()),
        "peak_mappings": max(mappings, default=0),
        "peaks_per_pass": peaks,
    }


def _header() -> str:
    return (
        f"{'pass':>4} {'fits':>5} {'seconds':>8} {'rss MiB':>8} {'maps':>7} {'% limit':>7}"
        f" {'compiles':>8}"
    )


def _row(row: dict, limit: int) -> str:
    return (
        f"{row['pass']:>4} {row['fits']:>5} {row['seconds']:>8.0f} {row['rss_mib']:>8.0f}"
        f" {row['mappings']:>7} {100 * row['mappings'] / limit:>6.1f}%"
        f" {row['compilations_total']:>8}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, default=24, help="distinct run lengths per pass")
    parser.add_argument("--passes", type=int, default=3, help="identical passes over them")
    parser.add_argument("--max-seconds", type=float, default=7200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the samples and the verdict here")
    args = parser.parse_args(argv)
    report = soak(args.lengths, args.passes, args.max_seconds, args.seed)
    if report["samples"]:
        print(f"\ncompilations per kernel at the end: {report['samples'][-1]['compilations']}")
    print(f"verdict: {report['verdict']}")
    for failure in report["failures"]:
        print(f"FAILURE: {failure}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
