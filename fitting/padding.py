"""Shape buckets: pad arrays to a few lengths so that new curve lengths reuse compiled code.

A bucket is the smallest size of the form ``2**k`` or ``3 * 2**(k-1)`` (…, 64, 96, 128, 192, …)
that holds the array, never below a minimum. Padding wastes at most a third of the work, and a
session that sees lengths from 1k to 100k steps compiles each kernel for about a dozen lengths.
"""

from __future__ import annotations

import numpy as np

from fitting.areas import BLOCK


def bucket_size(n: int, minimum: int = 1) -> int:
    """Smallest bucket ``>= max(n, minimum)``.

    >>> [bucket_size(n) for n in (1, 3, 5, 100, 129)]
    [1, 3, 6, 128, 192]
    """
    n = max(int(n), int(minimum), 1)
    size = 1
    while size < n:
        if size * 3 // 2 >= n and size >= 2:
            return size * 3 // 2
        size *= 2
    return size


def schedule_length_bucket(length: int) -> int:
    """Padded length of a per-step schedule: a bucket, in whole blocks of the area kernel."""
    return BLOCK * bucket_size(-(-length // BLOCK), minimum=2)


def pad_schedule(lr: np.ndarray, length: int) -> np.ndarray:
    """Right-pad ``lr`` to ``length`` by repeating its last rate (which leaves earlier areas as
    they are)."""
    return np.concatenate([lr, np.full(length - lr.shape[0], lr[-1])])


def pad_points(values: np.ndarray, length: int, fill: float = 0.0) -> np.ndarray:
    """Right-pad a vector of per-point values to ``length`` with ``fill``."""
    return np.concatenate([values, np.full(length - values.shape[0], fill, dtype=values.dtype)])


def stacked_schedules(schedules, length: int, count: int) -> np.ndarray:
    """``(count, length)`` array of the schedules, each right-padded with its last rate, the rows
    beyond ``len(schedules)`` copies of the first; built in one 64-byte-aligned buffer.

    XLA:CPU reads a suitably aligned numpy array in place, where a stacked or concatenated one is
    copied again: for 1000 schedules of 24k steps that copy costs more than the prediction.
    """
    buffer = np.empty(count * length + 8)
    start = (-buffer.ctypes.data % 64) // 8
    out = buffer[start : start + count * length].reshape(count, length)
    for row, lr in enumerate(schedules):
        out[row, : lr.size] = lr
        out[row, lr.size :] = lr[-1]
    out[len(schedules) :] = out[0]
    return out
