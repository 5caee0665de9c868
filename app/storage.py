"""The one storage module: runs and fits in a SQL database through SQLAlchemy 2.

SQLite (a file, the default) or PostgreSQL (``DATABASE_URL``, for several stateless replicas).
Curves are stored as arrays, not a row per point: little-endian float64 / int64 bytes in
``LargeBinary`` columns. Every write is one transaction; SQLite runs in WAL mode with
``synchronous=FULL``, so a write that was acknowledged survives a ``kill -9`` of the server.

Tables:

- ``runs``: one logged run: its points (``steps``, ``loss``, optional logged ``point_lr``) and the
  source of its per-step learning rate (``schedule`` spec, ``lr_per_step`` array, or
  ``interpolated`` from ``point_lr``). ``version`` counts changes; appends are optimistic
  (``UPDATE ... WHERE version = :seen``, retried), which is safe across replicas.
  A run may continue another (``continues_run_id`` at the parent's step ``continues_at_step``,
  a continual pre-training branch), carry the ``domain`` its loss is measured on and the
  ``replay`` share of the parent's data in its batches; a run continued by others cannot be
  deleted before them (their fits read its rates).
- ``fits``: a fitted law: ``params``, the fitter's whole result, the options used.
- ``fit_runs``: per fit and run, a snapshot of what the fit saw (the run's version, its points,
  a hash of the learning rates), so appending to a run or deleting it later leaves the fit as
  it was. No foreign key to ``runs`` for that reason.
- ``api_keys``: API keys (``app/auth.py``): name, scopes, the SHA-256 of the token, revocation.
- ``jobs``: fits to run on workers (``app/jobs.py``): the request, status, lease, the fit made.

The schema is created and upgraded by Alembic migrations (``app/migrations/``) at start
(``create_schema``) or by ``losscast db upgrade``. Databases made before migrations (schema
version 2, or version 1 without ``runs.group_name``) are brought to version 2 and stamped with the
first revision, which creates exactly that schema, before the later revisions run.
Nothing here knows HTTP or numerics beyond encoding arrays.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from app.domain import json_safe
from app.errors import Conflict, NotFound

MAX_APPEND_RETRIES = 20
FIT_CACHE_SIZE = 256  # fits (without their run snapshots) kept in memory


# ---------------------------------------------------------------------------------------------
# Array encoding.


def encode_floats(values: np.ndarray | None) -> bytes | None:
    if values is None:
        return None
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def decode_floats(blob: bytes | None) -> np.ndarray | None:
    if blob is None:
        return None
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def encode_ints(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i8").tobytes()


def decode_ints(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<i8").astype(np.int64)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------
# Tables.


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    group: Mapped[str | None] = mapped_column("group_name", String(256), index=True, nullable=True)
    meta: Mapped[dict] = mapped_column("metadata", JSON)
    lr_source: Mapped[str] = mapped_column(String(16))
    schedule: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    lr_per_step: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    loss: Mapped[bytes] = mapped_column(LargeBinary)
    point_lr: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    num_points: Mapped[int] = mapped_column(Integer)
    first_step: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer)
    total_steps: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    domain: Mapped[str | None] = mapped_column(String(256), index=True, nullable=True)
    continues_run_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    continues_at_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    replay: Mapped[float] = mapped_column(Float, server_default="0")


class FitRow(Base):
    __tablename__ = "fits"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    law: Mapped[str] = mapped_column(String(64), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    converged: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON)
    run_ids: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class FitRunRow(Base):
    __tablename__ = "fit_runs"

    fit_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("fits.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    lr_source: Mapped[str] = mapped_column(String(16))
    total_steps: Mapped[int] = mapped_column(Integer)
    lr_sha256: Mapped[str] = mapped_column(String(64))
    points_sha256: Mapped[str] = mapped_column(String(64))
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    loss: Mapped[bytes] = mapped_column(LargeBinary)


class ApiKeyRow(Base):
    """An API key: its scopes and the SHA-256 of its token (the token itself is never stored)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    scopes: Mapped[list] = mapped_column(JSON)
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobRow(Base):
    """A fit to run on a worker (``app/jobs.py``): queued, running under a lease, done or failed."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict] = mapped_column(JSON)
    fit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the fit's stage
    attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# ---------------------------------------------------------------------------------------------
# Records handed to the rest of the service (plain data, arrays decoded).


@dataclass
class NewRun:
    name: str
    metadata: dict
    lr_source: str  # "schedule" | "lr_per_step" | "interpolated"
    schedule: dict | None
    lr_per_step: np.ndarray | None
    steps: np.ndarray
    loss: np.ndarray
    point_lr: np.ndarray | None
    total_steps: int
    group: str | None = None  # runs of the same model, data and optimiser
    domain: str | None = None  # the data its loss is measured on
    continues_run_id: str | None = None  # the run it branched from ...
    continues_at_step: int | None = None  # ... at that run's step
    replay: float = 0.0  # share of the parent's data in its batches


@dataclass
class RunSummary:
    id: str
    name: str
    group: str | None
    metadata: dict
    lr_source: str
    schedule: dict | None
    num_points: int
    first_step: int
    last_step: int
    total_steps: int
    version: int
    created_at: datetime
    updated_at: datetime
    domain: str | None = None
    continues_run_id: str | None = None
    continues_at_step: int | None = None
    replay: float = 0.0


@dataclass
class RunRecord(RunSummary):
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    point_lr: np.ndarray | None = None
    lr_per_step: np.ndarray | None = None


@dataclass
class PointsUpdate:
    """New point arrays for a run (the whole arrays after an append)."""

    steps: np.ndarray
    loss: np.ndarray
    point_lr: np.ndarray | None
    total_steps: int


@dataclass
class FitRunSnapshot:
    run_id: str
    name: str
    version: int
    lr_source: str
    total_steps: int
    lr_sha256: str
    points_sha256: str
    steps: np.ndarray
    loss: np.ndarray


@dataclass
class NewFit:
    law: str
    params: dict[str, float]
    converged: bool
    result: dict
    options: dict
    runs: list[FitRunSnapshot]


@dataclass
class FitRecord:
    id: str
    law: str
    params: dict[str, float]
    converged: bool
    result: dict
    options: dict
    run_ids: list[str]
    created_at: datetime
    runs: list[FitRunSnapshot] | None = None  # loaded by get_fit only


@dataclass
class ApiKeyRecord:
    id: str
    name: str
    scopes: list[str]
    token_sha256: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass
class JobRecord:
    id: str
    kind: str
    status: str  # "queued" | "running" | "done" | "failed"
    request: dict
    fit_id: str | None
    error: dict | None
    attempts: int
    worker: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: dict | None = None  # the stage its fit is at (app.policy.FIT_STAGES)


def _api_key_record(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        scopes=list(row.scopes),
        token_sha256=row.token_sha256,
        created_at=_utc(row.created_at),
        revoked_at=_utc(row.revoked_at) if row.revoked_at else None,
    )


def _summary(row: RunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "group": row.group,
        "metadata": row.meta or {},
        "lr_source": row.lr_source,
        "schedule": row.schedule,
        "num_points": row.num_points,
        "first_step": row.first_step,
        "last_step": row.last_step,
        "total_steps": row.total_steps,
        "version": row.version,
        "created_at": _utc(row.created_at),
        "updated_at": _utc(row.updated_at),
        "domain": row.domain,
        "continues_run_id": row.continues_run_id,
        "continues_at_step": row.continues_at_step,
        "replay": float(row.replay or 0.0),
    }


def _run_record(row: RunRow) -> RunRecord:
    return RunRecord(
        **_summary(row),
        steps=decode_ints(row.steps),
        loss=decode_floats(row.loss),
        point_lr=decode_floats(row.point_lr),
        lr_per_step=decode_floats(row.lr_per_step),
    )


def unsaved_run(run: NewRun, run_id: str) -> RunRecord:
    """The record ``run`` would have once stored, without a database (the CLI's in-process
    fits)."""
    return _run_record(_new_row(run, run_id))


def _new_row(run: NewRun, run_id: str) -> RunRow:
    now = _now()
    return RunRow(
        id=run_id,
        name=run.name,
        group=run.group,
        meta=json_safe(run.metadata),
        lr_source=run.lr_source,
        schedule=json_safe(run.schedule),
        lr_per_step=encode_floats(run.lr_per_step),
        steps=encode_ints(run.steps),
        loss=encode_floats(run.loss),
        point_lr=encode_floats(run.point_lr),
        num_points=int(run.steps.size),
        first_step=int(run.steps[0]),
        last_step=int(run.steps[-1]),
        total_steps=int(run.total_steps),
        version=1,
        created_at=now,
        updated_at=now,
        domain=run.domain,
        continues_run_id=run.continues_run_id,
        continues_at_step=run.continues_at_step,
        replay=float(run.replay),
    )


def unsaved_fit(law: str, result: dict, options: dict, run_ids: Sequence[str]) -> FitRecord:
    """The record of a fit that is not stored (the CLI's in-process fits): no id."""
    return FitRecord(
        id=None,
        law=law,
        params=dict(result["params"]),
        converged=bool(result["converged"]),
        result=result,
        options=options,
        run_ids=list(run_ids),
        created_at=_now(),
    )


def _fit_record(row: FitRow, snapshots: Sequence[FitRunRow] | None = None) -> FitRecord:
    runs = None
    if snapshots is not None:
        runs = [
            FitRunSnapshot(
                run_id=s.run_id,
                name=s.name,
                version=s.version,
                lr_source=s.lr_source,
                total_steps=s.total_steps,
                lr_sha256=s.lr_sha256,
                points_sha256=s.points_sha256,
                steps=decode_ints(s.steps),
                loss=decode_floats(s.loss),
            )
            for s in sorted(snapshots, key=lambda s: s.position)
        ]
    return FitRecord(
        id=row.id,
        law=row.law,
        params=dict(row.params),
        converged=bool(row.converged),
        result=dict(row.result),
        options=dict(row.options),
        run_ids=list(row.run_ids),
        created_at=_utc(row.created_at),
        runs=runs,
    )


def _fit_rows(fit: NewFit) -> tuple[FitRow, list[FitRunRow]]:
    row = FitRow(
        id=new_id("fit"),
        law=fit.law,
        params=json_safe(fit.params),
        converged=bool(fit.converged),
        result=json_safe(fit.result),
        options=json_safe(fit.options),
        run_ids=[s.run_id for s in fit.runs],
        created_at=_now(),
    )
    snapshots = [
        FitRunRow(
            fit_id=row.id,
            position=i,
            run_id=s.run_id,
            name=s.name,
            version=s.version,
            lr_source=s.lr_source,
            total_steps=s.total_steps,
            lr_sha256=s.lr_sha256,
            points_sha256=s.points_sha256,
            steps=encode_ints(s.steps),
            loss=encode_floats(s.loss),
        )
        for i, s in enumerate(fit.runs)
    ]
    return row, snapshots


def _job_record(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        kind=row.kind,
        status=row.status,
        request=dict(row.request),
        fit_id=row.fit_id,
        error=row.error,
        attempts=row.attempts,
        worker=row.worker,
        lease_expires_at=_utc(row.lease_expires_at) if row.lease_expires_at else None,
        created_at=_utc(row.created_at),
        started_at=_utc(row.started_at) if row.started_at else None,
        finished_at=_utc(row.finished_at) if row.finished_at else None,
        progress=row.progress,
    )


# ---------------------------------------------------------------------------------------------
# The store.


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite files in WAL mode with full sync."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection, _record):
        cursor = connection.cursor()
        # WAL lets readers proceed during a write; FULL syncs the WAL at every commit, so an
        # acknowledged write is on disk before the response leaves.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


SCHEMA_LOCK = 0x6C6F7373  # PostgreSQL advisory lock key held while the schema is upgraded
FIRST_REVISION = "0001"  # the schema as it shipped before migrations


def _alembic_config(connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "app:migrations")
    config.attributes["connection"] = connection
    return config


def _adopt_unversioned(connection, config: AlembicConfig) -> None:
    """A database made before migrations (tables, no ``alembic_version``) is stamped with the
    first revision, which is its schema; one of schema version 1 first gains ``runs.group_name``
    (as the code of that time did at start)."""
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables or "runs" not in tables:
        return
    if "group_name" not in {c["name"] for c in inspect(connection).get_columns("runs")}:
        connection.execute(text("ALTER TABLE runs ADD COLUMN group_name VARCHAR(256)"))
        connection.execute(text("CREATE INDEX ix_runs_group_name ON runs (group_name)"))
    alembic_command.stamp(config, FIRST_REVISION)


def _found(session, model, key: str, noun: str):
    """The row of ``model`` with primary key ``key``; NotFound (a 404) naming the ``noun``."""
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"{noun} {key!r} not found")
    return row


