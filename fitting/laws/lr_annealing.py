"""The LR-annealing law of Tissue et al. 2024 ("Scaling Law with Learning Rate Annealing",
arXiv 2408.11029):

.. math::

    L(s) = L_0 + A \\, S_1(s)^{-\\alpha} - C \\, S_2(s)

with the forward area ``S1`` and the annealing area ``S2`` of :mod:`fitting.areas`. The decay
``lambda`` of the annealing momentum is a parameter: its memory ``1/(1 - lambda)`` steps must be
short next to the run (0.999, the paper's value, suits runs of tens of thousands of steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fitting.areas import forward_and_annealing_areas
from fitting.laws import Law, Parameter
from fitting.schedules import warmup_steps_of

PAPER_DECAY = 0.999
MAX_MEMORY_FRACTION = 0.1  # the momentum's memory 1/(1 - decay) is at most this share of a run
MIN_DROP_FRACTION = 0.1  # a drop of the rate by this share of its peak makes decay identifiable


def predict(params: jax.Array, lr: jax.Array, steps: jax.Array, ramp_end: jax.Array) -> jax.Array:
    """``L0 + A * S1**(-alpha) - C * S2`` at ``steps``; ``params = (L0, A, alpha, C, decay)``."""
    l0, a, alpha, c, decay = (params[i] for i in range(5))
    s1, s2 = forward_and_annealing_areas(lr, steps, decay, ramp_end)  # one read of the schedule
    return l0 + a * jnp.power(jnp.maximum(s1, 1e-30), -alpha) - c * s2


def decay_bounds(
    schedules: Sequence[np.ndarray], logged_steps: Sequence[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """Bounds on ``decay`` that the fitting runs impose.

    The memory ``1/(1 - decay)`` may not exceed :data:`MAX_MEMORY_FRACTION` of the longest logged
    run (0.999 is right for tens of thousands of steps, badly wrong for a few thousand). The
    decay is only identifiable when some run's rate drops after its peak by at least
    :data:`MIN_DROP_FRACTION` of the peak before its last logged point; otherwise it is fixed at
    the paper's 0.999, capped by the same memory bound.
    """
    longest = max(int(steps[-1]) + 1 for steps in logged_steps)
    upper = min(LR_ANNEALING_DECAY_UPPER, 1.0 - 1.0 / (MAX_MEMORY_FRACTION * longest))
    upper = max(upper, LR_ANNEALING_DECAY_LOWER)
    identifiable = False
    for lr, steps in zip(schedules, logged_steps, strict=True):
        peak_at = warmup_steps_of(lr)
        seen = lr[peak_at : int(steps[-1]) + 1]
        if seen.size and lr[peak_at] - seen.min() >= MIN_DROP_FRACTION * lr[peak_at]:
            identifiable = True
    if not identifiable:
        value = min(PAPER_DECAY, upper)
        return {"decay": (value, value)}
    return {"decay": (LR_ANNEALING_DECAY_LOWER, upper)}


LR_ANNEALING_DECAY_LOWER, LR_ANNEALING_DECAY_UPPER = 0.9, 0.99999

LR_ANNEALING = Law(
    name="lr_annealing",
    formula="L(s) = L0 + A*S1(s)^(-alpha) - C*S2(s)",
    parameters=(
        Parameter("L0", 0.0, 20.0, linear=True, doc="irreducible loss"),
        Parameter("A", 1e-6, 1e3, "log", linear=True, doc="scale of the power-law term"),
        Parameter("alpha", 0.01, 3.0, starts=(0.15, 0.3, 0.45, 0.6, 0.8, 1.1), doc="exponent"),
        Parameter("C", 1e-6, 1e6, "log", linear=True, doc="weight of the annealing area"),
        Parameter(
            "decay",
            LR_ANNEALING_DECAY_LOWER,
            LR_ANNEALING_DECAY_UPPER,
            "log1m",
            starts=(0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995),
            doc="decay lambda of the annealing momentum",
        ),
    ),
    predict=predict,
    data_bounds=decay_bounds,
)
