"""The ``losscast`` command: the installed console script gates a CI job on --max-final-loss
(exit 0/1, 2 for errors without a traceback), fit/predict/plan in-process on the shipped CSV
files, the same plan through a service (--url), and ``serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from fitting.plan import loss_for_budget, steps_to_target
from fitting.predict import FittedLaw
from losscast_cli import main as cli
from tests.curves import DATA, FITTING, schedule_specs

LOSSCAST = Path(sys.executable).parent / "losscast"
CSVS = [str(DATA / "400M" / f"{name}.csv") for name in FITTING]
SCHEDULES = str(DATA / "schedules.json")
COSINE_FAMILY = json.dumps(
    {k: v for k, v in schedule_specs()["cosine_24000"].items() if k != "total_steps"}
)


def run_losscast(*args: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed command, as a CI job would run it."""
    assert LOSSCAST.exists(), f"{LOSSCAST} is missing: run `pip install -e .` (make install)"
    env = {**os.environ, "LOSSCAST_JAX_CACHE_DIR": str(cache)}
    return subprocess.run(
        [str(LOSSCAST), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-jax-cache")


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory) -> Path:
    """``losscast fit`` in-process on the three 400M fitting CSVs, with the shipped specs."""
    path = tmp_path_factory.mktemp("cli") / "fit.json"
    status = cli.main(
        [
            "fit",
            *CSVS,
            "--schedules",
            SCHEDULES,
            "--out",
            str(path),
            "--tokens-per-step",
            "524288",
            "--n-params",
            "4e8",
        ]
    )
    assert status == 0
    return path


def fitted(path: Path) -> FittedLaw:
    stored = json.loads(path.read_text())
    return FittedLaw(stored["law"], stored["params"], stored["warmup"])


def test_fit_command_writes_the_fit_and_prints_a_table(fit_file, capsys):
    stored = json.loads(fit_file.read_text())
    assert stored["law"] == "lr_annealing" and stored["converged"]
    assert stored["run_ids"] == list(FITTING) and stored["tokens_per_step"] == 524288
    assert all(m["pred_e"] < 0.003 for m in stored["metrics"].values())
    status = cli.main(
        [
            "predict",
            "--fit",
            str(fit_file),
            "--schedule",
            json.dumps(schedule_specs()["cosine_72000"]),
            "--num-points",
            "20",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0 and "final loss" in printed and "71999" in printed


def test_installed_losscast_plan_exits_1_above_max_final_loss_and_0_below(fit_file, jax_cache):
    predicted = loss_for_budget(fitted(fit_file), json.loads(COSINE_FAMILY), total_steps=24000)
    args = [
        "plan",
        "budget",
        "--fit",
        str(fit_file),
        "--schedule",
        COSINE_FAMILY,
        "--total-steps",
        "24000",
        "--json",
    ]

    within = run_losscast(
        *args, "--max-final-loss", f"{predicted.final_loss + 0.01}", cache=jax_cache
    )
    assert within.returncode == 0, within.stderr
    out = json.loads(within.stdout)
    assert out["planned"]["final_loss"] == pytest.approx(predicted.final_loss, abs=1e-12)
    assert out["planned"]["cost"]["tokens"] == 24000 * 524288  # from the fit file

    above = run_losscast(
        *args, "--max-final-loss", f"{predicted.final_loss - 0.01}", cache=jax_cache
    )
    assert above.returncode == 1, above.stderr
    assert "is above --max-final-loss" in above.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "budget", "--total-steps", "10"], "required: --schedule"),
        (
            ["plan", "budget", "--fit", "missing.json", "--schedule", "{}", "--total-steps", "10"],
            "cannot read missing.json",
        ),
        (["plan", "steps", "--schedule", "{not json", "--target-loss", "2"], "not valid JSON"),
        (["plan", "optimise", "--schedule", "{}"], "exactly one of --fit"),
        (["forecast", "job.csv", "--level", "1.5"], "a number in (0, 1) or 'none', got '1.5'"),
    ],
)
def test_installed_losscast_reports_usage_errors_with_exit_2_and_no_traceback(
    args, message, jax_cache
):
    result = run_losscast(*args, cache=jax_cache)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_numbers_are_exit_2_with_the_libraries_message(fit_file, capsys):
    status = cli.main(
        [
            "plan",
            "budget",
            "--fit",
            str(fit_file),
            "--total-steps",
            "100",
            "--schedule",
            '{"type": "cosine", "peak_lr": -1}',
        ]
    )
    assert status == 2
    assert "requires peak_lr > 0, got peak_lr=-1.0" in capsys.readouterr().err


