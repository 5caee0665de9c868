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
- ``LOG_LEVEL`` (``INFO``).
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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    warmup: bool = True
    warmup_laws: tuple[str, ...] = ("lr_annealing",)
    jax_cache_dir: str = "./var/jax-cache"
    compute_threads: int = 2
    curve_max_age: int = 3600
    log_level: str = "INFO"
    refit: bool = True
    refit_delay: int = 10
    refit_max_wait: int = 120
    refit_max_pending: int = 1000
    max_prediction_steps: int = 20_000_000
    max_prediction_points: int = 1_000_000
    max_run_points: int = 1_000_000
    max_run_steps: int = 10_000_000
    max_plan_steps: int = 200_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); ValueError names a bad variable."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            host=env.get("HOST", defaults.host),
            port=_integer(env, "PORT", defaults.port, 1),
            database_url=env.get("DATABASE_URL", defaults.database_url),
            max_body_bytes=_integer(env, "MAX_BODY_BYTES", defaults.max_body_bytes, 1),
            warmup=_flag(env, "LOSSCAST_WARMUP", defaults.warmup),
            warmup_laws=tuple(
                name.strip()
                for name in env.get("LOSSCAST_WARMUP_LAWS", ",".join(defaults.warmup_laws)).split(
                    ","
                )
                if name.strip()
            ),
            jax_cache_dir=env.get("LOSSCAST_JAX_CACHE_DIR", defaults.jax_cache_dir),
            compute_threads=_integer(env, "LOSSCAST_COMPUTE_THREADS", defaults.compute_threads, 1),
            curve_max_age=_integer(env, "LOSSCAST_CURVE_MAX_AGE", defaults.curve_max_age, 0),
            log_level=env.get("LOG_LEVEL", defaults.log_level).upper(),
            refit=_flag(env, "LOSSCAST_REFIT", defaults.refit),
            refit_delay=_integer(env, "LOSSCAST_REFIT_DELAY", defaults.refit_delay, 0),
            refit_max_wait=_integer(env, "LOSSCAST_REFIT_MAX_WAIT", defaults.refit_max_wait, 0),
            refit_max_pending=_integer(
                env, "LOSSCAST_REFIT_MAX_PENDING", defaults.refit_max_pending, 1
            ),
            **{
                field: _integer(env, variable, getattr(defaults, field), 1)
                for field, variable in BUDGET_VARIABLES.items()
            },
        )


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"environment variable {name} must be >= {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name} must be 0 or 1, got {raw!r}")
