"""Goodness-of-fit metrics of a predicted loss curve against logged losses (one definition each).

- ``r2``: 1 - SS_res / SS_tot.
- ``mae``: mean |pred - loss|;  ``rmse``: sqrt(mean (pred - loss)^2).
- ``pred_e``: mean |pred - loss| / loss  (PredE of Luo et al. 2025).
- ``worst_e``: max |pred - loss| / loss  (WorstE).
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("r2", "mae", "rmse", "pred_e", "worst_e")


def curve_metrics(predicted: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """The five metrics of ``predicted`` against ``loss`` (1-D arrays of equal length).

    >>> curve_metrics(np.array([2.0, 3.0]), np.array([2.0, 4.0]))["worst_e"]
    0.25
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    error = predicted - loss
    total = np.sum((loss - loss.mean()) ** 2)
    relative = np.abs(error) / loss
    return {
        "r2": float(1.0 - np.sum(error**2) / total) if total > 0 else float("nan"),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "pred_e": float(np.mean(relative)),
        "worst_e": float(np.max(relative)),
    }