class Store:
    """Runs and fits in the database at ``url``; each method is one transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._fit_cache: OrderedDict[str, FitRecord] = OrderedDict()
        self._fit_cache_lock = threading.Lock()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Create or upgrade the schema to the newest migration, in one transaction.

        On PostgreSQL an advisory lock makes replicas that start together take turns: the
        first upgrades, the others find the schema current.
        """
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            config = _alembic_config(connection)
            _adopt_unversioned(connection, config)
            alembic_command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The migration the database is at (None: not created)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def drop_schema(self) -> None:
        """For tests: remove every table, the migrations' record too."""
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self._sessions() as session:
            session.execute(select(1))

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> RunRecord:
        row = _new_row(run, new_id("run"))
        with self._sessions.begin() as session:
            session.add(row)
        return _run_record(row)

    def get_run(self, run_id: str) -> RunRecord:
        with self._sessions() as session:
            row = _found(session, RunRow, run_id, "run")
            return _run_record(row)

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """The runs in the order asked, read in one transaction (a consistent view)."""
        with self._sessions() as session:
            rows = {
                row.id: row
                for row in session.scalars(select(RunRow).where(RunRow.id.in_(set(run_ids))))
            }
            missing = [run_id for run_id in run_ids if run_id not in rows]
            if missing:
                raise NotFound(f"run(s) not found: {missing}")
            return [_run_record(rows[run_id]) for run_id in run_ids]

    def list_runs(
        self,
        *,
        name: str | None = None,
        name_contains: str | None = None,
        group: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
        domain: str | None = None,
        continues: str | None = None,
    ) -> tuple[list[RunSummary], int]:
        """Runs, newest first, filtered by exact name, name substring, group, domain, the run
        they continue and metadata equality; returns one page and the total number that
        match."""
        columns = [c for c in RunRow.__table__.columns if not isinstance(c.type, LargeBinary)]
        query = select(*columns).order_by(RunRow.created_at.desc(), RunRow.id)
        if name is not None:
            query = query.where(RunRow.name == name)
        if name_contains:
            query = query.where(RunRow.name.contains(name_contains, autoescape=True))
        if group is not None:
            query = query.where(RunRow.group == group)
        if domain is not None:
            query = query.where(RunRow.domain == domain)
        if continues is not None:
            query = query.where(RunRow.continues_run_id == continues)
        with self._sessions() as session:
            if not metadata:
                total = session.scalar(select(func.count()).select_from(query.subquery()))
                rows = session.execute(query.limit(limit).offset(offset)).all()
                return [self._summary_of(row) for row in rows], int(total or 0)
            # JSON queries differ between SQLite and PostgreSQL: filter metadata here.
            rows = [
                row
                for row in session.execute(query).all()
                if all((row._mapping["metadata"] or {}).get(k) == v for k, v in metadata.items())
            ]
            return [self._summary_of(row) for row in rows[offset : offset + limit]], len(rows)

    @staticmethod
    def _summary_of(row) -> RunSummary:
        values = row._asdict()
        values["meta"] = values.pop("metadata")
        values["group"] = values.pop("group_name")
        return RunSummary(**_summary(RunRow(**values)))

    def update_points(self, run_id: str, merge: Callable[[RunRecord], PointsUpdate | None]):
        """Replace a run's points with ``merge(current)`` (None: nothing to change).

        Optimistic: the update applies only if nobody changed the run since it was read, else
        it is read and merged again. Returns the stored record after the update.
        """
        for _ in range(MAX_APPEND_RETRIES):
            current = self.get_run(run_id)
            change = merge(current)
            if change is None:
                return current
            with self._sessions.begin() as session:
                done = session.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id, RunRow.version == current.version)
                    .values(
                        steps=encode_ints(change.steps),
                        loss=encode_floats(change.loss),
                        point_lr=encode_floats(change.point_lr),
                        num_points=int(change.steps.size),
                        first_step=int(change.steps[0]),
                        last_step=int(change.steps[-1]),
                        total_steps=int(change.total_steps),
                        version=current.version + 1,
                        updated_at=_now(),
                    )
                )
                if done.rowcount == 1:
                    break
        else:
            raise Conflict(f"run {run_id!r} kept changing while points were appended; retry")
        return self.get_run(run_id)

    def delete_run(self, run_id: str) -> None:
        """Delete a run; a Conflict (409) while other runs continue it (their fits and
        predictions read its rates up to the branch)."""
        with self._sessions.begin() as session:
            row = _found(session, RunRow, run_id, "run")
            children = session.scalars(
                select(RunRow.id).where(RunRow.continues_run_id == run_id).limit(5)
            ).all()
            if children:
                raise Conflict(
                    f"run {run_id!r} is continued by run(s) {list(children)}: delete them first"
                )
            session.delete(row)

    # -- fits ------------------------------------------------------------------------------

    def create_fit(self, fit: NewFit) -> FitRecord:
        row, snapshots = _fit_rows(fit)
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()  # the fit before its snapshots (foreign key)
            session.add_all(snapshots)
        return _fit_record(row, snapshots)

    def get_fit(self, fit_id: str, *, with_runs: bool = True) -> FitRecord:
        """The fit; ``with_runs`` also loads what it saw of each run (its points).

        Fits never change once stored, so the light form (without runs) is kept in a small
        in-process cache: a dashboard polling predictions of one fit does not hit the database.
        """
        if not with_runs:
            with self._fit_cache_lock:
                cached = self._fit_cache.get(fit_id)
                if cached is not None:
                    self._fit_cache.move_to_end(fit_id)
                    return copy.deepcopy(cached)
        with self._sessions() as session:
            row = _found(session, FitRow, fit_id, "fit")
            if not with_runs:
                record = _fit_record(row)
                with self._fit_cache_lock:
                    self._fit_cache[fit_id] = copy.deepcopy(record)
                    while len(self._fit_cache) > FIT_CACHE_SIZE:
                        self._fit_cache.popitem(last=False)
                return record
            snapshots = session.scalars(select(FitRunRow).where(FitRunRow.fit_id == fit_id)).all()
            return _fit_record(row, snapshots)

    def list_fits(
        self,
        *,
        run_id: str | None = None,
        law: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[FitRecord], int]:
        """Fits, newest first, optionally those of one run or one law; one page and the total."""
        query = select(FitRow).order_by(FitRow.created_at.desc(), FitRow.id)
        if run_id is not None:
            query = query.where(
                FitRow.id.in_(select(FitRunRow.fit_id).where(FitRunRow.run_id == run_id))
            )
        if law is not None:
            query = query.where(FitRow.law == law)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [_fit_record(row) for row in rows], int(total or 0)

    def group_run_ids(self, group: str, limit: int) -> list[str]:
        """The ids of a group's runs, newest first, at most ``limit``."""
        query = (
            select(RunRow.id)
            .where(RunRow.group == group)
            .order_by(RunRow.created_at.desc(), RunRow.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def latest_fit_for_run(self, run_id: str) -> FitRecord | None:
        fits, _ = self.list_fits(run_id=run_id, limit=1)
        return fits[0] if fits else None

    # -- API keys (app/auth.py makes and checks the tokens) ---------------------------------

    def add_api_key(self, key_id: str, name: str, scopes: Sequence[str], token_sha256: str):
        row = ApiKeyRow(
            id=key_id,
            name=name,
            scopes=list(scopes),
            token_sha256=token_sha256,
            created_at=_now(),
            revoked_at=None,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return _api_key_record(row)

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            return _api_key_record(row) if row is not None else None

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        with self._sessions() as session:
            return [_api_key_record(row) for row in session.scalars(query)]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (kept, so that the service stays closed once it had keys)."""
        with self._sessions.begin() as session:
            row = _found(session, ApiKeyRow, key_id, "API key")
            if row.revoked_at is None:
                row.revoked_at = _now()
            return _api_key_record(row)

    def api_keys_configured(self) -> bool:
        """Whether a key was ever made (revoked ones count: revoking the last key must not open
        the service to anyone)."""
        with self._sessions() as session:
            return session.scalar(select(ApiKeyRow.id).limit(1)) is not None

    # -- jobs (app/jobs.py runs them) -------------------------------------------------------

    def enqueue_job(self, kind: str, request: dict) -> JobRecord:
        row = JobRow(
            id=new_id("job"),
            kind=kind,
            status="queued",
            request=json_safe(request),
            attempts=0,
            created_at=_now(),
        )
        with self._sessions.begin() as session:
            session.add(row)
        return _job_record(row)

    def start_job(
        self,
        kind: str,
        request: dict,
        worker: str,
        lease_seconds: float,
        started_at: datetime | None = None,
        progress: dict | None = None,
    ) -> JobRecord:
        """A job that is running already, under ``worker``'s lease (a synchronous fit past its
        time limit, ``app.jobs.SyncFit``): claimed once, as if a worker had queued and claimed
        it at once; another worker claims it again only if the lease runs out."""
        now = _now()
        row = JobRow(
            id=new_id("job"),
            kind=kind,
            status="running",
            request=json_safe(request),
            attempts=1,
            worker=worker,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            created_at=started_at or now,  # the fit began with its request
            started_at=started_at or now,
            progress=progress,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return _job_record(row)

    def get_job(self, job_id: str) -> JobRecord:
        with self._sessions() as session:
            row = _found(session, JobRow, job_id, "job")
            return _job_record(row)

    def claim_job(self, worker: str, lease_seconds: float, max_attempts: int) -> JobRecord | None:
        """The oldest job that is queued, or running under a lease that expired (its worker
        died), now running under ``worker``'s lease; None when there is none.

        PostgreSQL hands each row to one worker (``FOR UPDATE SKIP LOCKED``: the others skip
        it and take the next); SQLite has one writer at a time, and the update below applies
        only if the row is as it was read. A job claimed ``max_attempts`` times already fails
        instead (a fit that kills its worker every time is not retried for ever).
        """
        now = _now()
        claimable = (JobRow.status == "queued") | (
            (JobRow.status == "running") & (JobRow.lease_expires_at < now)
        )
        query = (
            select(JobRow)
            .where(claimable)
            .order_by(JobRow.created_at, JobRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        for _ in range(MAX_APPEND_RETRIES):
            with self._sessions.begin() as session:
                row = session.scalars(query).first()
                if row is None:
                    return None
                seen = (row.status, row.attempts)
                if row.attempts >= max_attempts:
                    values = {
                        "status": "failed",
                        "finished_at": now,
                        "error": {
                            "type": "worker_lost",
                            "msg": f"the job's worker stopped {row.attempts} times; not retried",
                        },
                    }
                else:
                    values = {
                        "status": "running",
                        "worker": worker,
                        "attempts": row.attempts + 1,
                        "lease_expires_at": now + timedelta(seconds=lease_seconds),
                        "started_at": now,
                        "progress": None,  # a new attempt starts over
                    }
                done = session.execute(
                    update(JobRow)
                    .where(JobRow.id == row.id, JobRow.status == seen[0])
                    .where(JobRow.attempts == seen[1])
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:
                    continue  # another worker took it between the read and the update
                if values["status"] == "failed":
                    continue
                session.expire(row)
                return _job_record(session.get(JobRow, row.id))
        return None

    def renew_lease(self, job_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s lease on a running job; False when it is not the worker's any
        more (its lease expired and another worker took the job)."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
                .values(lease_expires_at=_now() + timedelta(seconds=lease_seconds))
            )
            return done.rowcount == 1

    def report_progress(self, job_id: str, worker: str, progress: dict) -> bool:
        """Record how far ``worker``'s running job has come (``progress``, JSON); False when the
        job is not the worker's any more."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
                .values(progress=json_safe(progress))
            )
            return done.rowcount == 1

    def complete_job(self, job_id: str, worker: str, fit: NewFit) -> FitRecord | None:
        """Store ``fit`` and mark the job done, in one transaction, if the job is still
        ``worker``'s; None (nothing stored) if another worker took it over. So a fit is stored
        once, whichever worker finishes first."""
        row, snapshots = _fit_rows(fit)
        with self._sessions.begin() as session:
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
                .values(status="done", fit_id=row.id, finished_at=_now(), lease_expires_at=None)
            )
            if done.rowcount != 1:
                return None
            session.add(row)
            session.flush()
            session.add_all(snapshots)
        return _fit_record(row, snapshots)

    def fail_job(self, job_id: str, worker: str, error: dict) -> bool:
        """Mark ``worker``'s running job failed with ``error`` (the error body's item)."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
                .values(
                    status="failed",
                    error=json_safe(error, unknown=str),
                    finished_at=_now(),
                    lease_expires_at=None,
                )
            )
            return done.rowcount == 1

    def count_jobs(self) -> dict[str, int]:
        """Jobs by status (for /metrics: the queue's depth)."""
        query = select(JobRow.status, func.count()).group_by(JobRow.status)
        with self._sessions() as session:
            return {status: int(count) for status, count in session.execute(query)}
