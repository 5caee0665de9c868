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

Summing the momentum by parts turns ``S2`` into a discounted sum of how far the rate has fallen
below its value at ``ramp_end`` (the *gap*), with no difference of neighbouring rates and no
division by ``1 - lambda``:

.. math:: S_2(s) = \\sum_{k \\le s} \\lambda^{s-k} g_k, \\qquad
          g_k = \\eta_{r} - \\eta_k \\;(k \\ge r), \\quad g_k = 0 \\;(k < r),

``r = ramp_end`` (the momentum is ``m_i = Z(i) - Z(i-1)`` for the discounted sum ``Z`` of the
gaps, so ``S2`` telescopes to ``Z``). A stretch at the rate of step ``r`` has a gap of exactly 0,
so ``S2`` is exactly 0 there; ``S1`` is the same kind of sum with ``lambda = 1`` and ``g = eta``.

Both are computed in leaves of :data:`LEAF` steps. One pass over the schedule totals each leaf
(the only work proportional to ``T`` when few steps are requested); a prefix over the
``T / LEAF`` leaf totals, by small triangular matrix products, carries the sums from leaf to leaf;
and each requested step adds the discounted part of its own leaf, read from a window of ``LEAF``
rates (:data:`STEP_CHUNK` steps at a time, so that the windows of a large batch stay small).
When both areas are wanted (:func:`forward_and_annealing_areas`), their leaf totals and their
window sums each come from one two-output reduction, so the schedule is read once for both. When
a step per leaf or more is requested, every step of every leaf is computed instead, by one
``LEAF x LEAF`` matrix product per leaf. No Python loop over steps, no per-step scan, no O(T^2)
work.

Arrays may be padded on the right (repeat the last rate: padding then changes nothing before it)
to a bucketed length, a multiple of ``BLOCK``, so that new lengths do not trigger new compilations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BLOCK = 64  # schedules are padded to a multiple of this (see fitting.padding)
LEAF = 16  # steps summed per leaf; divides BLOCK
GROUP = 16  # leaves (or groups) combined per matrix product in the prefix over leaves
STEP_CHUNK = 64  # requested steps whose windows are gathered at once


def _table(values: jax.Array) -> jax.Array:
    """Materialise a small table of powers once, rather than letting the compiler recompute
    ``decay ** k`` inside every kernel that reads it (a power costs tens of nanoseconds)."""
    return jax.lax.optimization_barrier(values)


def _powers(decay: jax.Array, count: int) -> jax.Array:
    """``decay ** 0 .. decay ** (count - 1)``."""
    return _table(decay ** jnp.arange(count, dtype=decay.dtype))


def _lower_powers(decay: jax.Array, size: int) -> jax.Array:
    """``W[i, j] = decay ** (i - j)`` for ``j <= i``, else 0: row ``i`` discounts to step ``i``."""
    lag = jnp.arange(size)[:, None] - jnp.arange(size)[None, :]
    return _table(jnp.where(lag >= 0, decay ** jnp.maximum(lag, 0), 0.0))


