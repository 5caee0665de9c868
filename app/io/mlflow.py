"""MLflow metric histories, read through MLflow's own client (``MlflowClient`` on a tracking
URI): the SQLite store MLflow now defaults to (an ``mlflow.db`` file, or ``sqlite:///...``) and
the file store (an ``mlruns`` directory, or ``file:///...``). Every run of every experiment is a
run (``run_name`` or the run id); every metric key a series, with all of its points
(``get_metric_history``).

A SQLite store is read from a copy in a temporary directory: opening a store with MLflow's client
upgrades its schema in place, which an import must not do to the user's file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from app.errors import InputError
from app.io.logs import LoggedRun, Series, require

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def is_file_store(path: Path) -> bool:
    """An ``mlruns`` directory: experiments as numbered directories with a ``meta.yaml``."""
    return path.is_dir() and any(p.name == "meta.yaml" for p in path.glob("*/meta.yaml"))


#: Tables every MLflow SQLite store has (MLflow's client would create them in any other file).
MLFLOW_TABLES = {"experiments", "runs", "metrics"}


def _check_tables(path: Path) -> None:
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as connection:
            rows = connection.execute("select name from sqlite_master where type = 'table'")
            tables = {name for (name,) in rows}
    except sqlite3.DatabaseError as error:
        raise InputError(f"{path}: not a readable SQLite file: {error}", "file") from None
    missing = MLFLOW_TABLES - tables
    if missing:
        raise InputError(
            f"{path}: a SQLite file, but not an MLflow store: no {', '.join(sorted(missing))} "
            "table",
            "file",
        )


def _runs(uri: str, origin: str) -> list[LoggedRun]:
    require("mlflow.tracking", "mlflow-skinny", "MLflow stores")
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        experiments = client.search_experiments(view_type=ViewType.ALL)
        found = []
        for experiment in experiments:
            token = None
            while True:
                page = client.search_runs(
                    [experiment.experiment_id],
                    run_view_type=ViewType.ALL,
                    max_results=1000,
                    page_token=token,
                )
                found.extend((experiment, run) for run in page)
                token = page.token
                if not token:
                    break
        runs = []
        for experiment, run in found:
            series = {}
            for key in run.data.metrics:
                history = client.get_metric_history(run.info.run_id, key)
                series[key] = Series.of(key, [m.step for m in history], [m.value for m in history])
            name = run.info.run_name or run.info.run_id
            metadata = {
                "mlflow_run_id": run.info.run_id,
                "mlflow_experiment": experiment.name,
                **{f"param.{k}": v for k, v in sorted(run.data.params.items())[:50]},
            }
            runs.append(LoggedRun(name, f"{origin} (run {name})", series, metadata))
    except MlflowException as error:
        raise InputError(
            f"{origin}: not a readable MLflow store: {error.message}", "file"
        ) from None
    except sqlite3.DatabaseError as error:
        raise InputError(f"{origin}: not a readable MLflow SQLite store: {error}", "file") from None
    except Exception as error:  # noqa: BLE001 -- SQLAlchemy's and alembic's errors on a bad file
        if type(error).__module__.startswith(("sqlalchemy", "alembic")):
            raise InputError(f"{origin}: not a readable MLflow store: {error}", "file") from None
        raise
    if not runs:
        raise InputError(f"{origin}: the MLflow store holds no runs", "file")
    return runs


def read_mlflow(path: Path | str) -> list[LoggedRun]:
    """The runs of an MLflow store: a SQLite file, an ``mlruns`` directory, or a tracking URI
    (``sqlite:///path``, ``file:///path``)."""
    text = str(path)
    if text.startswith("sqlite:///"):
        path = Path(text[len("sqlite:///") :])
    elif text.startswith("file://"):
        path = Path(text[len("file://") :])
    path = Path(path)
    if path.is_file():
        if not is_sqlite(path):
            raise InputError(f"{path}: not an MLflow store (neither SQLite nor mlruns)", "file")
        _check_tables(path)
        with tempfile.TemporaryDirectory(prefix="losscast-mlflow-") as scratch:
            copy = Path(scratch) / "mlflow.db"
            shutil.copyfile(path, copy)
            for sidecar in ("-wal", "-shm"):  # a store in use: its latest writes are in its WAL
                if Path(f"{path}{sidecar}").is_file():
                    shutil.copyfile(f"{path}{sidecar}", f"{copy}{sidecar}")
            return _runs(f"sqlite:///{copy}", str(path))
    if path.is_dir():
        # MLflow 3 refuses the file store unless told it is wanted (it is read-only here).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return _runs(path.resolve().as_uri(), str(path))
    raise InputError(f"{path}: no such file or directory", "file")
