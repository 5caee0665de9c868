"""The real curves shipped in tests/data (Luo et al. 2025, MIT; see tests/data/mpl/NOTICE)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from fitting.fit import Run
from fitting.schedules import learning_rates

DATA = Path(__file__).parent / "data" / "mpl"
SIZES = ("25M", "400M")
FITTING = ("cosine_24000", "constant_24000", "wsdcon_9")
HELD_OUT = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)


@cache
def schedule_specs() -> dict[str, dict]:
    return json.loads((DATA / "schedules.json").read_text())


@cache
def load_run(size: str, name: str) -> Run:
    """One logged curve with its per-step learning rate rebuilt from its schedule spec."""
    table = np.loadtxt(DATA / size / f"{name}.csv", delimiter=",", skiprows=1)
    steps = table[:, 0].astype(np.int64)
    return Run(learning_rates(schedule_specs()[name]), steps, table[:, 2], name)
