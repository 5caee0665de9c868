"""The LR-annealing law of Tissue et al. 2024 ("Scaling Law with Learning Rate Annealing",
arXiv 2408.11029):

.. math::

    L(s) = L_0 + A \\, S_1(s)^{-\\alpha} - C \\, S_2(s)

with the forward area ``S1`` and the annealing area ``S2`` of :mod:`fitting.areas`. The decay
``lambda`` of the annealing momentum is a parameter: its memory ``1/(1 - lambda)`` steps must be
short next to the run (0.999, the paper's value, suits runs of tens of thousands of steps).
``C`` and ``decay`` are the law's annealing response: runs whose rate has not dropped do not
identify them, and a fit of such runs holds them at :func:`annealing_prior`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fitting.areas import forward_and_annealing_areas
from fitting.laws import Law, Parameter
from fitting.priors import (
    GAIN_LOG_SD,
    MEMORY_LOG_SD,
    MEMORY_SHARE,
    Prior,
    Reference,
    gain_of,
    gain_words,
)

MAX_MEMORY_FRACTION = 0.1  # the momentum's memory 1/(1 - decay) is at most this share of a run


def predict(params: jax.Array, lr: jax.Array, steps: jax.Array, ramp_end: jax.Array) -> jax.Array:
    """``L0 + A * S1**(-alpha) - C * S2`` at ``steps``; ``params = (L0, A, alpha, C, decay)``."""
    l0, a, alpha, c, decay = (params[i] for i in range(5))
    s1, s2 = forward_and_annealing_areas(lr, steps, decay, ramp_end)  # one read of the schedule
    return l0 + a * jnp.power(jnp.maximum(s1, 1e-30), -alpha) - c * s2


def decay_bounds(
    schedules: Sequence[np.ndarray], logged_steps: Sequence[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """Bounds on ``decay`` that the fitting runs impose: the memory ``1/(1 - decay)`` may not
    exceed :data:`MAX_MEMORY_FRACTION` of the longest logged run (0.999 is right for tens of
    thousands of steps, badly wrong for a few thousand). Runs that show no decay of the rate do
    not identify it at all; the fitter then holds it at :func:`annealing_prior`'s value."""
    del schedules
    longest = max(int(steps[-1]) + 1 for steps in logged_steps)
    upper = min(LR_ANNEALING_DECAY_UPPER, 1.0 - 1.0 / (MAX_MEMORY_FRACTION * longest))
    return {"decay": (LR_ANNEALING_DECAY_LOWER, max(upper, LR_ANNEALING_DECAY_LOWER))}


def annealing_prior(reference: Reference) -> Prior:
    """``C`` and ``decay`` at the prior's gain and memory (:mod:`fitting.priors`): the memory
    ``M = MEMORY_SHARE * length`` steps, ``decay = 1 - 1/M``, and ``C = gain / (M * peak_lr)``
    (a full anneal adds ``peak_lr * M`` to ``S2``). In fit coordinates ``log C = log gain -
    log M - log peak_lr`` and ``log(1 - decay) = -log M``, so their covariance is
    ``[[s_g^2 + s_m^2, s_m^2], [s_m^2, s_m^2]]``."""
    memory = float(
        np.clip(
            MEMORY_SHARE * reference.length,
            1.0 / (1.0 - LR_ANNEALING_DECAY_LOWER),
            1.0 / (1.0 - LR_ANNEALING_DECAY_UPPER),
        )
    )
    gain = gain_of(reference)
    s_g, s_m = GAIN_LOG_SD**2, MEMORY_LOG_SD**2
    return Prior(
        values={"C": gain / (memory * reference.peak_lr), "decay": 1.0 - 1.0 / memory},
        covariance=((s_g + s_m, s_m), (s_m, s_m)),
        summary=(
            f"{gain_words(reference)}; the momentum's memory is {MEMORY_SHARE:.0%} of the run "
            f"({memory:.0f} steps), within a factor {math.exp(MEMORY_LOG_SD):g}"
        ),
    )


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
    annealing=("C", "decay"),
    annealing_prior=annealing_prior,
)
