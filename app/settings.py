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
