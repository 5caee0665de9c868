"""For tests of what reads the store without the HTTP layer (workers, jobs): runs stored
straight through :class:`app.storage.Store`, and ``losscast worker`` processes on a database."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from app.schemas import SMALL_RUN
from app.storage import NewRun, RunRecord, Store


def store_small_run(store: Store) -> RunRecord:
    """The OpenAPI example's small run (:data:`app.schemas.SMALL_RUN`), stored in ``store``."""
    return store.create_run(
        NewRun(
            name=SMALL_RUN["name"],
            metadata={},
            lr_source="schedule",
            schedule=SMALL_RUN["schedule"],
            lr_per_step=None,
            steps=np.array(SMALL_RUN["points"]["step"]),
            loss=np.array(SMALL_RUN["points"]["loss"]),
            point_lr=None,
            total_steps=SMALL_RUN["schedule"]["total_steps"],
        )
    )


def worker_process(url: str, jax_cache_dir: str, name: str, *extra: str, **env: str):
    """A ``losscast worker`` process named ``name`` on the database ``url`` (its output
    discarded), with JAX's compilation cache in ``jax_cache_dir``, the options ``extra`` and the
    environment variables ``env`` added to this process's."""
    command = [sys.executable, "-m", "losscast_cli", "worker", "--database-url", url]
    return subprocess.Popen(
        [*command, "--name", name, *extra],
        env={**os.environ, "LOSSCAST_JAX_CACHE_DIR": jax_cache_dir, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