def test_plan_through_a_service_matches_the_plan_in_process(
    fit_file, tmp_path, monkeypatch, capsys
):
    """--url posts the runs, fits and plans over HTTP (the app in-process, via its test client);
    the answer is the in-process one."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cli.db'}", warmup=False, jax_cache_dir=""
    )
    with TestClient(create_app(settings)) as client:

        class InProcessService(cli.Service):
            def __init__(self, url, timeout):
                self.httpx, self.client, self.url = httpx, client, url

        monkeypatch.setattr(cli, "Service", InProcessService)
        target = "2.7"
        status = cli.main(
            [
                "plan",
                "steps",
                "--url",
                "http://testserver",
                "--runs",
                *CSVS,
                "--schedules",
                SCHEDULES,
                "--schedule",
                COSINE_FAMILY,
                "--target-loss",
                target,
                "--tokens-per-step",
                "524288",
                "--json",
            ]
        )
        assert status == 0
        out = json.loads(capsys.readouterr().out)
    assert out["fit_id"].startswith("fit_")
    expected = steps_to_target(fitted(fit_file), json.loads(COSINE_FAMILY), float(target))
    assert out["planned"]["total_steps"] == expected.total_steps
    assert out["planned"]["cost"]["tokens"] == expected.total_steps * 524288


def test_installed_losscast_serve_answers_health_checks(tmp_path, jax_cache):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LOSSCAST_JAX_CACHE_DIR": str(jax_cache)}
    server = subprocess.Popen(
        [
            str(LOSSCAST),
            "serve",
            "--port",
            str(port),
            "--no-warmup",
            "--log-level",
            "warning",
            "--database-url",
            f"sqlite:///{tmp_path / 'serve.db'}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "losscast serve did not start in 60 s"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _in_process_service(client, monkeypatch):
    class InProcessService(cli.Service):
        def __init__(self, url, timeout):
            self.httpx, self.client, self.url = httpx, client, url

    monkeypatch.setattr(cli, "Service", InProcessService)


def test_fit_in_process_and_over_http_give_the_same_parameters_and_bands(
    fit_file, tmp_path, monkeypatch, capsys
):
    """One fit policy (app.policy): the CLI's in-process fit is the service's, bands and all."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    local = json.loads(fit_file.read_text())
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cli.db'}", warmup=False, jax_cache_dir=""
    )
    with TestClient(create_app(settings)) as client:
        _in_process_service(client, monkeypatch)
        status = cli.main(["fit", *CSVS, "--schedules", SCHEDULES, "--url", "x", "--json"])
        assert status == 0
        remote = json.loads(capsys.readouterr().out)
    assert remote["id"].startswith("fit_") and local["id"] is None
    assert remote["params"] == pytest.approx(local["params"], rel=1e-9)
    numbers = ("noise", "model_error", "autocorrelation")
    assert [remote["uncertainty"][k] for k in numbers] == pytest.approx(
        [local["uncertainty"][k] for k in numbers], rel=1e-9
    )
    assert remote["uncertainty"]["folds"] == local["uncertainty"]["folds"] == 3
    np.testing.assert_allclose(
        remote["result"]["uncertainty"]["covariance"],
        local["result"]["uncertainty"]["covariance"],
        rtol=1e-6,
        atol=1e-15,
    )


def test_forecast_command_prints_the_band_and_what_rests_on_the_prior(tmp_path, capsys):
    """A WSD job cut in its stable phase, as a CSV of what it logged so far."""
    full = (DATA / "400M" / "wsd_20000_24000.csv").read_text().splitlines()
    logged = [full[0]] + [row for row in full[1:] if int(row.split(",")[0]) < 12000]
    job = tmp_path / "wsd_job.csv"
    job.write_text("\n".join(logged) + "\n")
    spec = json.dumps(schedule_specs()["wsd_20000_24000"])
    status = cli.main(["forecast", str(job), "--schedule", spec, "--law", "lr_annealing"])
    assert status == 0
    out = capsys.readouterr().out
    assert "final loss at step 23999" in out and "90% band" in out
    assert "no LR decay observed yet" in out


def test_a_continual_law_in_process_is_exit_2_before_any_fit(capsys):
    # a CSV is a fresh run here (no parent, no domain): cpt fits runs that continue stored runs
    spec = json.dumps(schedule_specs()["wsd_20000_24000"])
    csv = str(DATA / "400M" / "wsd_20000_24000.csv")
    assert cli.main(["forecast", csv, "--schedule", spec, "--law", "cpt"]) == 2
    assert "law 'cpt' fits runs that continue stored runs" in capsys.readouterr().err
    assert cli.main(["fit", csv, "--schedules", SCHEDULES, "--law", "cpt"]) == 2
    assert "(--url) with continues and domain" in capsys.readouterr().err
