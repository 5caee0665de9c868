"""``losscast.client`` against a real service: a uvicorn process on loopback (``bench/server.py``)
with its SQLite database, killed (SIGKILL) and restarted while a training loop logs.

The curve logged is the 25M model's ``cosine_24000`` run of Luo et al. 2025 (tests/data/mpl,
MIT), its loss interpolated to every step.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from bench.server import free_port, start_server
from losscast.client import Client, LosscastError, process_rank
from tests.curves import DATA, schedule_specs

COSINE = schedule_specs()["cosine_24000"]
SERVER_ENV = {"LOSSCAST_WARMUP": "0", "LOSSCAST_REFIT": "0", "LOSSCAST_JAX_CACHE_DIR": ""}


def _curve():
    from fitting.schedules import learning_rates

    lines = (DATA / "25M" / "cosine_24000.csv").read_text().split()
    rows = np.array([[float(c) for c in line.split(",")] for line in lines[1:]])
    steps = np.arange(24000)
    return np.interp(steps, rows[:, 0], rows[:, 2]), learning_rates(COSINE)


LOSS, LR = _curve()


class Service:
    """A real ``uvicorn app.main:app`` on one port, which a test can kill and start again on
    the same database."""

    def __init__(self, folder):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "server.log", "a")  # noqa: SIM115 -- closed in stop()
        self.process = None
        self.start()

    def start(self):
        self.process, _ = start_server(self.folder, self.port, self.log, SERVER_ENV)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = Service(tmp_path_factory.mktemp("client"))
    yield server
    server.stop()


def _points(url, run_id):
    response = httpx.get(f"{url}/v1/runs/{run_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["points"]


def test_log_never_waits_and_every_point_is_stored_once_through_two_restarts(service):
    """20,000 steps logged one by one (about 1 ms of "training" each) while the service is
    killed twice and restarted: log() p99 <= 1 ms, and after close() the run holds every step
    exactly once with the loss and lr logged."""
    client = Client(service.url)
    run = client.run("fault-test", schedule=COSINE, reopen=False, close_timeout=120)
    steps = 20_000
    reached = [0]
    outages = []

    def chaos():
        for at in (5_000, 12_000):
            while reached[0] < at:
                time.sleep(0.01)
            service.kill()
            began = time.monotonic()
            time.sleep(0.5)
            service.start()
            outages.append((at, reached[0], time.monotonic() - began))

    controller = threading.Thread(target=chaos)
    controller.start()
    durations = np.empty(steps)
    for step in range(steps):
        time.sleep(0.001)  # the training step
        began = time.perf_counter()
        run.log(step, LOSS[step], lr=LR[step])
        durations[step] = time.perf_counter() - began
        reached[0] = step
    controller.join(timeout=300)
    stats = run.close()
    p99 = float(np.percentile(durations, 99))
    print(
        f"log(): p50 {np.median(durations) * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us, "
        f"max {durations.max() * 1e3:.2f} ms; outages (killed at step, back at step, seconds): "
        f"{outages}; {stats}"
    )
    assert len(outages) == 2
    assert all(back > at for at, back, _ in outages), "the loop went on during each outage"
    assert p99 <= 1e-3
    assert stats["retries"] > 0, "the sender met the outages"
    assert (stats["sent"], stats["rejected"], stats["dropped"], stats["skipped"]) == (
        steps,
        0,
        0,
        0,
    )
    points = _points(service.url, run.id)
    assert points["step"] == list(range(steps))  # each step once, in order
    np.testing.assert_array_equal(points["loss"], LOSS[:steps])
    np.testing.assert_array_equal(points["lr"], LR[:steps])
    listed = httpx.get(f"{service.url}/v1/runs", params={"name": "fault-test"}).json()
    assert listed["total"] == 1, "the run was created once"


class AnswerLosingProxy:
    """A TCP relay to the service that loses the answer to the first ``POST /v1/runs``: the
    service creates the run, and the client's connection closes before the answer reaches it
    (a network cut, or the service killed between its commit and its reply)."""

    def __init__(self, port: int):
        import socket

        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lost = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket

        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            losing = threading.Event()
            threading.Thread(target=self._requests, args=(downstream, upstream, losing)).start()
            threading.Thread(target=self._answers, args=(upstream, downstream, losing)).start()

    def _requests(self, downstream, upstream, losing):
        try:
            while data := downstream.recv(65536):
                if data.startswith(b"POST /v1/runs HTTP") and not self.lost:
                    self.lost += 1
                    losing.set()
                upstream.sendall(data)
        except OSError:
            pass

    def _answers(self, upstream, downstream, losing):
        try:
            while data := upstream.recv(65536):
                if losing.is_set():
                    break  # the answer is read from the service and never delivered
                downstream.sendall(data)
        except OSError:
            pass
        for end in (downstream, upstream):
            end.close()

    def close(self):
        self.listener.close()


def test_a_lost_answer_to_the_runs_creation_does_not_create_it_twice(service):
    proxy = AnswerLosingProxy(service.port)
    try:
        client = Client(f"http://127.0.0.1:{proxy.port}")
        with client.run("lost-answer", schedule=COSINE, reopen=False, batch_size=500) as run:
            for step in range(3000):
                run.log(step, LOSS[step], lr=LR[step])
    finally:
        proxy.close()
    assert proxy.lost == 1 and run.retries >= 1
    listed = httpx.get(f"{service.url}/v1/runs", params={"name": "lost-answer"}).json()
    assert listed["total"] == 1, "created once: found again by the session id in its metadata"
    assert run.stats["sent"] == 3000, run.stats
    assert _points(service.url, run.id)["step"] == list(range(3000))


def test_reopen_continues_a_run_and_skips_steps_already_stored(service):
    client = Client(service.url)
    with client.run("resumed", schedule=COSINE, reopen=False) as first:
        for step in range(0, 3000):
            first.log(step, LOSS[step], lr=LR[step])
    # restarted from a checkpoint at step 2500: steps 2500..2999 come again, with other losses
    with client.run("resumed", schedule=COSINE) as second:
        for step in range(2500, 6000):
            second.log(step, LOSS[step] * (1.001 if step < 3000 else 1.0), lr=LR[step])
    assert second.id == first.id
    assert (second.sent, second.skipped, second.rejected) == (3000, 500, 0)
    points = _points(service.url, first.id)
    assert points["step"] == list(range(6000))
    np.testing.assert_array_equal(points["loss"], LOSS[:6000])


def test_other_metrics_go_to_a_second_run_of_the_group_and_refusals_are_counted(service):
    client = Client(service.url)
    run = client.run("with-eval", schedule=COSINE, group="25M-client", reopen=False)
    for step in range(0, 2000):
        run.log(
            step, LOSS[step], lr=LR[step], eval_loss=LOSS[step] * 1.02 if step % 500 == 0 else None
        )
    run.log(30_000, 2.5, lr=1e-5)  # past the schedule's 24,000 steps: the service refuses it
    run.log(2001, float("nan"), lr=LR[2001])  # a diverged step: never sent
    stats = run.close()
    assert stats["rejected"] == 1 and "30000" in stats["last_error"]
    assert stats["skipped"] == 1
    ids = run.ids
    assert set(ids) == {"with-eval", "with-eval/eval_loss"}
    evaluation = httpx.get(f"{service.url}/v1/runs/{ids['with-eval/eval_loss']}").json()
    assert evaluation["group"] == "25M-client"
    assert evaluation["points"]["step"] == [0, 500, 1000, 1500]
    np.testing.assert_array_equal(evaluation["points"]["loss"], LOSS[[0, 500, 1000, 1500]] * 1.02)


def test_a_service_that_never_comes_back_costs_the_loop_nothing(tmp_path):
    client = Client(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    run = client.run("nowhere", schedule=COSINE, queue_size=1000, close_timeout=0.5)
    began = time.perf_counter()
    for step in range(5000):
        run.log(step, LOSS[step], lr=LR[step])
    assert time.perf_counter() - began < 0.5
    stats = run.close()
    assert stats["sent"] == 0 and stats["retries"] > 0
    assert stats["dropped"] == 5000  # 4,000 over the queue's bound, 1,000 unsent at close
    assert "ConnectError" in stats["last_error"]


def test_points_still_queued_at_interpreter_exit_are_sent(service):
    """A script that logs and exits without close(): the atexit hook flushes."""
    import subprocess
    import sys

    script = (
        "from losscast.client import Client\n"
        f"run = Client({service.url!r}).run('at-exit', reopen=False,\n"
        "                                   flush_interval=60, batch_size=10**6)\n"
        "for step in range(1000):\n"
        "    run.log(step, 3.0 - step * 1e-4, lr=1e-3)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    (found,) = httpx.get(f"{service.url}/v1/runs", params={"name": "at-exit"}).json()["items"]
    assert found["num_points"] == 1000 and found["last_step"] == 999


def test_rank_other_than_zero_logs_nothing(service, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    assert process_rank() == 3
    run = Client(service.url).run("rank-3", schedule=COSINE)
    run.log(0, 3.0, lr=0.0)
    assert not run.enabled and run.close()["queued"] == 0
    monkeypatch.setenv("RANK", "0")
    assert Client(service.url).run("rank-0", schedule=COSINE).enabled


def test_read_calls_forecast_and_predict_a_candidate_schedule(service):
    client = Client(service.url)
    run = client.run("read-calls", schedule=COSINE, reopen=False)
    for step in range(2160, 24000, 64):
        run.log(step, LOSS[step], lr=LR[step])
    assert run.flush(timeout=60)
    with pytest.raises(LosscastError, match="no fit yet"):
        run.predict({**COSINE, "total_steps": 30000})
    fit = client.fit([run.id], law="lr_annealing", intervals=False)
    forecast = run.forecast(level=None)
    assert forecast["fit_id"] == fit["id"]
    assert abs(forecast["curve"]["loss"][-1] - LOSS[-1]) / LOSS[-1] < 0.01
    longer = run.predict({**COSINE, "total_steps": 48000}, level=None)
    assert longer["loss"][-1] < forecast["curve"]["loss"][-1]  # a longer cosine ends lower
    run.close()


# ---------------------------------------------------------------------------------------------
# Callbacks, run by the real trainers on tiny models


def test_hf_trainer_callback_posts_the_trainers_logs_with_its_schedule(service, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
    from losscast.hf import LosscastCallback

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 1)

        def forward(self, x, labels=None):
            prediction = self.linear(x).squeeze(-1)
            # + 1: a loss that stays positive, as a language model's does
            return {"loss": torch.nn.functional.mse_loss(prediction, labels) + 1.0}

    torch.manual_seed(0)
    inputs = torch.randn(256, 8)
    targets = inputs @ torch.randn(8) + 0.1 * torch.randn(256)
    data = [{"x": x, "labels": y} for x, y in zip(inputs, targets, strict=True)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "tiny-regression"),
        max_steps=60,
        logging_steps=5,
        eval_strategy="steps",
        eval_steps=20,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    callback = LosscastCallback(service.url, group="tiny-hf")
    trainer = transformers.Trainer(
        model=Tiny(), args=args, train_dataset=data, eval_dataset=data[:64], callbacks=[callback]
    )
    trainer.train()
    history = trainer.state.log_history
    logged = [r for r in history if "loss" in r and "train_runtime" not in r]
    evaluated = [r for r in history if "eval_loss" in r]
    assert len(logged) == 12 and len(evaluated) == 3
    assert callback.run.stats["sent"] == 15, callback.run.stats
    ids = callback.run.ids
    train = httpx.get(f"{service.url}/v1/runs/{ids['tiny-regression']}").json()
    assert train["schedule"] == {
        "type": "cosine", "peak_lr": 0.05, "total_steps": 60, "num_warmup_steps": 10
    }  # fmt: skip
    assert train["group"] == "tiny-hf" and train["metadata"]["hf_logging_steps"] == 5
    # Hugging Face's step counts updates; losscast's indexes the last one (losscast/hf.py)
    assert train["points"]["step"] == [r["step"] - 1 for r in logged]
    assert train["points"]["loss"] == [r["loss"] for r in logged]
    assert train["points"]["lr"] == [r["learning_rate"] for r in logged]
    evaluation = httpx.get(f"{service.url}/v1/runs/{ids['tiny-regression/eval_loss']}").json()
    assert evaluation["points"]["step"] == [r["step"] - 1 for r in evaluated]
    assert evaluation["points"]["loss"] == [r["eval_loss"] for r in evaluated]
    # the same Trainer's trainer_state.json, imported, gives the same points
    from app.io import import_logs

    trainer.state.save_to_json(str(tmp_path / "trainer_state.json"))
    _, (imported, imported_eval) = import_logs(tmp_path / "trainer_state.json")
    assert imported.steps.tolist() == train["points"]["step"]
    assert imported.loss.tolist() == train["points"]["loss"]
    assert imported.point_lr.tolist() == train["points"]["lr"]
    assert imported_eval.loss.tolist() == evaluation["points"]["loss"]


def test_lightning_callback_posts_each_steps_loss_and_lr_and_the_validation_loss(service, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed")
    from losscast.lightning import LosscastCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 1)
            self.seen: list[tuple[float, float]] = []  # (loss, lr) of each training step

        def _loss(self, batch):
            x, y = batch
            return torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y) + 1.0

        def training_step(self, batch, batch_idx):
            loss = self._loss(batch)
            self.seen.append((loss.item(), self.optimizers().param_groups[0]["lr"]))
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self._loss(batch))

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.05)
            decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 50)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": decay, "interval": "step"},
            }

    torch.manual_seed(0)
    inputs = torch.randn(320, 8)  # 40 batches: one epoch, validated after steps 20 and 40
    targets = inputs @ torch.randn(8) + 0.1 * torch.randn(320)
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    model = Tiny()
    callback = LosscastCallback(service.url, name="tiny-lightning")
    trainer = pl.Trainer(
        max_steps=40,
        val_check_interval=20,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
        callbacks=[callback],
    )
    trainer.fit(model, loader, torch.utils.data.DataLoader(dataset, batch_size=32))
    assert len(model.seen) == 40
    ids = callback.run.ids
    train = httpx.get(f"{service.url}/v1/runs/{ids['tiny-lightning']}").json()
    assert train["points"]["step"] == list(range(40))
    assert train["points"]["loss"] == [loss for loss, _ in model.seen]
    assert train["points"]["lr"] == [lr for _, lr in model.seen]
    evaluation = httpx.get(f"{service.url}/v1/runs/{ids['tiny-lightning/val_loss']}").json()
    assert evaluation["points"]["step"] == [19, 39]
    assert evaluation["group"] == "tiny-lightning"


def test_hf_callback_hooks_with_real_arguments_state_and_control(service, tmp_path):
    """The hooks as a Trainer calls them, with transformers' own argument, state and control
    objects (no torch needed): a WSD schedule read from the arguments, and a declared schedule
    the service refuses, dropped for the logged learning rate."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from losscast.hf import LosscastCallback, schedule_of

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "wsd-job"),
        learning_rate=3e-4,
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": 400, "min_lr_ratio": 0.1},
        warmup_steps=100,
        logging_steps=10,
        report_to=[],
    )
    state = transformers.TrainerState(max_steps=2000, is_world_process_zero=True)
    control = transformers.TrainerControl()
    assert schedule_of(args, state.max_steps) == {
        "type": "wsd", "peak_lr": 3e-4, "total_steps": 2000,
        "num_warmup_steps": 100, "num_decay_steps": 400, "min_lr_ratio": 0.1,
    }  # fmt: skip
    for declared, expected_source in ((None, "schedule"), ({"type": "cosine", "peak_lr": -1,
                                      "total_steps": 2000}, "interpolated")):  # fmt: skip
        callback = LosscastCallback(service.url, name=f"hooks-{expected_source}", schedule=declared)
        callback.on_train_begin(args, state, control)
        for step in range(10, 2001, 10):
            state.global_step = step
            logs = {"loss": float(LOSS[step]), "learning_rate": 3e-4, "epoch": step / 2000}
            callback.on_log(args, state, control, logs=logs)
        callback.on_log(args, state, control, logs={"train_runtime": 9.0, "train_loss": 3.0})
        callback.on_train_end(args, state, control)
        assert callback.run.stats["sent"] == 200, callback.run.stats
        run = httpx.get(f"{service.url}/v1/runs/{callback.run.id}").json()
        assert run["lr_source"] == expected_source
        assert run["points"]["step"] == list(range(9, 2000, 10))
        np.testing.assert_array_equal(run["points"]["loss"], LOSS[10:2001:10])
