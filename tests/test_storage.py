"""The storage module on SQLite always, and on PostgreSQL when LOSSCAST_TEST_POSTGRES_URL is set
(CI sets it): arrays round-trip exactly, appends are optimistic, fits keep their snapshots."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
from sqlalchemy import text

from app.errors import Conflict, NotFound
from app.storage import FitRunSnapshot, NewFit, NewRun, PointsUpdate, Store


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    store.drop_schema()
    store.create_schema()
    yield store
    store.drop_schema()
    store.close()


def _new_run(name="run", n=5, **overrides) -> NewRun:
    steps = np.arange(1, n + 1, dtype=np.int64) * 10
    values = {
        "name": name,
        "metadata": {"model_size": "25M", "tags": ["a", "b"], "layers": 12},
        "lr_source": "schedule",
        "schedule": {"type": "constant", "peak_lr": 1e-3, "total_steps": 1000},
        "lr_per_step": None,
        "steps": steps,
        "loss": 3.0 + 1.0 / steps,
        "point_lr": None,
        "total_steps": 1000,
    }
    return NewRun(**{**values, **overrides})


def test_run_arrays_round_trip_bit_for_bit(store):
    loss = np.array([4.1114, 1 / 3, np.nextafter(2.0, 3.0), 1e-300, 7.0])
    lr = np.linspace(0, 3e-4, 1000)
    created = store.create_run(
        _new_run(
            loss=loss, lr_source="lr_per_step", lr_per_step=lr, schedule=None, point_lr=loss / 1e4
        )
    )
    read = store.get_run(created.id)
    assert read.steps.dtype == np.int64 and read.steps.tolist() == [10, 20, 30, 40, 50]
    assert read.loss.tobytes() == loss.tobytes()
    assert read.lr_per_step.tobytes() == lr.tobytes()
    assert read.point_lr.tobytes() == (loss / 1e4).tobytes()
    assert read.metadata == {"model_size": "25M", "tags": ["a", "b"], "layers": 12}
    assert (read.first_step, read.last_step, read.num_points, read.version) == (10, 50, 5, 1)
    assert read.created_at.tzinfo is not None


def test_get_runs_keeps_order_and_names_the_missing(store):
    a, b = store.create_run(_new_run("a")), store.create_run(_new_run("b"))
    assert [r.name for r in store.get_runs([b.id, a.id])] == ["b", "a"]
    with pytest.raises(NotFound, match="run_nope"):
        store.get_runs([a.id, "run_nope"])
    with pytest.raises(NotFound):
        store.get_run("run_nope")


def test_list_filters_pages_and_leaves_arrays_out(store):
    for i in range(5):
        store.create_run(_new_run(f"sweep-{i}", metadata={"size": "25M" if i % 2 else "400M"}))
    store.create_run(_new_run("other_%"))
    page, total = store.list_runs(name_contains="sweep", limit=2)
    assert total == 5 and [r.name for r in page] == ["sweep-4", "sweep-3"]
    assert not hasattr(page[0], "steps")
    small, total = store.list_runs(metadata={"size": "25M"})
    assert total == 2 and {r.name for r in small} == {"sweep-1", "sweep-3"}
    assert store.list_runs(name_contains="_%")[1] == 1  # wildcards are literal
    assert store.list_runs(name="sweep-2")[1] == 1


def test_update_points_applies_the_merge_and_bumps_the_version(store):
    run = store.create_run(_new_run())

    def append(current):
        return PointsUpdate(
            np.append(current.steps, 60), np.append(current.loss, 2.9), None, current.total_steps
        )

    updated = store.update_points(run.id, append)
    assert updated.version == 2 and updated.steps[-1] == 60 and updated.num_points == 6
    assert store.update_points(run.id, lambda current: None).version == 2
    with pytest.raises(Conflict):
        store.update_points(run.id, lambda current: (_ for _ in ()).throw(Conflict("no")))


def test_concurrent_appends_lose_nothing(store):
    run = store.create_run(_new_run(n=1))
    barrier = threading.Barrier(4)
    errors = []

    def append(worker):
        barrier.wait()
        for k in range(5):
            step = 1000 + worker * 10 + k

            def merge(current, step=step):
                if step in current.steps:
                    return None
                order = np.argsort(np.append(current.steps, step))
                return PointsUpdate(
                    np.append(current.steps, step)[order],
                    np.append(current.loss, 2.0)[order],
                    None,
                    current.total_steps,
                )

            try:
                store.update_points(run.id, merge)
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    final = store.get_run(run.id)
    assert final.num_points == 21 and final.version == 21


def test_fit_keeps_its_snapshot_after_the_run_changes_or_goes(store):
    run = store.create_run(_new_run())
    snapshot = FitRunSnapshot(
        run_id=run.id,
        name=run.name,
        version=run.version,
        lr_source=run.lr_source,
        total_steps=run.total_steps,
        lr_sha256="0" * 64,
        points_sha256="1" * 64,
        steps=run.steps,
        loss=run.loss,
    )
    fit = store.create_fit(
        NewFit(
            law="lr_annealing",
            params={"L0": 3.0, "A": 0.5},
            converged=False,
            result={"message": "ABNORMAL", "metrics": {run.id: {"r2": float("nan")}}},
            options={"warmup": "include"},
            runs=[snapshot],
        )
    )
    store.update_points(
        run.id,
        lambda c: PointsUpdate(np.append(c.steps, 99), np.append(c.loss, 2.0), None, 1000),
    )
    store.delete_run(run.id)
    read = store.get_fit(fit.id)
    assert read.converged is False and read.params == {"L0": 3.0, "A": 0.5}
    assert read.result["metrics"][run.id]["r2"] is None  # NaN is stored as null
    assert read.runs[0].version == 1 and read.runs[0].steps.tolist() == run.steps.tolist()
    assert store.get_fit(fit.id, with_runs=False).runs is None
    assert store.latest_fit_for_run(run.id).id == fit.id
    assert store.list_fits(run_id="run_other")[1] == 0
    with pytest.raises(NotFound):
        store.get_fit("fit_nope")


def test_latest_fit_for_a_run_is_the_newest(store):
    run = store.create_run(_new_run())
    snapshot = FitRunSnapshot(run.id, run.name, 1, "schedule", 1000, "0", "1", run.steps, run.loss)
    fits = [
        store.create_fit(NewFit("lr_annealing", {"L0": float(i)}, True, {}, {}, [snapshot]))
        for i in range(3)
    ]
    assert store.latest_fit_for_run(run.id).id == fits[-1].id
    assert store.latest_fit_for_run("run_" + uuid.uuid4().hex) is None


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'deep' / 'folder' / 'db.sqlite'}")
    store.create_schema()
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    store.close()
