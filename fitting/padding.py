"""Shape buckets: pad arrays to a few sizes so that new curve lengths reuse compiled code.

Every distinct padded shape is one compiled executable per kernel and law, and each stays
loaded with hundreds of memory mappings (:mod:`fitting.compiled`): the set of shapes a server
meets must be small and fixed, whatever lengths its clients send. The fit and the prediction
kernels (:func:`fitting.fit.fit_law`, :func:`fitting.fit.predict_losses`, the Jacobian of
:mod:`fitting.intervals`) are padded to :func:`fit_shape` and :func:`prediction_shape`:

- schedule length: a power of two, at least :data:`MIN_LENGTH` (4,096) steps. Runs of 100 to
  200,000 steps map to 7 lengths (4,096 ... 262,144) where buckets of ``2**k`` and
  ``3 * 2**(k-1)`` made 23. The price: a schedule is padded to at most twice its length, 1.46x
  on average over log-spread lengths (1.2x before), and the work of a fit is proportional to the
  padded length. Below 4,096 steps a fit costs next to nothing whatever its padding, so the
  small runs share one shape.
- number of points: a power of two, at least :data:`MIN_POINTS` (64) for a fit (its value and
  gradient run hundreds of times, so the padding stays within 2x of the points), at least
  :data:`PREDICTION_MIN_POINTS` (512) for a prediction (run a few times per request): the
  service's curves of 300 points and a sparse run's logged steps then share one shape. Never
  more than the padded length (both are powers of two and a run's points are distinct steps).
- number of runs or candidates: a power of two, at least :data:`PREDICTION_MIN_COUNT` (2) for
  predictions, since a forecast is always two rows (the logged steps and the curve): the fit's
  own prediction of one run shares the forecast's shape.

So a session that fits and forecasts single runs of 100 to 200,000 steps, sparse or dense,
compiles each kernel for about 7 x 2 shapes per law, and one client's runs of similar length for
one. :func:`bucket_size` (steps of 1.5x) and :func:`schedule_length_bucket` stay for callers that
pad once for a kernel of their own (the planner).
"""

from __future__ import annotations

import numpy as np

from fitting.areas import BLOCK

MIN_LENGTH = 4096  # padded schedule length of a fit or prediction, at least (a multiple of BLOCK)
MIN_POINTS = 64  # padded points of a fit, at least
PREDICTION_MIN_POINTS = 512  # padded steps of a prediction, at least (holds 300-point curves)
PREDICTION_MIN_COUNT = 2  # padded candidates of a prediction, at least (a forecast's two rows)


def power_of_two_bucket(n: int, minimum: int = 1) -> int:
    """Smallest power of two ``>= max(n, minimum, 1)``.

    >>> [power_of_two_bucket(n) for n in (0, 1, 3, 64, 65)], power_of_two_bucket(3, 16)
    ([1, 1, 4, 64, 128], 16)
    """
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def length_bucket(length: int) -> int:
    """Padded schedule length of a fit or prediction: a power of two ``>= MIN_LENGTH`` steps.

    >>> [length_bucket(n) for n in (100, 4096, 4097, 200_000)]
    [4096, 4096, 8192, 262144]
    """
    return power_of_two_bucket(length, MIN_LENGTH)


def fit_shape(length: int, points: int, count: int) -> tuple[int, int, int]:
    """Padded ``(schedule length, points per run, runs)`` of a fit of ``count`` runs of at most
    ``length`` steps and ``points`` logged points."""
    return (
        length_bucket(length),
        power_of_two_bucket(points, MIN_POINTS),
        power_of_two_bucket(count),
    )


def prediction_shape(length: int, points: int, count: int) -> tuple[int, int, int]:
    """Padded ``(schedule length, steps per candidate, candidates)`` of a prediction of ``count``
    schedules of at most ``length`` steps at ``points`` steps each."""
    return (
        length_bucket(length),
        power_of_two_bucket(points, PREDICTION_MIN_POINTS),
        power_of_two_bucket(count, PREDICTION_MIN_COUNT),
    )


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
    """Padded length of a per-step schedule: a :func:`bucket_size` in whole blocks of the area
    kernel (finer than :func:`length_bucket`; for the planner's own kernel)."""
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