def _inclusive_prefix(values: jax.Array, decay: jax.Array) -> jax.Array:
    """``y_j = sum_{i <= j} decay ** (j - i) * values_i`` along the last axis, by blocks of
    :data:`GROUP` (one matrix product each) and a recursive prefix over the block totals."""
    length = values.shape[-1]
    if length <= GROUP:
        return values @ _lower_powers(decay, length).T
    groups = -(-length // GROUP)
    padded = jnp.concatenate(
        [values, jnp.zeros((*values.shape[:-1], groups * GROUP - length), values.dtype)], axis=-1
    )
    local = padded.reshape(*values.shape[:-1], groups, GROUP) @ _lower_powers(decay, GROUP).T
    carried = _inclusive_prefix(local[..., -1], decay**GROUP)
    entering = jnp.concatenate([jnp.zeros_like(carried[..., :1]), carried[..., :-1]], axis=-1)
    out = local + entering[..., None] * _powers(decay, GROUP + 1)[1:]
    return out.reshape(*values.shape[:-1], groups * GROUP)[..., :length]


def _add_pairs(a, b):
    return a[0] + b[0], a[1] + b[1]


@jax.custom_jvp
def _two_sums(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``sum(a, -1)`` and ``sum(b, -1)`` as one two-output reduction, so that the compiler reads
    what ``a`` and ``b`` are computed from once instead of twice (reading the schedule is most of
    the cost of a sparse request)."""
    zero = jnp.zeros((), a.dtype)
    return jax.lax.reduce((a, b), (zero, zero), _add_pairs, (a.ndim - 1,))


@_two_sums.defjvp
def _two_sums_jvp(primals, tangents):
    # JAX has no derivative rule for a general (two-output) reduction; both sums are linear.
    (a, b), (da, db) = primals, tangents
    return _two_sums(a, b), (jnp.sum(da, -1), jnp.sum(db, -1))


def _sums_at(
    lr: jax.Array,
    steps: jax.Array,
    decay: jax.Array,
    start: jax.Array,
    ramp_end: jax.Array,
    forward: bool,
    annealing: bool,
) -> tuple[jax.Array | None, jax.Array | None]:
    """``S1(s) = sum_{k<=s} lr_k`` and ``S2(s) = sum_{k<=s} decay**(s-k) g_k`` (``g_k =
    start - lr_k`` for ``k >= ramp_end``, else 0) at ``steps``, for one schedule ``lr`` (vmap for
    batches). Only the sums asked for (``forward``, ``annealing``) are computed.

    Each sum is the part from the step's own leaf (``within``) plus the discounted total of all
    earlier leaves (``carried``). When there are fewer requested steps than leaves, ``within``
    comes from a window of the step's leaf and the leaf totals from one reduction over ``lr``;
    otherwise every step of every leaf is computed by one small matrix product per leaf and the
    requested ones are picked.
    """
    ramp_end = jnp.asarray(ramp_end)
    length = lr.shape[-1]
    if length % LEAF:
        raise ValueError(f"schedule length must be a multiple of {LEAF}, got {length}")
    leaves = lr.reshape(length // LEAF, LEAF)
    offsets = jnp.arange(LEAF)
    weights = _lower_powers(decay, LEAF)  # weights[o] discounts a leaf's rates to its offset o
    leaf_powers = _powers(decay, LEAF + 1)
    count = steps.shape[0]

    def gaps(values, index):
        return jnp.where(index >= ramp_end, start - values, 0.0)

    if count * LEAF >= length:  # dense: every step of every leaf
        forward_steps = leaves @ _lower_powers(jnp.ones((), lr.dtype), LEAF).T if forward else None
        annealing_steps = None
        if annealing:
            index = jnp.arange(length).reshape(leaves.shape)
            annealing_steps = gaps(leaves, index) @ weights.T
        forward_within, annealing_within = (
            None if a is None else a.reshape(-1)[steps] for a in (forward_steps, annealing_steps)
        )
        forward_totals, annealing_totals = (
            None if a is None else a[:, -1] for a in (forward_steps, annealing_steps)
        )
    else:  # sparse: a window per requested step

        def within(step):
            """The sums over each step's own leaf, up to and including the step."""
            leaf, offset = step // LEAF, step % LEAF
            window = leaves[leaf]
            upto = jnp.where(offsets <= offset[:, None], window, 0.0)
            gap = weights[offset] * gaps(window, leaf[:, None] * LEAF + offsets)
            if forward and annealing:
                return _two_sums(upto, gap)
            return (
                jnp.sum(upto, axis=-1) if forward else None,
                jnp.sum(gap, axis=-1) if annealing else None,
            )

        # Requested steps in chunks, so that their windows (chunk x LEAF per schedule) stay
        # small however many schedules are batched.
        chunk = min(STEP_CHUNK, count)
        chunks = -(-count // chunk)
        padded = jnp.concatenate([steps, jnp.zeros(chunks * chunk - count, steps.dtype)])

        def chunk_body(i, sums):
            part = within(jax.lax.dynamic_slice(padded, (i * chunk,), (chunk,)))
            return tuple(
                None if s is None else jax.lax.dynamic_update_slice(s, p, (i * chunk,))
                for s, p in zip(sums, part, strict=True)
            )

        zeros = jnp.zeros(chunks * chunk, lr.dtype)
        initial = (zeros if forward else None, zeros if annealing else None)
        forward_within, annealing_within = (
            None if a is None else a[:count]
            for a in jax.lax.fori_loop(0, chunks, chunk_body, initial)
        )
        annealing_totals = None
        if not annealing:
            forward_totals = jnp.sum(leaves, axis=-1)
        else:
            gap_totals = (start - leaves) * leaf_powers[LEAF - 1 :: -1]
            forward_totals, raw = _two_sums(leaves, gap_totals)
            forward_totals = forward_totals if forward else None
            # Leaves before the ramp's leaf count nothing; the ramp's own leaf only its steps
            # from ramp_end on (summed exactly, like a requested step at the leaf's end).
            ramp_leaf = ramp_end // LEAF
            _, ramp_total = within(ramp_leaf[None] * LEAF + LEAF - 1)
            raw = jnp.where(jnp.arange(raw.shape[-1]) < ramp_leaf, 0.0, raw)
            annealing_totals = jax.lax.dynamic_update_slice(raw, ramp_total, (ramp_leaf,))

    leaf = steps // LEAF
    before = jnp.maximum(leaf - 1, 0)  # the leaf before the step's own (when there is one)
    forward_sum = annealing_sum = None
    if forward:
        prefix = _inclusive_prefix(forward_totals, jnp.ones((), lr.dtype))
        forward_sum = forward_within + jnp.where(leaf > 0, prefix[before], 0.0)
    if annealing:
        prefix = _inclusive_prefix(annealing_totals, leaf_powers[LEAF])
        carried = jnp.where(leaf > 0, prefix[before], 0.0)
        annealing_sum = annealing_within + leaf_powers[steps % LEAF + 1] * carried
    return forward_sum, annealing_sum


def discounted_prefix_sum(x: jax.Array, steps: jax.Array, decay: jax.Array | float) -> jax.Array:
    """``y_s = sum_{k <= s} decay**(s - k) * x_k`` at the requested ``steps``.

    Args:
      x: array ``(..., T)`` with ``T`` a multiple of :data:`LEAF` (padded schedules are
        multiples of :data:`BLOCK`).
      steps: integer array ``(..., n)`` of indices in ``[0, T)``, broadcastable against ``x``'s
        leading axes.
      decay: scalar in ``(0, 1]``.

    Returns:
      Array ``(..., n)``.

    >>> import numpy as np
    >>> discounted_prefix_sum(np.ones(64), np.array([0, 1, 2]), 0.5).tolist()
    [1.0, 1.5, 1.75]
    """
    x = jnp.asarray(x)
    decay = jnp.asarray(decay, x.dtype)

    def one(row, row_steps):
        # x_k = 0 - (0 - x_k): the gap below a start of 0, from step 0 on.
        _, gap_sum = _sums_at(row, row_steps, decay, jnp.zeros((), x.dtype), 0, False, True)
        return -gap_sum

    return _over_rows(one, x, jnp.asarray(steps))


def _over_rows(fn, x: jax.Array, steps: jax.Array, *per_row: jax.Array):
    """Apply ``fn(row, row_steps, *row_values)`` over the leading axes of ``x`` and ``steps``."""
    lead = jnp.broadcast_shapes(x.shape[:-1], steps.shape[:-1], *(v.shape for v in per_row))
    x = jnp.broadcast_to(x, (*lead, x.shape[-1])).reshape(-1, x.shape[-1])
    steps = jnp.broadcast_to(steps, (*lead, steps.shape[-1])).reshape(-1, steps.shape[-1])
    per_row = [jnp.broadcast_to(v, lead).reshape(-1) for v in per_row]
    if not lead:
        return fn(x[0], steps[0], *(v[0] for v in per_row))
    out = jax.vmap(fn)(x, steps, *per_row)
    return jax.tree.map(lambda a: a.reshape(*lead, a.shape[-1]), out)


def forward_area(lr: jax.Array, steps: jax.Array) -> jax.Array:
    """``S1(s) = sum_{i <= s} lr[i]`` at ``steps`` (the area under the schedule so far).

    >>> import numpy as np
    >>> float(forward_area(np.full(64, 2.0), np.array([9]))[0])
    20.0
    """
    lr = jnp.asarray(lr)

    def one(row, row_steps):
        forward_sum, _ = _sums_at(row, row_steps, jnp.ones((), lr.dtype), row[0], 0, True, False)
        return forward_sum

    return _over_rows(one, lr, jnp.asarray(steps))


def annealing_area(
    lr: jax.Array, steps: jax.Array, decay: jax.Array | float, ramp_end: jax.Array | int = 0
) -> jax.Array:
    """``S2(s) = sum_{i <= s} m_i`` with ``m_i = decay * m_{i-1} + d_i`` at ``steps``.

    Args:
      lr: per-step learning rate ``(..., T)``, ``T`` a multiple of :data:`LEAF`.
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
    return forward_and_annealing_areas(lr, steps, decay, ramp_end, forward=False)[1]


def forward_and_annealing_areas(
    lr: jax.Array,
    steps: jax.Array,
    decay: jax.Array | float,
    ramp_end: jax.Array | int = 0,
    *,
    forward: bool = True,
) -> tuple[jax.Array | None, jax.Array]:
    """``(S1, S2)`` at ``steps`` in one pass over ``lr`` (a law that needs both should call this
    rather than :func:`forward_area` and :func:`annealing_area`, which read ``lr`` once each).

    Arguments as for :func:`annealing_area`; ``forward=False`` skips ``S1`` (returned as None).

    >>> import numpy as np
    >>> s1, s2 = forward_and_annealing_areas(np.r_[np.full(10, 1.0), np.full(54, 0.5)],
    ...                                      np.array([9, 11]), 0.5)
    >>> s1.tolist(), s2.tolist()
    ([10.0, 11.0], [0.0, 0.75])
    """
    lr = jnp.asarray(lr)
    decay = jnp.asarray(decay, lr.dtype)

    def one(row, row_steps, row_ramp_end):
        return _sums_at(row, row_steps, decay, row[row_ramp_end], row_ramp_end, forward, True)

    return _over_rows(one, lr, jnp.asarray(steps), jnp.asarray(ramp_end))


def _drops(lr: jax.Array, ramp_end: jax.Array | int) -> jax.Array:
    """``d_i = lr[i-1] - lr[i]`` for ``i > ramp_end``, else 0 (``d_0 = 0``)."""
    previous = jnp.concatenate([lr[..., :1], lr[..., :-1]], axis=-1)
    index = jnp.arange(lr.shape[-1])
    return jnp.where(index > jnp.asarray(ramp_end)[..., None], previous - lr, 0.0)
