"""The service's configuration, read from the environment once at start (nothing else reads it).

- ``HOST`` (``127.0.0.1``), ``PORT`` (``8000``): where ``make serve`` listens.
- ``DATABASE_URL`` (``sqlite:///./var/losscast.db``): a SQLAlchemy URL; PostgreSQL as
  ``postgresql+psycopg://user:password@host:5432/dbname``.
- ``MAX_BODY_BYTES`` (``67108864``, 64 MiB): larger request bodies get 413.
- ``LOSSCAST_WARMUP`` (``1``): ``0`` skips the JIT warm-up (then /healthz is 200 at once, and
  the first requests of each shape compile).
- ``LOSSCAST_WARMUP_LAWS`` (``lr_annealing``): comma-separated laws to warm up, or ``all``
  (each law's fit kernels take from ~10 s to minutes to compile on 2 cores).
- ``LOSSCAST_JAX_CACHE_DIR`` (``./var/jax-cache``): JAX's persistent compilation cache, which
  makes a restart's warm-up several times faster; empty to disable.
- ``LOSSCAST_COMPUTE_THREADS`` (``2``): predictions that run at once; more wait. Fits run one
  at a time whatever this says (see ``app.deps.Compute``).
- ``LOSSCAST_CURVE_MAX_AGE`` (``3600``): Cache-Control max-age, in seconds, of
  ``GET /v1/fits/{id}/curve`` (a fit never changes, so its curves do not either).
- ``LOG_LEVEL`` (``INFO``); ``LOSSCAST_LOG_FORMAT`` (``json``): one JSON object per line with
  the request id, or ``text``.
- ``LOSSCAST_PUBLIC_READS`` (``0``): once API keys exist (``losscast keys create``), reads need
  a ``read`` key; ``1`` lets anyone read (writes still need a ``write`` key).
- ``LOSSCAST_ALLOW_ANONYMOUS`` (``0``): with no API keys, the service refuses to start on an
  address other than loopback (``HOST``) unless this is ``1`` (anyone who reaches it may then
  write and delete).
- ``LOSSCAST_LOCAL_WORKER`` (on for SQLite, off otherwise): the server runs fit jobs
  (``Prefer: respond-async``) itself; with PostgreSQL, ``losscast worker`` processes do.
  ``LOSSCAST_JOB_LEASE`` (``30``): seconds a worker holds a job without renewing it before
  another may take it over; ``LOSSCAST_JOB_POLL`` (``1``): seconds between polls of an empty
  queue.
- ``LOSSCAST_WORKER_THREADS`` (``1``): the threads each ``losscast worker`` lets a fit use
  (XLA's CPU pool through ``NPROC``, BLAS/OpenMP through ``OMP_NUM_THREADS`` and its kin, set
  before JAX starts, unless already set); ``0`` leaves every library its own default (all the
  cores). One thread per worker lets N workers share N cores instead of each oversubscribing them.
- ``LOSSCAST_SYNC_FIT_SECONDS`` (``20``): the longest a synchronous ``POST /v1/fits`` (without
  ``Prefer: respond-async``) keeps the client waiting; a fit still running then is answered
  202 with its job (``Location``, ``Retry-After``) and ends as that job, in the same process
  (``app.jobs.SyncFit``). 20 s stays under the 30-60 s at which clients and proxies commonly
  give up on a request; a small fit takes well under a second once compiled.
- ``LOSSCAST_REFIT`` (``1``): appending points to a run in a group, or to one fitted before,
  schedules a background refit (``app/refits.py``); ``0`` turns that off.
- ``LOSSCAST_REFIT_DELAY`` (``10``): seconds a run must be quiet (no appends) before its refit;
  ``LOSSCAST_REFIT_MAX_WAIT`` (``120``): the most seconds a refit waits after the first append it
  answers; ``LOSSCAST_REFIT_MAX_PENDING`` (``1000``): the most runs waiting for one.

Request budgets (``app/budgets.py``): the most work one request may ask for, checked before any
of it is done; a request over one is a 422 (``type`` ``budget_exceeded``) naming the variable.

- ``LOSSCAST_MAX_PREDICTION_STEPS`` (``20000000``): the candidates' schedule lengths summed, of a
  prediction, a curve, and ``compare``/``budget`` plans. 32 candidates of 10,000,000 steps took
  30 s and 4-6 GB (about 1 s and 150 MB per 10M steps): 20M admits two of the longest schedules
  (``MAX_TOTAL_STEPS``) or a dashboard's 64 candidates of 100,000 steps (6.4M), and refuses
  those 32 (320M). A forecast predicts a stored run, bounded by ``LOSSCAST_MAX_RUN_STEPS``.
- ``LOSSCAST_MAX_PREDICTION_POINTS`` (``1000000``): the candidates' predicted points summed (each
  is 5 numbers of the answer): five dense 200,000-point curves, or 64 candidates of 15,000.
- ``LOSSCAST_MAX_RUN_POINTS`` (``1000000``): the points a run may store (after an append); a
  dense 200,000-step run has 200,000.
- ``LOSSCAST_MAX_RUN_STEPS`` (``10000000``, ``MAX_TOTAL_STEPS``): the length of a run's
  per-step learning rate, which every fit of the run builds; lower it to keep fits smaller.
- ``LOSSCAST_MAX_PLAN_STEPS`` (``200000000``): the schedule steps a plan evaluates: the
  cooldown grid (fractions x shapes x total_steps), a steps-to-target search (24 lengths per
  batch, up to max_steps), an optimisation (its cooldown grid and 2 x max_iterations
  evaluations of total_steps). The defaults of a 24,000-step frame need 2M to 50M.

A dense 200,000-step run posted as JSON with per-step ``lr``, ``loss`` and ``step`` arrays plus an
``lr_per_step`` array is about 4 x 200,000 numbers of ~20 characters, i.e. ~16 MB: the 64 MiB
default leaves room for that with a factor of four to spare.

``Settings()`` reads these variables (pydantic-settings); keywords win over them
(``Settings(database_url=..., warmup=False)`` in tests and benches). A value that is not of its
kind (``LOSSCAST_REFIT_DELAY=abc``, ``PORT=0``, ``LOSSCAST_WARMUP=maybe``) stops the start with
:class:`BadSettings`, which names each bad variable and its value. An empty integer or flag
means its default; an empty string stays empty (``LOSSCAST_JAX_CACHE_DIR=`` disables the cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/losscast.db"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: The request budgets' fields and their environment variables (``app/budgets.py`` names the
#: variable in a refusal).
BUDGET_VARIABLES = {
    "max_prediction_steps": "LOSSCAST_MAX_PREDICTION_STEPS",
    "max_prediction_points": "LOSSCAST_MAX_PREDICTION_POINTS",
    "max_run_points": "LOSSCAST_MAX_RUN_POINTS",
    "max_run_steps": "LOSSCAST_MAX_RUN_STEPS",
    "max_plan_steps": "LOSSCAST_MAX_PLAN_STEPS",
}


def _variable(name: str, default: Any, **constraints: Any) -> Any:
    """A field read from the environment variable ``name``; set by its field name as a keyword."""
    return Field(default, validation_alias=name, **constraints)


class BadSettings(ValueError):
    """The environment holds a value the service cannot use; the message names each variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, extra="ignore")

    host: str = _variable("HOST", "127.0.0.1")
    port: int = _variable("PORT", 8000, ge=1, le=65535)
    database_url: str = _variable("DATABASE_URL", DEFAULT_DATABASE_URL)
    max_body_bytes: int = _variable("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, ge=1)
    warmup: bool = _variable("LOSSCAST_WARMUP", True)
    warmup_laws: Annotated[tuple[str, ...], NoDecode] = _variable(
        "LOSSCAST_WARMUP_LAWS", ("lr_annealing",)
    )
    jax_cache_dir: str = _variable("LOSSCAST_JAX_CACHE_DIR", "./var/jax-cache")
    compute_threads: int = _variable("LOSSCAST_COMPUTE_THREADS", 2, ge=1)
    curve_max_age: int = _variable("LOSSCAST_CURVE_MAX_AGE", 3600, ge=0)
    log_level: str = _variable("LOG_LEVEL", "INFO")
    log_format: Literal["json", "text"] = _variable("LOSSCAST_LOG_FORMAT", "json")
    public_reads: bool = _variable("LOSSCAST_PUBLIC_READS", False)
    allow_anonymous: bool = _variable("LOSSCAST_ALLOW_ANONYMOUS", False)
    local_worker: bool | None = _variable("LOSSCAST_LOCAL_WORKER", None)
    job_lease: float = _variable("LOSSCAST_JOB_LEASE", 30.0, gt=0)
    job_poll: float = _variable("LOSSCAST_JOB_POLL", 1.0, gt=0)
    sync_fit_seconds: float = _variable("LOSSCAST_SYNC_FIT_SECONDS", 20.0, gt=0)
    worker_threads: int = _variable("LOSSCAST_WORKER_THREADS", 1, ge=0)
    refit: bool = _variable("LOSSCAST_REFIT", True)
    refit_delay: int = _variable("LOSSCAST_REFIT_DELAY", 10, ge=0)
    refit_max_wait: int = _variable("LOSSCAST_REFIT_MAX_WAIT", 120, ge=0)
    refit_max_pending: int = _variable("LOSSCAST_REFIT_MAX_PENDING", 1000, ge=1)
    max_prediction_steps: int = _variable(
        BUDGET_VARIABLES["max_prediction_steps"], 20_000_000, ge=1
    )
    max_prediction_points: int = _variable(
        BUDGET_VARIABLES["max_prediction_points"], 1_000_000, ge=1
    )
    max_run_points: int = _variable(BUDGET_VARIABLES["max_run_points"], 1_000_000, ge=1)
    max_run_steps: int = _variable(BUDGET_VARIABLES["max_run_steps"], 10_000_000, ge=1)
    max_plan_steps: int = _variable(BUDGET_VARIABLES["max_plan_steps"], 200_000_000, ge=1)

    @field_validator(
        "port",
        "max_body_bytes",
        "warmup",
        "compute_threads",
        "curve_max_age",
        "refit",
        "public_reads",
        "allow_anonymous",
        "local_worker",
        "job_lease",
        "job_poll",
        "sync_fit_seconds",
        "worker_threads",
        "refit_delay",
        "refit_max_wait",
        "refit_max_pending",
        *BUDGET_VARIABLES,
        mode="before",
    )
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        # `LOSSCAST_REFIT_DELAY=` in a shell or compose file means "not set", not "not a number".
        if isinstance(value, str) and not value.strip():
            raise PydanticUseDefault()
        return value

    @field_validator("warmup_laws", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``) alone; :class:`BadSettings` (a
        ValueError) names each bad variable and its value."""
        try:
            if environ is None:
                return cls()
            # model_validate skips BaseSettings.__init__, hence os.environ: `environ` alone.
            return cls.model_validate({name.upper(): value for name, value in environ.items()})
        except ValidationError as error:
            raise BadSettings(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in item['loc'])}={item['input']!r}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]
    return "bad environment variable(s): " + "; ".join(problems)
