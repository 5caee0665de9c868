"""Runs stored straight through :class:`app.storage.Store`, for tests of what reads the store
(workers, jobs) without the HTTP layer."""

from __future__ import annotations

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
