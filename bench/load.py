"""Load benchmark of the HTTP service: a real uvicorn process on loopback, a real load generator.

Scenarios (the three sparse 25M MPL runs posted first, lr_annealing fitted once):

  (a) POST /v1/predictions, one 24,000-step cosine schedule at 300 points, 1 client
  (b) the same, 8 concurrent clients
  (c) POST /v1/fits of the three sparse runs, 1 client

Prints p50/p99 latency and throughput for each, and the JIT compilation counts (GET
/v1/status) before and after the load: after the start-up warm-up no request should compile.
The load generator is wrk (Debian package ``wrk``) when it is on PATH, else an asyncio + httpx
client (same scenarios; its own overhead is in the figures). Run: ``make bench-http`` or
``python -m bench.load [--duration 15] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import httpx  # noqa: E402

from bench.server import MPL, free_port, mpl_run_body, start_server  # noqa: E402

FITTING_RUNS = ("cosine_24000", "constant_24000", "wsdcon_9")
TARGET_P99_MS = 50.0

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("%(body)s"):read("*a")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, " ..
    "\\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d}\\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _start_server(folder: Path, port: int) -> tuple[subprocess.Popen, float]:
    log = (folder / "server.log").open("wb")
    cache = os.environ.get("LOSSCAST_JAX_CACHE_DIR", str(ROOT / "var" / "jax-cache"))
    try:  # with the warm-up: up to 15 minutes on 2 cores
        return start_server(
            folder, port, log, {"LOSSCAST_JAX_CACHE_DIR": cache}, ("--no-access-log",), 900
        )
    except RuntimeError as error:
        raise SystemExit(str(error)) from error


def _wrk(url: str, body: dict, clients: int, duration: float, folder: Path) -> dict:
    body_path = folder / f"body-{clients}-{abs(hash(url))}.json"
    body_path.write_text(json.dumps(body))
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT % {"body": body_path})
    command = [
        "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{int(duration)}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"],
        "p50_ms": raw["p50_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "throughput_rps": raw["requests"] / seconds,
    }


async def _httpx_load(url: str, body: dict, clients: int, duration: float) -> dict:
    latencies: list[float] = []
    errors = 0
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() - began < duration:
                start = time.perf_counter()
                response = await http.post(url, content=payload, headers=headers)
                latencies.append(time.perf_counter() - start)
                errors += response.status_code >= 400

        await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": errors,
        "p50_ms": 1e3 * statistics.median(ordered),
        "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": 1e3 * ordered[-1],
        "throughput_rps": len(ordered) / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario")
    parser.add_argument("--fit-duration", type=float, default=30.0, help="seconds for (c)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--only", default="abc", help="scenarios to run, e.g. 'a' or 'ab'")
    args = parser.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"

    with tempfile.TemporaryDirectory(prefix="losscast-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server, startup = _start_server(folder, port)
        try:
            with httpx.Client(base_url=base, timeout=120) as http:
                warm = http.get("/v1/status").json()
                run_ids = [
                    http.post("/v1/runs", json=mpl_run_body(n)).json()["id"] for n in FITTING_RUNS
                ]
                fit = http.post("/v1/fits", json={"run_ids": run_ids}).json()
                specs = json.loads((MPL / "schedules.json").read_text())
                prediction = {
                    "fit_id": fit["id"],
                    "schedule": specs["cosine_24000"],
                    "num_points": 300,
                }
                check = http.post("/v1/predictions", json=prediction)
                assert check.status_code == 200 and len(check.json()["steps"]) == 300, check.text
                before = http.get("/v1/status").json()

            scenarios = [
                (
                    "(a) predict 24k cosine, 300 points, 1 client",
                    "/v1/predictions",
                    prediction,
                    1,
                    args.duration,
                ),
                (
                    "(b) predict 24k cosine, 300 points, 8 clients",
                    "/v1/predictions",
                    prediction,
                    8,
                    args.duration,
                ),
                (
                    "(c) fit lr_annealing to 3 sparse 25M runs, 1 client",
                    "/v1/fits",
                    {"run_ids": run_ids},
                    1,
                    args.fit_duration,
                ),
            ]
            scenarios = [s for s in scenarios if s[0][1] in args.only]
            results = {}
            load_before = os.getloadavg()[0]
            for label, path, body, clients, duration in scenarios:
                if generator == "wrk":
                    results[label] = _wrk(base + path, body, clients, duration, folder)
                else:
                    results[label] = asyncio.run(_httpx_load(base + path, body, clients, duration))

            load_after = os.getloadavg()[0]
            with httpx.Client(base_url=base, timeout=30) as http:
                after = http.get("/v1/status").json()
        finally:
            server.terminate()
            server.wait(timeout=60)

    print(f"losscast HTTP benchmark: uvicorn (1 process) on loopback, load by {generator}")
    print(f"start-up to healthy (incl. JIT warm-up): {startup:.1f} s; {os.cpu_count()} CPUs")
    print(
        f"1-minute load average before/after the load: {load_before:.1f} / {load_after:.1f} "
        "(the server and wrk account for about 2; more means other processes competed)"
    )
    header = ("scenario", "requests", "errors", "p50 ms", "p99 ms", "req/s")
    print("{:52s} {:>8s} {:>6s} {:>8s} {:>8s} {:>8s}".format(*header))
    for label, r in results.items():
        print(
            f"{label:52s} {r['requests']:8d} {r['errors']:6d} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['throughput_rps']:8.1f}"
        )
    for when, status in (
        ("after the warm-up", warm),
        ("after posting 3 runs, 1 fit, 1 prediction", before),
        ("after the load", after),
    ):
        print(f"JIT compilations {when:42s} {status['compilations_total']:3d} ", end="")
        print(status["compilations"])
    a = results[scenarios[0][0]]
    new_compilations = after["compilations_total"] - warm["compilations_total"]
    verdict = a["p99_ms"] <= TARGET_P99_MS and new_compilations == 0
    print(
        f"target (a) p99 <= {TARGET_P99_MS:.0f} ms: {a['p99_ms']:.2f} ms; compilations caused by "
        f"requests after the warm-up: {new_compilations} -> {'PASS' if verdict else 'FAIL'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "generator": generator,
                    "startup_s": startup,
                    "load_average_before_after": [load_before, load_after],
                    "results": results,
                    "compilations_after_warmup": warm,
                    "compilations_before_load": before,
                    "compilations_after": after,
                },
                indent=2,
            )
        )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
