"""Importers of other tools' logs (``app/io``), through ``POST /v1/runs/import`` and
``losscast import``. Every file is written by the tool's own writer (tensorboardX's, PyTorch's and
TensorBoard's ``SummaryWriter``, ``transformers.TrainerState``, Lightning's ``CSVLogger``,
MLflow's client), and the imported points are what was written.

The curve written is the 25M model's ``cosine_24000`` run of Luo et al. 2025 (tests/data/mpl,
MIT): its 171 logged points, and, for the dense logs, its loss interpolated to every step.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.curves import DATA, schedule_specs

COSINE = schedule_specs()["cosine_24000"]
TF2_LOG = Path(__file__).parent / "data" / "tf2" / "keras-run"


def _columns():
    lines = (DATA / "25M" / "cosine_24000.csv").read_text().split()
    rows = np.array([[float(c) for c in line.split(",")] for line in lines[1:]])
    return rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2]


STEPS, LR, LOSS = _columns()
#: Validation points: every 8th logged point, its loss 2% above the training loss.
EVAL_STEPS, EVAL_LOSS = STEPS[::8], LOSS[::8] * 1.02


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The app without its JIT warm-up (imports fit nothing)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    folder = tmp_path_factory.mktemp("imports")
    settings = Settings(database_url=f"sqlite:///{folder / 'db.sqlite'}", warmup=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _upload(api, files, **form):
    """POST /v1/runs/import with ``files``: paths (a directory goes as a zip)."""
    parts = []
    for path in files:
        path = Path(path)
        if path.is_dir():
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for member in sorted(path.rglob("*")):
                    archive.write(member, member.relative_to(path).as_posix())
            parts.append(("files", (f"{path.name}.zip", buffer.getvalue())))
        else:
            # with its directory, as losscast import sends it (a checkpoint's name)
            parts.append(("files", (f"{path.parent.name}/{path.name}", path.read_bytes())))
    return api.post("/v1/runs/import", files=parts, data=form)


def _stored(api, run_id):
    response = api.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200
    return response.json()["points"]


def _by_name(out):
    return {run["name"]: run for run in out["runs"]}


def f32(values):
    """TensorBoard stores scalars as float32: what was written is the float32 value."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# TensorBoard


def test_tensorboardx_every_point_of_a_dense_run_not_the_10000_point_sample(api, tmp_path):
    from tensorboardX import SummaryWriter

    steps = np.arange(2160, 14160)  # 12,000 points, over TensorBoard's 10,000 default
    loss = np.interp(steps, STEPS, LOSS)
    lr = np.interp(steps, STEPS, LR)
    eval_steps, eval_loss = EVAL_STEPS[EVAL_STEPS < steps[-1]], EVAL_LOSS[EVAL_STEPS < steps[-1]]
    with SummaryWriter(str(tmp_path / "job")) as writer:
        for step, value, rate in zip(steps, loss, lr, strict=True):
            writer.add_scalar("train/loss", value, int(step))
            writer.add_scalar("train/learning_rate", rate, int(step))
        for step, value in zip(eval_steps, eval_loss, strict=True):
            writer.add_scalar("eval/loss", value, int(step))
    (event_file,) = (tmp_path / "job").glob("*tfevents*")

    response = _upload(api, [event_file], name="dense", group="25M")
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["format"] == "tensorboard"
    runs = _by_name(out)
    assert set(runs) == {"dense", "dense/eval/loss"}
    assert {run["group"] for run in runs.values()} == {"25M"}
    train = _stored(api, runs["dense"]["id"])
    assert train["step"] == steps.tolist()
    np.testing.assert_array_equal(train["loss"], f32(loss))
    np.testing.assert_array_equal(train["lr"], f32(lr))
    assert runs["dense"]["lr_source"] == "interpolated"
    evaluation = _stored(api, runs["dense/eval/loss"]["id"])
    assert evaluation["step"] == eval_steps.tolist()
    np.testing.assert_array_equal(evaluation["loss"], f32(eval_loss))
    # the validation run's lr: the training lr series at every step (it is logged at each)
    assert runs["dense/eval/loss"]["lr_source"] == "lr_per_step"
    assert runs["dense/eval/loss"]["total_steps"] == steps[-1] + 1


