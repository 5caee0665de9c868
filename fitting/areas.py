"""The two areas of a learning-rate schedule, evaluated at requested steps in O(T).

Index convention (used everywhere in losscast): ``lr[i]`` is the learning rate of update ``i``,
``i = 0 .. T-1``, and the loss logged at step ``s`` is taken to have seen the rates
``lr[0..s]`` *inclusive*. So

.. math::

    S_1(s) = \\sum_{i \\le s} \\eta_i, \\qquad
    m_i = \\lambda m_{i-1} + (\\eta_{i-1} - \\eta_i),\\;
    m_{-1} = 0,\\; \\eta_{-1} := \\eta_0, \\qquad
    S_2(s) = \\sum_{i \\le s} m_i .

The annealing momentum ``m`` only counts drops after ``ramp_end`` (the index of the first peak of
the schedule, see :func:`fitting.schedules.warmup_steps_of`) when the warmup ramp is excluded:
``d_i = eta_{i-1} - eta_i`` for ``i > ramp_end`` and 0 before; ``ramp_end = 0`` counts every change.

Two identities make this fast. First, only ``m`` at the requested steps is needed, because

.. math:: S_2(s) = \\frac{D(s) - \\lambda m_s}{1 - \\lambda},\\qquad D(s) = \\sum_{i\\le s} d_i
          = \\eta_{r} - \\eta_s \\;(s \\ge r).

Second, a discounted prefix sum ``y_s = sum_{k<=s} decay^(s-k) x_k`` is computed in blocks of
``BLOCK`` steps: one matrix-vector product gives each block's contribution at its end, a
length-``T/BLOCK`` linear recurrence (an associative scan) carries it across blocks, and each
requested step adds the discounted part of its own block. No Python loop, no per-step scan, no
O(T^2) work; ``decay = 1`` gives the plain cumulative sum ``S_1``.

Arrays may be padded on the right (repeat the last rate: padding then changes nothing before it)
to a bucketed length, a multiple of ``BLOCK``, so that new lengths do not trigger new compilations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BLOCK = 64


def _carry_across_blocks(block_totals: jax.Array, block_decay: jax.Array) -> jax.Array:
    """Solve ``c_j = block_decay * c_{j-1} + block_totals_j`` (``c_{-1} = 0``) along the last axis.

    Returns ``c_{j-1}``, the carry *entering* each block (0 for the first one).
    """

    def combine(left, right):
        a_l, b_l = left
        a_r, b_r = right
        return a_l * a_r, a_r * b_l + b_r

    decays = jnp.broadcast_to(block_decay, block_totals.shape)
    _, carried = jax.lax.associative_scan(combine, (decays, block_totals), axis=-1)
    return jnp.concatenate([jnp.zeros_like(carried[..., :1]), carried[..., :-1]], axis=-1)


def discounted_prefix_sum(x: jax.Array, steps: jax.Array, decay: jax.Array | float) -> jax.Array:
    """``y_s = sum_{k <= s} decay**(s - k) * x_k`` at the requested ``steps``.

    Args:
      x: array ``(..., T)`` with ``T`` a multiple of :data:`BLOCK`.
      steps: integer array ``(..., n)`` of indices in ``[0, T)``, broadcastable against ``x``'s
        leading axes.
      decay: scalar in ``(0, 1]``.

    Returns:
      Array ``(..., n)``.
    """
    *lead, length = x.shape
    blocks = x.reshape(*lead, length // BLOCK, BLOCK)
    powers = decay ** jnp.arange(BLOCK, dtype=x.dtype)  # powers[r] = decay**r
    block_totals = blocks @ powers[::-1]  # each block's sum, discounted to its last step
    entering = _carry_across_blocks(block_totals, powers[-1] * decay)

    block_of = steps // BLOCK
    offset = steps % BLOCK
    carried = jnp.take_along_axis(entering, block_of, axis=-1)
    if steps.shape[-1] * BLOCK <= length:
        # Few requested steps: discount only the blocks that hold them.
        own_block = jnp.take_along_axis(blocks, block_of[..., None], axis=-2)  # (..., n, BLOCK)
        lag = offset[..., None] - jnp.arange(BLOCK)
        weights = jnp.where(lag >= 0, decay ** jnp.maximum(lag, 0), 0.0)
        within = jnp.sum(own_block * weights, axis=-1)
    else:
        # Dense requests: every step's in-block sum at once, as one product with the
        # (BLOCK, BLOCK) upper-triangular matrix of decay powers; then pick the requested ones.
        lag = jnp.arange(BLOCK)[None, :] - jnp.arange(BLOCK)[:, None]  # [r', r] -> r - r'
        toeplitz = jnp.where(lag >= 0, decay ** jnp.maximum(lag, 0), 0.0)
        every_step = (blocks @ toeplitz).reshape(*lead, length)
        within = jnp.take_along_axis(every_step, steps, axis=-1)
    return within + decay ** (offset + 1) * carried


def forward_area(lr: jax.Array, steps: jax.Array) -> jax.Array:
    """``S1(s) = sum_{i <= s} lr[i]`` at ``steps`` (the area under the schedule so far).

    >>> import numpy as np
    >>> float(forward_area(np.full(64, 2.0), np.array([9]))[0])
    20.0
    """
    return discounted_prefix_sum(lr, steps, 1.0)


def _drops(lr: jax.Array, ramp_end: jax.Array | int) -> jax.Array:
    """``d_i = lr[i-1] - lr[i]`` for ``i > ramp_end``, else 0 (``d_0 = 0``)."""
    previous = jnp.concatenate([lr[..., :1], lr[..., :-1]], axis=-1)
    index = jnp.arange(lr.shape[-1])
    return jnp.where(index > jnp.asarray(ramp_end)[..., None], previous - lr, 0.0)


def annealing_area(
    lr: jax.Array, steps: jax.Array, decay: jax.Array | float, ramp_end: jax.Array | int = 0
) -> jax.Array:
    """``S2(s) = sum_{i <= s} m_i`` with ``m_i = decay * m_{i-1} + d_i`` at ``steps``.

    Args:
      lr: per-step learning rate ``(..., T)``, ``T`` a multiple of :data:`BLOCK`.
      steps: requested steps ``(..., n)``.
      decay: the momentum's decay ``lambda`` in ``(0, 1)``; its memory is about
        ``1 / (1 - lambda)`` steps.
      ramp_end: drops at or before this index are ignored (0 counts the warmup ramp as logged;
        the index of the schedule's first peak excludes it).

    >>> import numpy as np
    >>> lr = np.r_[np.full(10, 1.0), np.full(54, 0.5)]  # one drop of 0.5 at step 10
    >>> round(float(annealing_area(lr, np.array([10, 11]), 0.5)[1]), 6)  # m_10 = 0.5, m_11 = 0.25
    0.75
    """
    drops = _drops(lr, ramp_end)
    momentum = discounted_prefix_sum(drops, steps, decay)
    start = jnp.take_along_axis(lr, jnp.asarray(ramp_end)[..., None], axis=-1)
    now = jnp.take_along_axis(lr, steps, axis=-1)
    total_drop = jnp.where(steps >= jnp.asarray(ramp_end)[..., None], start - now, 0.0)
    return (total_drop - decay * momentum) / (1.0 - decay)
