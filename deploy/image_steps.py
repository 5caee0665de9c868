"""The Docker image's steps without Docker, for machines where no image can be built (no
registry reachable for ``FROM python:3.11-slim``): read the ``Dockerfile`` and do what it says.

``python deploy/image_steps.py [--python /usr/bin/python3.11] [--keep]``, as root (for the
image's non-root user) or not:

1. its ``ENV``, with ``/data`` (the image's volume) mapped to a fresh folder;
2. its ``COPY``s into a fresh ``WORKDIR``, and its ``RUN pip install ...`` there, with the pip
   of a fresh virtualenv made by ``--python`` (the image's interpreter is ``/usr/local``'s);
3. as its ``USER`` (uid 10001 through ``setpriv`` when run as root; the current user
   otherwise), ``losscast keys create`` (the image listens on 0.0.0.0: it needs a key), then its
   ``CMD`` (``PORT`` set to a free port, as ``docker run -e PORT=...`` would);
4. its ``HEALTHCHECK`` command every ``--interval`` until it passes or the ``--start-period``
   and ``--retries`` are spent, then one call with the key and one without (200 and 401).

Exit status 0 when the health check passed and the key is required; each step is printed with
its time. The ``useradd`` step is not run (``setpriv`` takes the uid without an account).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
IMAGE_UID = 10001


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def _exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else ["sh", "-c", arguments]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _step(message: str, began: float) -> None:
    print(f"[{time.monotonic() - began:6.1f} s] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="/usr/bin/python3.11", help="the venv's interpreter")
    parser.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = parser.parse_args()
    began = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="losscast-image-"))
    top.chmod(0o755)
    data = top / "data"
    data.mkdir()
    env = {"PATH": f"{top / 'venv' / 'bin'}:/usr/bin:/bin", "HOME": str(data)}
    workdir, user, healthcheck, command = None, None, None, None
    as_root = os.geteuid() == 0
    server = None
    try:
        for word, arguments in instructions(ROOT / "Dockerfile"):
            if word == "FROM":
                subprocess.run([args.python, "-m", "venv", str(top / "venv")], check=True)
                _step(f"FROM {arguments}: a virtualenv of {args.python}", began)
            elif word == "ENV":
                for pair in shlex.split(arguments):
                    name, _, value = pair.partition("=")
                    env[name] = re.sub(r"(?<!\w)/data(?=/|$)", str(data), value)
                _step(f"ENV {sorted(k for k in env if k not in ('PATH', 'HOME'))}", began)
            elif word == "WORKDIR":
                workdir = top / arguments.lstrip("/")
                workdir.mkdir(parents=True)
            elif word == "COPY":
                *sources, target = shlex.split(arguments)
                destination = (workdir / target).resolve()
                for pattern in sources:
                    for source in glob.glob(str(ROOT / pattern)):
                        source_path = Path(source)
                        if source_path.is_dir():  # COPY dir ./dir
                            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                            shutil.copytree(source_path, destination, ignore=ignore)
                        else:  # COPY files ./
                            destination.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(source_path, destination / source_path.name)
                _step(f"COPY {arguments}", began)
            elif word == "RUN" and "useradd" in arguments:
                _step("RUN useradd ...: not run (setpriv takes the uid)", began)
            elif word == "RUN":
                run_env = {**os.environ, **env}
                subprocess.run(["sh", "-c", arguments], cwd=workdir, env=run_env, check=True)
                _step(f"RUN {arguments}", began)
            elif word == "USER":
                user = arguments
            elif word == "HEALTHCHECK":
                options, _, check = arguments.partition("CMD ")
                healthcheck = {
                    key.lstrip("-"): value
                    for key, value in (o.split("=", 1) for o in shlex.split(options))
                }
                healthcheck["cmd"] = _exec_form(check.strip())
            elif word == "CMD":
                command = _exec_form(arguments)
        if as_root:
            subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(data)], check=True)
            prefix = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
        else:
            prefix = []
        env["PORT"] = str(_free_port())
        as_user = f"uid {IMAGE_UID} (USER {user})" if as_root else f"uid {os.geteuid()}"
        key = subprocess.run(
            [*prefix, "losscast", "keys", "create", "--name", "admin", "--scope", "admin"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        token = key.stdout.strip().split()[-1]
        _step(f"losscast keys create as {as_user}: {key.stderr.strip()[:60]}...", began)
        log = open(top / "server.log", "w")  # noqa: SIM115 (the server's lifetime)
        server = subprocess.Popen(
            [*prefix, *command], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _step(f"CMD {command} as {as_user}, PORT={env['PORT']}", began)
        interval = float(healthcheck["interval"].rstrip("s"))
        start_period = float(healthcheck["start-period"].rstrip("s"))
        deadline = time.monotonic() + start_period + interval * int(healthcheck["retries"])
        while True:
            time.sleep(min(interval, 2.0))  # polled faster than the image does, same command
            check = subprocess.run(
                [*prefix, *healthcheck["cmd"]], cwd=workdir, env=env, capture_output=True
            )
            if check.returncode == 0:
                _step(f"HEALTHCHECK {healthcheck['cmd'][:2]}... passed", began)
                break
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                print((top / "server.log").read_text()[-3000:], file=sys.stderr)
                _step("HEALTHCHECK never passed", began)
                return 1
        base = f"http://127.0.0.1:{env['PORT']}"
        with_key = httpx.get(f"{base}/v1/runs", headers={"Authorization": f"Bearer {token}"})
        without = httpx.get(f"{base}/v1/runs")
        codes = (with_key.status_code, without.status_code)
        _step(f"GET /v1/runs with the key: {codes[0]}; without: {codes[1]}", began)
        return 0 if codes == (200, 401) else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