def test_pytorch_summary_writer_log_dir_through_the_cli(api, tmp_path, monkeypatch, capsys):
    torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="torch is not installed")
    from losscast_cli import main as cli

    logdir = tmp_path / "runs" / "cosine"
    writer = torch_tb.SummaryWriter(log_dir=str(logdir))
    for step, value in zip(STEPS, LOSS, strict=True):
        writer.add_scalar("Loss/train", value, int(step))
    for step, value in zip(EVAL_STEPS, EVAL_LOSS, strict=True):
        writer.add_scalar("Loss/val", value, int(step))
    writer.close()

    _cli_service(api, monkeypatch)
    status = cli.main(
        ["import", str(tmp_path / "runs"), "--url", "http://testserver", "--json",
         "--schedule", json.dumps(COSINE)]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    runs = _by_name(out)
    assert set(runs) == {"cosine", "cosine/Loss/val"}  # the run's directory in the log dir
    assert all(run["lr_source"] == "schedule" for run in runs.values())
    np.testing.assert_array_equal(_stored(api, runs["cosine"]["id"])["loss"], f32(LOSS))
    np.testing.assert_array_equal(
        _stored(api, runs["cosine/Loss/val"]["id"])["loss"], f32(EVAL_LOSS)
    )


def test_tf2_tensor_scalars_written_by_tensorboards_own_writer(api, tmp_path):
    from tensorboard.summary import Writer

    writer = Writer(str(tmp_path / "tf2"))
    for step, value, rate in zip(STEPS, LOSS, LR, strict=True):
        writer.add_scalar("loss", value, int(step))
        writer.add_scalar("lr", rate, int(step))
    writer.close()
    response = _upload(api, [tmp_path / "tf2"])
    assert response.status_code == 201, response.text
    (run,) = response.json()["runs"]
    points = _stored(api, run["id"])
    assert points["step"] == STEPS.tolist()
    np.testing.assert_array_equal(points["loss"], f32(LOSS))
    np.testing.assert_array_equal(points["lr"], f32(LR))


def test_tf2_event_file_written_by_tensorflow_itself(api):
    """tests/data/tf2: written by TensorFlow 2.21's tf.summary.scalar (see its NOTICE)."""
    response = _upload(api, [TF2_LOG])
    assert response.status_code == 201, response.text
    (run,) = response.json()["runs"]
    assert (run["name"], run["metadata"]["metric"]) == ("keras-run", "epoch_loss")
    points = _stored(api, run["id"])
    assert points["step"] == STEPS.tolist()
    np.testing.assert_array_equal(points["loss"], f32(LOSS))
    np.testing.assert_array_equal(points["lr"], f32(LR))


def test_a_truncated_event_file_says_how_much_was_read(api, tmp_path):
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(tmp_path / "cut")) as writer:
        for step, value, rate in zip(STEPS, LOSS, LR, strict=True):
            writer.add_scalar("loss", value, int(step))
            writer.add_scalar("lr", rate, int(step))
    (event_file,) = (tmp_path / "cut").glob("*tfevents*")
    content = event_file.read_bytes()
    cut = tmp_path / event_file.name
    cut.write_bytes(content[: len(content) * 2 // 3])
    response = _upload(api, [cut], name="cut")
    assert response.status_code == 201, response.text
    out = response.json()
    (note,) = [n for n in out["notes"] if "partly read" in n]
    assert event_file.name in note and f"of {len(content) * 2 // 3:,} bytes" in note
    stored = _stored(api, out["runs"][0]["id"])
    # what was read is a prefix of what was written
    assert 0 < len(stored["step"]) < STEPS.size
    assert stored["step"] == STEPS[: len(stored["step"])].tolist()


def test_a_file_that_is_not_an_event_file_is_a_422_naming_it(api, tmp_path):
    bogus = tmp_path / "events.out.tfevents.123.host"
    bogus.write_bytes(b"\x00garbage" * 100)
    response = _upload(api, [bogus], format="tensorboard")
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert "events.out.tfevents.123.host" in item["msg"] and "no scalars" in item["msg"]


# ---------------------------------------------------------------------------------------------
# Hugging Face


def _trainer_state(path: Path, logging_steps: int = 128) -> Path:
    from transformers import TrainerState

    # The Trainer's step counts the updates done: the point losscast stores at step s (the
    # 0-based index of the last update) is logged by Hugging Face at step s + 1.
    state = TrainerState(logging_steps=logging_steps, global_step=int(STEPS[-1]) + 1)
    eval_at = dict(zip(EVAL_STEPS.tolist(), EVAL_LOSS.tolist(), strict=True))
    for step, loss, lr in zip(STEPS.tolist(), LOSS.tolist(), LR.tolist(), strict=True):
        state.log_history.append({"loss": loss, "grad_norm": 0.5, "learning_rate": lr,
                                  "epoch": step / 24000, "step": step + 1})  # fmt: skip
        if step in eval_at:
            state.log_history.append({"eval_loss": eval_at[step], "eval_runtime": 1.5,
                                      "epoch": step / 24000, "step": step + 1})  # fmt: skip
    state.log_history.append({"train_runtime": 99.0, "train_loss": float(np.mean(LOSS)),
                              "epoch": 1.0, "step": int(STEPS[-1]) + 1})  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    state.save_to_json(str(path / "trainer_state.json"))
    return path / "trainer_state.json"


def test_hf_trainer_state_loss_eval_loss_and_learning_rate(api, tmp_path):
    pytest.importorskip("transformers", reason="transformers is not installed")
    state_file = _trainer_state(tmp_path / "checkpoint-24000")
    response = _upload(api, [state_file])
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["format"] == "hf"
    runs = _by_name(out)
    assert set(runs) == {"checkpoint-24000", "checkpoint-24000/eval_loss"}
    train = runs["checkpoint-24000"]
    assert train["metadata"]["loss_is_window_mean"] is True
    assert train["metadata"]["hf_logging_steps"] == 128
    points = _stored(api, train["id"])
    assert points["step"] == STEPS.tolist()
    assert points["loss"] == LOSS.tolist()  # JSON: exactly what was written
    assert points["lr"] == LR.tolist()
    evaluation = _stored(api, runs["checkpoint-24000/eval_loss"]["id"])
    assert evaluation["loss"] == EVAL_LOSS.tolist()
    # the eval records carry no lr: the training lr at the eval steps is in the logged series
    assert evaluation["step"] == EVAL_STEPS.tolist()


def test_hf_declared_schedule_reports_the_logged_lr_that_disagrees(api, tmp_path):
    pytest.importorskip("transformers", reason="transformers is not installed")
    state_file = _trainer_state(tmp_path / "ckpt")
    wrong = {**COSINE, "peak_lr": 6e-4}
    response = _upload(api, [state_file], schedule=json.dumps(wrong), eval_loss="none")
    assert response.status_code == 201, response.text
    (run,) = response.json()["runs"]
    assert run["lr_source"] == "schedule"
    (warning,) = run["warnings"]
    assert "points.lr differs from the declared learning rate at 171 of 171" in warning


def test_hf_broken_json_names_the_line(api, tmp_path):
    broken = tmp_path / "trainer_state.json"
    broken.write_text('{\n  "log_history": [\n    {"loss": 2.0, "step": 1},\n    {"loss": \n')
    response = _upload(api, [broken])
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "trainer_state.json: line 5" in message and "not valid JSON" in message


# ---------------------------------------------------------------------------------------------
# Lightning


def test_lightning_csv_logger_sparse_rows(api, tmp_path):
    loggers = pytest.importorskip("lightning.pytorch.loggers", reason="lightning not installed")
    logger = loggers.CSVLogger(str(tmp_path / "logs"), name="gpt")
    eval_at = dict(zip(EVAL_STEPS.tolist(), EVAL_LOSS.tolist(), strict=True))
    for step, loss, lr in zip(STEPS.tolist(), LOSS.tolist(), LR.tolist(), strict=True):
        logger.log_metrics({"train_loss": loss, "lr-AdamW": lr, "epoch": 0}, step=step)
        if step in eval_at:
            logger.log_metrics({"val_loss": eval_at[step], "epoch": 0}, step=step)
    logger.finalize("success")
    (metrics,) = (tmp_path / "logs").rglob("metrics.csv")
    header = metrics.read_text().splitlines()[0].split(",")
    assert {"train_loss", "val_loss", "lr-AdamW", "step"} <= set(header)

    response = _upload(api, [metrics])
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["format"] == "lightning"
    runs = {run["metadata"]["metric"]: run for run in out["runs"]}
    assert runs["train_loss"]["name"] == "version_0"  # the upload's directory
    assert runs["val_loss"]["name"] == "version_0/val_loss"
    train = _stored(api, runs["train_loss"]["id"])
    assert train["step"] == STEPS.tolist()
    np.testing.assert_allclose(train["loss"], LOSS, rtol=1e-15)
    np.testing.assert_allclose(train["lr"], LR, rtol=1e-15)
    evaluation = _stored(api, runs["val_loss"]["id"])
    assert evaluation["step"] == EVAL_STEPS.tolist()
    np.testing.assert_allclose(evaluation["loss"], EVAL_LOSS, rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# MLflow


def _mlflow_log(uri: str):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("pretraining")
    run = client.create_run(experiment, run_name="cosine-24000")
    metrics = [Metric("loss", v, 0, int(s)) for s, v in zip(STEPS, LOSS, strict=True)]
    metrics += [Metric("lr", v, 0, int(s)) for s, v in zip(STEPS, LR, strict=True)]
    metrics += [
        Metric("val_loss", v, 0, int(s)) for s, v in zip(EVAL_STEPS, EVAL_LOSS, strict=True)
    ]
    for start in range(0, len(metrics), 500):
        client.log_batch(run.info.run_id, metrics=metrics[start : start + 500])
    client.set_terminated(run.info.run_id)
    return mlflow


def _check_mlflow_runs(api, out):
    runs = _by_name(out)
    assert set(runs) == {"cosine-24000", "cosine-24000/val_loss"}
    train = _stored(api, runs["cosine-24000"]["id"])
    assert train["step"] == STEPS.tolist()
    assert train["loss"] == LOSS.tolist()
    assert train["lr"] == LR.tolist()
    assert _stored(api, runs["cosine-24000/val_loss"]["id"])["loss"] == EVAL_LOSS.tolist()


def test_mlflow_sqlite_store(api, tmp_path):
    database = tmp_path / "mlflow.db"
    _mlflow_log(f"sqlite:///{database}")
    response = _upload(api, [database])
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "mlflow"
    _check_mlflow_runs(api, response.json())


def test_mlflow_file_store_through_the_cli(api, tmp_path, monkeypatch, capsys):
    from losscast_cli import main as cli

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    _mlflow_log(store.as_uri())
    _cli_service(api, monkeypatch)
    assert cli.main(["import", str(store), "--url", "http://testserver", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "mlflow"
    _check_mlflow_runs(api, out)


def test_a_sqlite_file_that_is_not_an_mlflow_store_is_a_422(api, tmp_path):
    import sqlite3

    database = tmp_path / "other.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table t (x integer)")
    response = _upload(api, [database])
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert (
        "other.db: a SQLite file, but not an MLflow store: no experiments, metrics, runs" in message
    )


# ---------------------------------------------------------------------------------------------
# W&B and plain tables


def _wandb_history():
    """A W&B history as ``run.history()`` returns it: a pandas DataFrame, one row per
    ``wandb.log`` call, W&B's keys (``_step``, ``_runtime``, ``train/loss``), NaN where a row
    does not log a key."""
    pandas = pytest.importorskip("pandas", reason="pandas (what run.history() returns) missing")
    records = []
    eval_at = dict(zip(EVAL_STEPS.tolist(), EVAL_LOSS.tolist(), strict=True))
    for step, loss, lr in zip(STEPS.tolist(), LOSS.tolist(), LR.tolist(), strict=True):
        records.append({"_step": step, "_runtime": step / 10, "train/loss": loss,
                        "train/learning_rate": lr})  # fmt: skip
        if step in eval_at:
            records.append({"_step": step, "_runtime": step / 10, "eval/loss": eval_at[step]})
    return pandas.DataFrame.from_records(records)


@pytest.mark.parametrize("dump", ["to_csv", "to_json", "to_parquet"])
def test_wandb_history_dumps_written_by_pandas(api, tmp_path, dump):
    history = _wandb_history()
    if dump == "to_csv":
        path = tmp_path / "history.csv"
        history.to_csv(path)  # with pandas' unnamed index column first
    elif dump == "to_json":
        path = tmp_path / "history.jsonl"
        history.to_json(path, orient="records", lines=True)  # NaN written as null
    else:
        pytest.importorskip("pyarrow", reason="pyarrow (parquet) is not installed")
        path = tmp_path / "history.parquet"
        history.to_parquet(path)
    response = _upload(api, [path], name="wb")
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "wandb"
    runs = _by_name(response.json())
    assert set(runs) == {"wb", "wb/eval/loss"}
    train = _stored(api, runs["wb"]["id"])
    assert train["step"] == STEPS.tolist()
    lr = LR
    if dump == "to_json":  # pandas writes 10 decimals by default: what was written is that
        records = [json.loads(line) for line in path.read_text().splitlines()]
        lr = [r["train/learning_rate"] for r in records if r["train/learning_rate"] is not None]
    np.testing.assert_allclose(train["loss"], LOSS, rtol=1e-15)
    np.testing.assert_allclose(train["lr"], lr, rtol=1e-15)
    evaluation = _stored(api, runs["wb/eval/loss"]["id"])
    assert evaluation["step"] == EVAL_STEPS.tolist()
    np.testing.assert_allclose(evaluation["loss"], EVAL_LOSS, rtol=1e-15)


def test_a_json_lines_dump_cut_off_mid_line_is_read_up_to_the_cut(api, tmp_path):
    path = tmp_path / "history.jsonl"
    _wandb_history().to_json(path, orient="records", lines=True)
    text = path.read_text()
    lines = text.splitlines()
    path.write_text(text[: len(text) - len(lines[-1]) // 2 - 1])  # the writer died mid-record
    response = _upload(api, [path], name="cut", eval_loss="none")
    assert response.status_code == 201, response.text
    (note,) = response.json()["notes"]
    assert f"partly read: {len(lines) - 1} of {len(lines)} records" in note
    assert f"line {len(lines)} is cut off" in note
    (run,) = response.json()["runs"]
    assert run["num_points"] == STEPS.size - 1


def test_a_broken_line_in_the_middle_of_json_lines_is_a_422_naming_it(api, tmp_path):
    path = tmp_path / "history.jsonl"
    _wandb_history().to_json(path, orient="records", lines=True)
    lines = path.read_text().splitlines()
    lines[9] = lines[9][:20]
    path.write_text("\n".join(lines) + "\n")
    response = _upload(api, [path])
    assert response.status_code == 422
    assert "history.jsonl: line 10: not a JSON object" in response.json()["detail"][0]["msg"]


def test_wandb_panel_csv_export(api, tmp_path):
    """The panel export's layout (https://github.com/wandb/wandb/issues/5349): ``Step``, then per
    run ``<run> - <metric>`` and its ``__MIN``/``__MAX`` columns."""
    import csv

    panel = tmp_path / "wandb_export_2026-12-02.csv"
    with open(panel, "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        columns = ["a - train/loss", "a - train/loss__MIN", "a - train/loss__MAX"]
        writer.writerow(["Step", *columns, "b - train/loss", "b - train/loss__MIN"])
        for step, loss in zip(STEPS.tolist(), LOSS.tolist(), strict=True):
            writer.writerow([step, loss, loss, loss, loss * 1.01, loss * 1.01])
    response = _upload(api, [panel], schedule=json.dumps(COSINE))
    assert response.status_code == 201, response.text
    runs = _by_name(response.json())
    assert set(runs) == {"a", "b"}
    assert _stored(api, runs["a"]["id"])["loss"] == LOSS.tolist()
    np.testing.assert_allclose(_stored(api, runs["b"]["id"])["loss"], LOSS * 1.01, rtol=1e-15)


def test_tsv_with_a_column_mapping_and_bad_cells_named_by_line(api, tmp_path):
    table = tmp_path / "log.tsv"
    rows = ["iteration\tlearning_rate\ttrain_nll"]
    rows += [
        f"{s}\t{lr!r}\t{v!r}" for s, lr, v in zip(STEPS, LR.tolist(), LOSS.tolist(), strict=True)
    ]
    table.write_text("\n".join(rows) + "\n")
    mapping = "step=iteration,loss=train_nll,lr=learning_rate"
    response = _upload(api, [table], columns=mapping, format="table")
    assert response.status_code == 201, response.text
    (run,) = response.json()["runs"]
    points = _stored(api, run["id"])
    assert points["step"] == STEPS.tolist() and points["loss"] == LOSS.tolist()

    rows[4] = rows[4].replace(repr(float(LOSS[3])), "n/a")
    table.write_text("\n".join(rows) + "\n")
    response = _upload(api, [table], columns=mapping, format="table")
    assert response.status_code == 422
    assert "log.tsv: line 5: train_nll='n/a' is not a number" in response.json()["detail"][0]["msg"]


def test_a_lightning_log_cut_off_mid_row_is_read_up_to_the_cut(api, tmp_path):
    loggers = pytest.importorskip("lightning.pytorch.loggers", reason="lightning not installed")
    logger = loggers.CSVLogger(str(tmp_path / "logs"), name="cut")
    for step, loss, lr in zip(STEPS.tolist(), LOSS.tolist(), LR.tolist(), strict=True):
        logger.log_metrics({"train_loss": loss, "lr-AdamW": lr}, step=step)
    logger.finalize("success")
    (metrics,) = (tmp_path / "logs").rglob("metrics.csv")
    text = metrics.read_text()
    metrics.write_text(text[: text.rstrip().rindex(",")])  # the process died mid-row
    response = _upload(api, [metrics])
    assert response.status_code == 201, response.text
    (note,) = response.json()["notes"]
    assert f"partly read: {STEPS.size - 1} of {STEPS.size} rows; line {STEPS.size + 1}" in note
    (run,) = response.json()["runs"]
    points = _stored(api, run["id"])
    assert points["step"] == STEPS[:-1].tolist()


def test_a_log_without_a_learning_rate_or_schedule_says_what_to_give(api, tmp_path):
    table = tmp_path / "loss_only.csv"
    _write_table(table, ["step", "loss"], STEPS, LOSS)
    response = _upload(api, [table])
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "schedule"]
    assert "loss_only.csv: no learning rate logged" in item["msg"]


def test_nan_losses_are_left_out_with_a_note(api, tmp_path):
    table = tmp_path / "diverged.csv"
    loss = LOSS.copy()
    loss[[10, 20]] = np.nan
    _write_table(table, ["step", "lr", "loss"], STEPS, LR, loss)
    response = _upload(api, [table])
    assert response.status_code == 201, response.text
    (note,) = response.json()["notes"]
    assert "left out 2 of 171 points" in note and f"step {STEPS[10]}" in note
    assert response.json()["runs"][0]["num_points"] == 169


def test_import_in_process_writes_losscast_csvs_that_fit_reads(tmp_path, capsys):
    pytest.importorskip("transformers", reason="transformers is not installed")
    from app.io import read_points
    from losscast_cli import main as cli

    state_file = _trainer_state(tmp_path / "ckpt")
    status = cli.main(["import", str(state_file), "--out-dir", str(tmp_path / "out")])
    assert status == 0, capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["ckpt.csv", "ckpt__eval_loss.csv"]
    points = read_points((tmp_path / "out" / "ckpt.csv").read_bytes())
    assert points.step == STEPS.tolist() and points.loss == LOSS.tolist()
    assert points.lr == LR.tolist()


def _write_table(path: Path, header, *columns) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*(np.asarray(c).tolist() for c in columns), strict=True))


def _cli_service(api, monkeypatch):
    import httpx

    from losscast_cli import main as cli

    class InProcessService(cli.Service):
        def __init__(self, url, timeout):
            self.httpx, self.client, self.url = httpx, api, url

    monkeypatch.setattr(cli, "Service", InProcessService)


NAMES = [
    "events.out.tfevents.1.host",
    "trainer_state.json",
    "metrics.csv",
    "history.jsonl",
    "history.parquet",
    "mlflow.db",
    "log.tsv",
    "export.csv",
    "logs.zip",
    "",
]
PREFIXES = [b"", b"PK\x03\x04", b"SQLite format 3\x00", b"step,loss\n", b'{"log_history": [',
            b'{"_step": 1e400, "loss": 1}\n', b"Step,a - loss\n1,"]  # fmt: skip


def test_garbage_uploads_are_answered_4xx_never_500(api):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        name=st.sampled_from(NAMES),
        prefix=st.sampled_from(PREFIXES),
        body=st.binary(max_size=300),
        format=st.sampled_from(
            [None, "tensorboard", "wandb", "hf", "lightning", "mlflow", "table"]
        ),
    )
    def check(name, prefix, body, format):
        form = {"format": format} if format else {}
        response = api.post("/v1/runs/import", files=[("files", (name, prefix + body))], data=form)
        assert response.status_code in (201, 422), response.text
        if response.status_code == 422:
            assert response.json()["detail"][0]["msg"]

    check()
