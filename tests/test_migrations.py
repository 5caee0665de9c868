"""Alembic migrations on SQLite always, and on PostgreSQL when LOSSCAST_TEST_POSTGRES_URL is set:
a new database is created by them exactly as the models say; a database made before migrations
(by ``Base.metadata.create_all``, the code path that shipped, with data in it) is adopted and
upgraded with its data intact; ``losscast db upgrade`` does the same from the command line."""

from __future__ import annotations

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Table, inspect, text

from app.storage import (
    FIRST_REVISION,
    Base,
    FitRow,
    FitRunRow,
    FitRunSnapshot,
    NewFit,
    NewRun,
    PointsUpdate,
    RunRow,
    Store,
    _alembic_config,
    _new_row,
)
from losscast_cli.main import main

#: The tables that shipped before migrations (schema version 2), less the columns of ``runs``
#: added by later revisions (0004: runs that continue runs).
SHIPPED_TABLES = [RunRow.__table__, FitRow.__table__, FitRunRow.__table__]
LATER_RUN_COLUMNS = {"domain", "continues_run_id", "continues_at_step", "replay"}


def _shipped_metadata() -> MetaData:
    shipped = MetaData()
    for table in SHIPPED_TABLES:
        if table.name != "runs":
            table.to_metadata(shipped)
            continue
        columns = [c for c in table.columns if c.name not in LATER_RUN_COLUMNS]
        Table(
            "runs",
            shipped,
            *(
                Column(
                    c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, index=c.index
                )
                for c in columns
            ),
        )
    return shipped


@pytest.fixture
def empty_store(database_url):
    store = Store(database_url)
    store.drop_schema()
    yield store
    store.drop_schema()
    store.close()


def _head() -> str:
    with Store("sqlite://").engine.connect() as connection:
        return ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()


def _differences(store: Store) -> list:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _fill(store: Store, shipped: MetaData | None = None) -> tuple[str, str, np.ndarray]:
    """One run with per-step learning rates and one fit of it, through the store's own code (the
    run's row written as it is, less its later columns, into ``shipped``'s tables if given)."""
    loss = np.array([4.25, 1 / 3, np.nextafter(3.0, 4.0), 2.5])
    lr = np.linspace(3e-4, 3e-5, 400)
    new = NewRun(
        name="cosine_400",
        metadata={"model_size": "25M"},
        lr_source="lr_per_step",
        schedule=None,
        lr_per_step=lr,
        steps=np.array([100, 200, 300, 400]),
        loss=loss,
        point_lr=None,
        total_steps=400,
    )
    if shipped is None:
        run = store.create_run(new)
    else:
        row = _new_row(new, "run_shipped")
        runs = shipped.tables["runs"]
        columns = inspect(RunRow).column_attrs  # attribute -> column (group -> group_name)
        values = {a.columns[0].name: getattr(row, a.key) for a in columns}
        values = {name: value for name, value in values.items() if name in runs.c}
        with store.engine.begin() as connection:
            connection.execute(runs.insert().values(**values))
        run = row
    snapshot = FitRunSnapshot(run.id, run.name, 1, "lr_per_step", 400, "a" * 64, "b" * 64,
                              new.steps, new.loss)  # fmt: skip
    fit = store.create_fit(
        NewFit("lr_annealing", {"L0": 2.5, "A": 0.75}, True, {"rmse": 0.01}, {}, [snapshot])
    )
    return run.id, fit.id, loss


def _check_data(store: Store, run_id: str, fit_id: str, loss: np.ndarray) -> None:
    run = store.get_run(run_id)
    assert run.loss.tobytes() == loss.tobytes()
    assert run.steps.tolist() == [100, 200, 300, 400]
    assert run.lr_per_step.tobytes() == np.linspace(3e-4, 3e-5, 400).tobytes()
    assert (run.name, run.metadata, run.version) == ("cosine_400", {"model_size": "25M"}, 1)
    fit = store.get_fit(fit_id)
    assert fit.params == {"L0": 2.5, "A": 0.75} and fit.result == {"rmse": 0.01}
    assert fit.runs[0].loss.tobytes() == loss.tobytes() and fit.run_ids == [run_id]
    # The upgraded database takes writes as a new one does.
    appended = store.update_points(
        run_id,
        lambda current: PointsUpdate(
            np.append(current.steps, 500), np.append(current.loss, 2.4), None, 500
        ),
    )
    assert appended.version == 2 and appended.loss[-1] == 2.4


def test_a_new_database_is_created_by_the_migrations_exactly_as_the_models_say(empty_store):
    assert empty_store.schema_revision() is None
    empty_store.create_schema()
    assert empty_store.schema_revision() == _head()
    assert _differences(empty_store) == []
    empty_store.create_schema()  # at head already: nothing to do, no error
    assert empty_store.schema_revision() == _head()


def test_the_first_revision_is_the_schema_that_shipped_before_migrations(empty_store):
    with empty_store.engine.begin() as connection:
        command.upgrade(_alembic_config(connection), FIRST_REVISION)
    shipped = _shipped_metadata()
    with empty_store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, shipped) == []
    inspected = inspect(empty_store.engine)
    assert set(inspected.get_table_names()) == {"alembic_version", "runs", "fits", "fit_runs"}
    assert inspected.get_foreign_keys("fit_runs")[0]["options"].get("ondelete") == "CASCADE"


def test_a_database_made_before_migrations_is_adopted_with_its_data(empty_store):
    shipped = _shipped_metadata()
    shipped.create_all(empty_store.engine)  # as start did then
    run_id, fit_id, loss = _fill(empty_store, shipped)
    assert empty_store.schema_revision() is None
    empty_store.create_schema()
    assert empty_store.schema_revision() == _head()
    assert _differences(empty_store) == []
    _check_data(empty_store, run_id, fit_id, loss)


def test_a_version_1_database_without_groups_gains_the_column_and_keeps_its_data(empty_store):
    shipped = _shipped_metadata()
    shipped.create_all(empty_store.engine)
    run_id, fit_id, loss = _fill(empty_store, shipped)
    with empty_store.engine.begin() as connection:  # schema version 1 had no runs.group_name
        connection.execute(text("DROP INDEX ix_runs_group_name"))
        connection.execute(text("ALTER TABLE runs DROP COLUMN group_name"))
    assert "group_name" not in {c["name"] for c in inspect(empty_store.engine).get_columns("runs")}
    empty_store.create_schema()
    assert _differences(empty_store) == []
    assert empty_store.get_run(run_id).group is None
    _check_data(empty_store, run_id, fit_id, loss)


def test_losscast_db_upgrade_creates_and_reports_the_revision(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == "not created"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == f"schema at revision {_head()} (was not created)"
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == _head()
    store = Store(url)
    assert _differences(store) == []
    store.close()
