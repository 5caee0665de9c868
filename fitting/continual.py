r"""Runs that continue runs, on two domains, as the fitter's runs (pure functions).

A continual pre-training (CPT) curve is the loss on one *domain* (the *old* one the base run
trained on, or the *new* one of the continuation) along a whole history: the base run's updates,
then the continuation's, from the base's checkpoint at its last update. What a law of such curves
needs per update ``i`` of the history is its rate ``eta_i`` and the share ``p_i`` of the batch
drawn from the domain whose loss the curve is:

- old-domain curve: ``p_i = 1`` on the base, ``p_i = replay`` on the continuation;
- new-domain curve: ``p_i = 0`` on the base, ``p_i = 1 - replay`` on the continuation.

The fitter's :class:`fitting.fit.Run` holds one per-step array and the logged steps' indices
into it, and every caller (fit, cross-validation, bands, predictions, padding to shape buckets)
handles it without knowing a law. So a CPT history is stored in that one array, the two
channels interleaved,

.. math:: x_{2i} = \eta_i, \qquad x_{2i+1} = p_i,

and the loss logged after update ``i`` of the history at index ``2i + 1`` (the last entry of
the update's pair, so the fitter's check that a step lies within the array holds for the pair).
Padding on the right repeats the last entry, as for a schedule: it changes nothing at or before a
logged step. Only a law written for this layout (:mod:`fitting.laws.cpt`) may read such a run;
:func:`rates_and_shares` splits it back, inside a law, and :func:`history_steps` maps the indices.

Index convention (as :mod:`fitting.areas`): the base run's update ``k`` (1-based, as logged) is
history index ``k - 1``; the continuation's update ``s = 1 .. T`` is history index
``T_base - 1 + s``, and its step ``0`` (the checkpoint) is the base's last index ``T_base - 1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np

from fitting.errors import InvalidInput

if TYPE_CHECKING:  # imported where used: fitting.fit imports the laws, and fitting.laws.cpt us
    from fitting.fit import Run

DOMAINS = ("old", "new")


def _check_share(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise InvalidInput(f"{name} must lie in [0, 1), got {name}={value}")
    return value


def history_shares(base_length: int, length: int, domain: str, replay: float = 0.0) -> np.ndarray:
    """``p_i`` for a history of ``base_length`` base updates then ``length`` continuation ones.

    >>> history_shares(2, 3, "new", replay=0.25).tolist()
    [0.0, 0.0, 0.75, 0.75, 0.75]
    >>> history_shares(2, 1, "old", replay=0.25).tolist()
    [1.0, 1.0, 0.25]
    """
    if domain not in DOMAINS:
        raise InvalidInput(f"domain must be one of {DOMAINS}, got domain={domain!r}")
    replay = _check_share(replay, "replay")
    own_base, own_continuation = (1.0, replay) if domain == "old" else (0.0, 1.0 - replay)
    return np.r_[np.full(base_length, own_base), np.full(length, own_continuation)]


def continual_schedule(
    base_lr: np.ndarray, lr: np.ndarray = (), *, domain: str, replay: float = 0.0
) -> np.ndarray:
    """The interleaved history array ``x`` (see module docstring) of a base run's rates
    ``base_lr`` continued with ``lr`` (empty: the base run alone) for a curve on ``domain``.

    >>> continual_schedule(np.array([1.0, 2.0]), np.array([3.0]), domain="new").tolist()
    [1.0, 0.0, 2.0, 0.0, 3.0, 1.0]
    """
    base_lr = np.asarray(base_lr, dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    if base_lr.ndim != 1 or base_lr.size == 0 or lr.ndim != 1:
        raise InvalidInput(
            f"base_lr must be a non-empty 1-D array and lr a 1-D array, got shapes "
            f"{base_lr.shape} and {lr.shape}"
        )
    rates = np.r_[base_lr, lr]
    shares = history_shares(base_lr.size, lr.size, domain, replay)
    return np.stack([rates, shares], axis=-1).reshape(-1)


def history_index(base_length: int, steps: np.ndarray, *, continuation: bool) -> np.ndarray:
    """History indices of logged steps: base steps ``k`` (1-based) or continuation steps ``s``
    (0 = the checkpoint)."""
    steps = np.asarray(steps, dtype=np.int64)
    return steps - 1 if not continuation else base_length - 1 + steps


def continual_run(
    base_lr: np.ndarray,
    lr: np.ndarray,
    steps: np.ndarray,
    loss: np.ndarray,
    *,
    domain: str,
    replay: float = 0.0,
    name: str = "",
) -> Run:
    """A :class:`~fitting.fit.Run` of a CPT curve: the loss on ``domain`` logged at ``steps``.

    Args:
      base_lr: the base run's per-update rates (its whole schedule, up to the branch point).
      lr: the continuation's per-update rates (empty: a curve of the base run itself, whose
        ``steps`` are then the base's 1-based update indices).
      steps: the continuation's logged steps (0 = the checkpoint, before any of its updates),
        or the base's when ``lr`` is empty.
      loss: the losses at ``steps``.
      domain: "old" (the base run's data) or "new" (the continuation's).
      replay: share of old-domain data in each continuation batch, in ``[0, 1)``.
    """
    from fitting.fit import Run

    base_lr = np.asarray(base_lr, dtype=np.float64)
    index = history_index(base_lr.size, steps, continuation=np.size(lr) > 0)
    if index.size and index.min() < 0:
        raise InvalidInput(
            f"run {name!r}: a base run's steps start at 1, got {int(index.min()) + 1}"
        )
    x = continual_schedule(base_lr, lr, domain=domain, replay=replay)
    return Run(x, 2 * index + 1, loss, name)


def rates_and_shares(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(eta, p)`` of an interleaved history ``x`` of even length (a law's first step)."""
    pairs = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    return pairs[..., 0], pairs[..., 1]


def history_steps(steps: jax.Array) -> jax.Array:
    """History update indices of a run's logged steps (``2i + 1 -> i``)."""
    return steps // 2
