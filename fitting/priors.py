r"""What the fitted runs can and cannot identify, and the prior for what they cannot.

A law's *annealing response* -- how much loss a decay of the learning rate removes, and how fast
the loss follows it (``C`` and ``decay`` of ``lr_annealing``; ``B`` and the saturation of
``multi_power``) -- is identified by a run only once its rate has dropped. Before that (a job in
its warmup or stable phase, a constant-rate run) the data say nothing about a cooldown, and a fit
that estimates it anyway reads it from the warmup ramp's after-effect, which on real curves is a
poor guide (a WSD job cut in its stable phase, fitted alone, was 3% off with a band of ±0.06%).
Such a fit holds the response at a prior instead, says so, and its prediction band carries the
prior's width (:mod:`fitting.intervals`).

**Units that transfer.** The prior is stated in two dimensionless quantities:

- the *gain* of a full, slow anneal from the peak rate ``eta`` (the loss it removes) as a share
  of the loss level ``L``, per unit of peak rate: ``gain = k * eta * L``. For SGD-like noise the
  excess loss held up by a constant rate grows with the rate and with the loss (the steady-state
  excess of noisy descent on a quadratic is proportional to ``eta`` times the gradient noise,
  which scales with the loss), so ``k`` transfers across models and peak rates better than the
  gain itself. In the laws: ``C * eta / (1 - decay)`` for ``lr_annealing`` (a drop of the rate
  adds ``drop / (1 - decay)`` to ``S2`` once the momentum has caught up), ``B`` for
  ``multi_power`` (it is measured in units of the peak rate).
- the *memory* of the annealing momentum, ``1 / (1 - decay)`` steps, as a share of the run's
  declared length.

**Evidence** (fits of ``lr_annealing`` to whole runs; ``k`` from the gain and the loss at the end
of the runs): the MPL curves of Luo et al. 2025 (``../shared/data/mpl``, fitted on
``cosine_24000`` and ``constant_24000``): 25M ``k = 123``, memory 5.6% of the run (1,350 of 24,000
steps); 400M ``k = 203``, memory 2.2% (523 steps); the paper's own published 400M multi-power fit,
``B = 523`` per unit rate at a final loss of about 2.6, ``k = 201``; the tiny byte-level GPT of
``../shared/data/tinycpt`` (0.8M parameters, peak rate 3e-3, 1,400 steps, its ``base`` run):
``k = 90``, memory 4.4% (62 steps). Tissue et al. 2024 use a memory of 1,000 steps
(``decay = 0.999``) for runs of tens of thousands of steps (1-5%). The gain share itself ranges
from 3.7% to 27% over these models (its spread is what the division by the rate removes: 123,
203 and 90 are within a factor 2.3). Round values in the middle, a factor 2 wide (one standard
deviation of the logarithm): :data:`GAIN_PER_RATE` = 150 and :data:`MEMORY_SHARE` = 4%.

**What identifies it.** A run identifies the annealing response when, before its last logged
point, its rate has fallen below its peak by at least :data:`MIN_DROP_FRACTION` of the peak
(the warmup ramp does not count). Identification is per fit: one such run among the fitted runs
identifies the shared parameters for all of them (the point of fitting a running job together
with complete runs of the same model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fitting.schedules import warmup_steps_of

#: A drop of the rate by this share of its peak, before the last logged point, identifies the
#: annealing response.
MIN_DROP_FRACTION = 0.1
#: The gain of a full anneal, as a share of the loss, per unit of peak rate (see the docstring).
GAIN_PER_RATE = 150.0
#: The annealing momentum's memory ``1 / (1 - decay)`` as a share of the longest declared run.
MEMORY_SHARE = 0.04
#: Standard deviations of the logarithms of the gain and the memory: a factor 2 either way.
GAIN_LOG_SD = math.log(2.0)
MEMORY_LOG_SD = math.log(2.0)
#: Logged points at the end of a run whose median is its loss level.
LEVEL_POINTS = 5


@dataclass(frozen=True)
class Reference:
    """The scale of the fitted runs the prior is stated against.

    Attributes:
      peak_lr: the largest rate of any fitted run.
      loss: the loss level: the least, over the runs, of the median of their last
        :data:`LEVEL_POINTS` logged losses.
      length: the longest declared schedule, in steps.
    """

    peak_lr: float
    loss: float
    length: int


def reference_of(schedules: Sequence[np.ndarray], losses: Sequence[np.ndarray]) -> Reference:
    """The :class:`Reference` of runs with these per-step rates and logged losses."""
    return Reference(
        peak_lr=float(max(np.max(lr) for lr in schedules)),
        loss=float(min(np.median(loss[-LEVEL_POINTS:]) for loss in losses)),
        length=int(max(lr.size for lr in schedules)),
    )


def observed_drop(lr: np.ndarray, last_step: int) -> float:
    """How far the rate has fallen below its first peak by ``last_step``, as a share of the peak.

    >>> observed_drop(np.r_[np.linspace(0, 1, 5), np.ones(5), np.full(5, 0.5)], 9)
    0.0
    >>> observed_drop(np.r_[np.linspace(0, 1, 5), np.ones(5), np.full(5, 0.5)], 12)
    0.5
    """
    peak_at = warmup_steps_of(lr)
    peak = float(lr[peak_at])
    if not peak > 0 or last_step < peak_at:
        return 0.0
    return float((peak - np.min(lr[peak_at : last_step + 1])) / peak)


def identifies_annealing(lr: np.ndarray, last_step: int) -> bool:
    """Whether a run logged up to ``last_step`` has seen a drop of its rate that identifies the
    annealing response (:data:`MIN_DROP_FRACTION` of its peak)."""
    return observed_drop(lr, last_step) >= MIN_DROP_FRACTION


@dataclass(frozen=True)
class Prior:
    """A law's prior for its annealing response, for fits whose runs do not identify it.

    Attributes:
      values: the parameters it holds, at the prior's centre (natural values).
      covariance: the prior's covariance of those parameters in the law's fit coordinates, in
        the order of ``values``.
      summary: the prior in words, with its numbers for these runs.
    """

    values: dict[str, float]
    covariance: tuple[tuple[float, ...], ...]
    summary: str

    def to_dict(self) -> dict:
        return {
            "parameters": list(self.values),
            "values": dict(self.values),
            "covariance": [list(row) for row in self.covariance],
            "summary": self.summary,
        }


def gain_of(reference: Reference) -> float:
    """The prior's centre for the loss a full anneal from the peak removes, in loss units."""
    return GAIN_PER_RATE * reference.peak_lr * reference.loss


def gain_words(reference: Reference) -> str:
    share = GAIN_PER_RATE * reference.peak_lr
    return (
        f"a full anneal removes {GAIN_PER_RATE:g} x peak_lr of the loss ({share:.1%} of "
        f"{reference.loss:.4g} here), within a factor {math.exp(GAIN_LOG_SD):g}"
    )
