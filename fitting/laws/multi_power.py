"""The multi-power law of Luo et al. 2025 ("A Multi-Power Law for Loss Curve Prediction Across
Learning Rate Schedules", arXiv 2503.12811), in scale-free units.

The paper writes, for the rates ``eta_1 .. eta_t`` of the updates seen and the peak ``eta_0``,

.. math::

    L(t) = L_0 + A\\,(S_1(t) + S_W)^{-\\alpha} - LD(t), \\qquad
    LD(t) = B \\sum_{k=1}^{t} (\\eta_{k-1} - \\eta_k)\\, G(\\eta_k^{-\\gamma} S_k(t)),

    G(x) = 1 - (C x + 1)^{-\\beta}, \\qquad S_k(t) = \\sum_{\\tau=k}^{t} \\eta_\\tau .

In losscast's convention (:mod:`fitting.areas`: the loss at step ``s`` has seen ``lr[0..s]``) the
forward area ``S1`` of :func:`fitting.areas.forward_area` already contains the warmup area, so
``S_W`` is *not* added again; the drops are ``d_i = lr[i-1] - lr[i]`` for ``i > ramp_end`` (0
otherwise, exactly as in :func:`fitting.areas.annealing_area`) and ``S_i(s) = sum_{i<=tau<=s}
lr[tau]``. ``ramp_end = 0`` lets the warmup ramp's negative drops enter ``LD`` (the paper's
code: it raises the prediction by about ``B * eta_max``, mostly absorbed by ``L0``); the index of
the first peak excludes them.

**Units.** ``B`` has units of 1/rate and ``C`` of rate**(gamma - 1) per step, so their typical
values move with the learning rate, and ``log C`` and ``gamma`` are strongly coupled. The record
therefore measures rates in units of a reference rate ``lr_ref`` (``u = eta / lr_ref``), fixed by
the data at the largest rate of the fitting runs:

.. math::

    LD(s) = B \\sum_{i \\le s} (u_{i-1} - u_i)\\,\\big(1 - (1 + C\\, u_i^{-\\gamma}
            \\textstyle\\sum_{i \\le \\tau \\le s} u_\\tau)^{-\\beta}\\big).

Here ``B`` is the loss a full anneal from ``lr_ref`` would remove and ``C`` a rate per step at
``lr_ref``, both free of the LR's scale; :func:`paper_parameters` converts to the paper's
``B / lr_ref`` and ``C * lr_ref**(gamma - 1)``. ``L0``, ``A`` and ``alpha`` are the paper's.

**Evaluation of LD** (:func:`drop_sum`). The double sum costs ``O(T n)`` for ``n`` requested
steps of a ``T``-step schedule, and a cosine schedule drops at every step. Instead, for each step
``s``, the drops of its own block of :data:`FINEST_BLOCK` steps and of the :data:`SEPARATION`
blocks before it are summed term by term; everything further back is covered by blocks that grow
by :data:`LEVEL_RATIO` per level (16, 64, 256, 1024, ... steps, up to :data:`TOP_BLOCKS` at the
coarsest), each at least ``SEPARATION`` of its own lengths before ``s``'s block of that level
(:func:`far_field_blocks` lists them): about 120 terms per step instead of ``s``. A block's
``sum_i d_i g_i`` with ``g_i = (1 + C y_i / w_i)**(-beta)`` (``w_i = u_i**gamma``, ``y_i`` the
area from ``i`` to ``s``) is expanded to second order in ``omega = u**(gamma beta)`` and ``y``
about the block's ``|d|``-weighted means. Far from its drop a term is linear in ``omega``
(``~ omega / (C y)**beta``), so blocks whose rates approach 0 (a warmup ramp) expand well; and
``y_i`` is the step's area minus a per-block constant, so every moment of the expansion is a
per-block sum computed once, in ``O(T)``, for all steps. The summand increases with ``u`` and
decreases with ``y``, so the exact block sum lies between its values at the block's extreme rates
and areas; the expansion is clipped to that interval. Hence each block's error is at most its
drop mass times the spread of ``g`` over it (a bound the tests check against the textbook double
sum on random schedules), and on the schedules of ``tests/data/mpl`` the whole sum is within
1.5e-6 (in units of ``lr_ref``, i.e. ~3e-7 in loss) of the exact one. Steps without a rate change
contribute nothing; requested steps are processed in chunks of about :data:`CHUNK_ELEMENTS`
terms, so memory stays bounded for 100k-step schedules. Derivatives in ``(C, beta, gamma)`` are
taken in forward mode (three tangents), which costs about twice the sum itself. The clipping
makes the expansion piecewise smooth in the rates; the planner, which descends on one step's
prediction through the schedule, uses the record's ``exact_predict`` instead
(:func:`exact_drop_sum`, ``O(T)`` for one step): on the kinks its L-BFGS-B stopped 3e-5 above
the best WSD schedule, with the exact sum it converges 1e-4 below it.

**Identifiability.** From two or three curves the shape parameters ``(C, beta, gamma)`` are
poorly determined: run to convergence the fit lowers the training objective by drifting to
degenerate shapes (``beta -> 0`` with ``gamma`` large and ``B`` inflated, or ``C`` at its lower
bound with ``B * C * beta`` acting as one coefficient) that predict other schedules worse. The
remedy here is a weak Gaussian prior on ``log C``, ``log beta`` and ``gamma`` in their fit
coordinates (:data:`PRIOR_CENTRE`, :data:`PRIOR_WIDTH`), added to the fit objective as the
law's ``penalty``: round values fixed before looking at any fit (``beta = gamma = 1/2``, the
paper's starting point; ``C`` one tenth per step at ``lr_ref``, the order of its published fits),
a factor ``e`` wide for ``C`` and ``beta`` and 0.25 for ``gamma``. Data that identifies a
parameter overrides it; data that does not leaves it near a typical value -- the role the
paper's early-stopped AdamW from ``(C, beta, gamma) = (1, 0.5, 0.5)`` plays, stated explicitly
instead of through an iteration count. On the MPL curves (fit on ``cosine_24000``,
``constant_24000``, ``wsdcon_9``; six held-out curves) it moves the 25M fit from ``beta = 0.11,
gamma = 0.79`` (held-out PredE 0.00130) to ``beta = 0.35, gamma = 0.49`` (0.00117), and leaves
400M, whose data identify the shape, where it was (0.00217 either way); halving or doubling the
widths changes these by at most 0.0002. Choosing the prior's weight by leave-one-run-out
cross-validation over the fitting runs (weights 0 to 100) picks 10-100 at 25M and 3 at 400M,
which predict the held-out curves worse (0.00120, 0.00231), so the weight stays 1. The paper's
0.00168 at 400M is out of this law's reach by fitting: with ``cosine_72000`` added to the
fitting runs, the six held-out curves average 0.00192 (the other five 0.00203); constant and
cosine schedules of 72k steps cannot both be matched.

**The functional scaling law is this law at gamma = 0.** Li et al. 2025 (arXiv 2509.19189) derive,
for SGD on power-law kernel regression, ``L0 + A T(s)^(-alpha) + N(s)`` with the intrinsic time ``T
= S1`` and a noise term ``N(s) = B' sum_{tau <= s} eta_tau^2 K(T(s) - T(tau))`` whose kernel
forgets in intrinsic time, ``K(x) = (1 + x / x0)^(-kappa)``. Summed by parts (``Psi(y) = int_0^y
K``, ``Psi(y) = Psi_inf (1 - (1 + y / x0)^(-(kappa - 1)))``), ``N`` is ``B' Psi_inf`` times the
rises of the rate (the warmup ramp) minus the drops, each weighted by ``1 - (1 + (T(s) - T(k)) /
x0)^(-(kappa - 1))``: ``LD`` with ``gamma = 0``, ``beta = kappa - 1`` and ``C = lr_ref / x0``, the
ramp counted (``ramp_end = 0``, this record's default). So it adds no law: a direct implementation
of the convolution (blocks of 32 steps, not kept) fitted to the three fitting runs predicted the
six held-out curves with PredE 0.00123 / 0.00198 (25M / 400M; this record 0.00117 / 0.00217,
``lr_annealing`` 0.00128 / 0.00183), and this record with ``gamma`` fixed at 0 and no penalty gives
its forecasts to within 0.3% (the rest is the blocks). What the comparison shows: the gain of a
*short* cooldown rests on the saturation's prior, not on the data, when the fitted runs decay
slowly or not at all. Fitted on ``cosine_24000`` and ``constant_24000``, the final of
``wsd_20000_24000`` against ``cosine_24000`` (measured -0.79% / -0.57%) is predicted -1.36% /
-1.87% with the prior, -1.33% / -1.84% with ``gamma = 0`` and the prior, and +0.23% / -0.47% with
``gamma = 0`` and no prior (``C`` 2e-4 / 9e-3: the functional law's slow saturation). On the
live-forecast protocol with history, at the core (the three cooldown jobs ``wsd``, ``wsdld``,
``wsdcon_3`` cut at 30/50/70/90% and fitted with those two runs), median |final error| 0.42% /
1.17% with the prior against 0.81% / 0.17% (worst 1.69% / 1.02%) with ``gamma = 0`` and none: no
one centre suits both sizes, and choosing it on these curves would be tuning to them, so the prior
stays.

**Warmup.** ``ramp_end = 0`` (the fitter's ``warmup="include"``, the paper's code) is the
default: held-out PredE 0.00117 / 0.00217 (25M / 400M) against 0.00116 / 0.00226 when the
ramp is excluded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fitting.areas import _drops, forward_area
from fitting.errors import InvalidInput
from fitting.laws import Law, Parameter
from fitting.priors import GAIN_LOG_SD, Prior, Reference, gain_of, gain_words

LEVEL_RATIO = 4  # each far-field level's blocks are this many times longer than the previous
FINEST_BLOCK = 16  # the finest block; a step's own and SEPARATION more are summed term by term
TOP_BLOCKS = 32  # levels are added until the coarsest has at most this many blocks
SEPARATION = 3  # a block is expanded only if at least this many of its lengths lie before a step
CHUNK_ELEMENTS = 2**16  # (requested steps) x (terms per step) evaluated at once, per schedule
RATE_FLOOR = 1e-9  # rates below this share of lr_ref count as this, so u**gamma stays positive

PRIOR_CENTRE = {"C": 0.1, "beta": 0.5, "gamma": 0.5}
PRIOR_WIDTH = {"C": 1.0, "beta": 1.0, "gamma": 0.25}  # std. deviations in fit coordinates

NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma", "lr_ref")


def _chunk_size(terms_per_step: int, chunk: int | None) -> int:
    return max(1, CHUNK_ELEMENTS // terms_per_step) if chunk is None else int(chunk)


def block_sizes(length: int, finest: int = FINEST_BLOCK, ratio: int = LEVEL_RATIO) -> tuple:
    """The far-field levels' block lengths for a schedule of ``length`` steps (finest first)."""
    sizes = [finest]
    while -(-length // sizes[-1]) > TOP_BLOCKS:
        sizes.append(sizes[-1] * ratio)
    return tuple(sizes)


def far_field_blocks(
    step: int, length: int, sizes: tuple[int, ...] | None = None, separation: int = SEPARATION
) -> tuple[list[tuple[int, int]], int]:
    """How :func:`drop_sum` splits the drops before ``step``: expanded blocks and an exact tail.

    Returns ``(blocks, first_exact)``: the ``[start, stop)`` index ranges of the blocks summed by
    expansion (each lies at least ``separation`` of its own lengths before ``step``'s block of
    that level) and the first index summed term by term (through ``step``). Together they tile
    ``[0, step]``. Pure Python, for tests and for reading; the kernel computes the same sets.
    """
    sizes = block_sizes(length) if sizes is None else tuple(sizes)
    k = separation
    top = sizes[-1]
    blocks = [(b * top, (b + 1) * top) for b in range(max(step // top - k, 0))]
    for level in reversed(range(len(sizes) - 1)):
        size, ratio = sizes[level], sizes[level + 1] // sizes[level]
        first = (step // (size * ratio) - k) * ratio
        blocks += [(b * size, (b + 1) * size) for b in range(max(first, 0), step // size - k)]
    return blocks, max((step // sizes[0] - k) * sizes[0], 0)


def _block_stats(drops, u, omega, before, size):
    """Per block of ``size`` steps: 11 raw sums and 4 extremes, each ``(J,)``.

    Sums: ``|d|``, ``|d| omega``, ``|d| a``, ``d``, ``d omega``, ``d omega^2``, ``d omega a``,
    ``d a``, ``d a^2``, ``min(d, 0)``, ``max(d, 0)`` with ``a = F(i-1)``. Extremes over the
    block's drops: least and largest rate ``u`` and area ``a``. Coarser blocks add the sums and
    take the extremes of their children (:func:`_coarser`). Kept as separate arrays, not
    stacked, so that forward-mode derivatives skip the ones no parameter enters.
    """
    weight = jnp.abs(drops)
    columns = (
        weight,
        weight * omega,
        weight * before,
        drops,
        drops * omega,
        drops * omega * omega,
        drops * omega * before,
        drops * before,
        drops * before * before,
        jnp.minimum(drops, 0.0),
        jnp.maximum(drops, 0.0),
    )
    sums = tuple(column.reshape(-1, size).sum(axis=-1) for column in columns)
    has = drops != 0
    # Steps without a drop must not set an extreme. The stand-ins stay finite and the rates
    # positive: XLA may evaluate a later log on both sides of a select, and a NaN there leaks
    # into the batched program. Blocks without drops get neutral values in _rows.
    huge = 1e300
    extremes = (
        jnp.where(has, u, huge).reshape(-1, size).min(axis=-1),
        jnp.where(has, u, RATE_FLOOR).reshape(-1, size).max(axis=-1),
        jnp.where(has, before, huge).reshape(-1, size).min(axis=-1),
        jnp.where(has, before, -huge).reshape(-1, size).max(axis=-1),
    )
    return sums, extremes


def _coarser(sums, extremes, ratio):
    sums = tuple(x.reshape(-1, ratio).sum(axis=-1) for x in sums)
    u_low, u_high, a_low, a_high = (x.reshape(-1, ratio) for x in extremes)
    return sums, (u_low.min(-1), u_high.max(-1), a_low.min(-1), a_high.max(-1))


def _rows(sums, extremes, gamma):
    """Each block's expansion point, centred moments and bounds: 14 arrays ``(J,)``.

    Rows: the |d|-weighted means of ``omega`` and of ``a = F(i-1)``; ``sum d``, ``sum d do``,
    ``sum d e``, ``sum d do^2``, ``sum d do e``, ``sum d e^2`` (``do = omega - mean``, ``e = mean
    a - a``); the sums of the negative and of the positive drops; ``w = u**gamma`` at the least
    and largest rate; the least and largest ``a``. (Centring raw sums loses < 1e-8 relative for
    areas up to ~1e5 steps.)
    """
    mass, w_omega, w_a, m0, s_o, s_oo, s_oa, s_a, s_aa, lowest, highest = sums
    empty = mass <= 0
    safe = jnp.where(empty, 1.0, mass)
    o_bar = jnp.where(empty, 1.0, w_omega / safe)
    a_bar = w_a / safe
    u_low, u_high, a_low, a_high = (
        jnp.where(empty, fill, row)
        for row, fill in zip(extremes, (1.0, 1.0, 0.0, 0.0), strict=True)
    )
    return (
        o_bar,
        a_bar,
        m0,
        s_o - o_bar * m0,
        a_bar * m0 - s_a,
        s_oo - 2.0 * o_bar * s_o + o_bar * o_bar * m0,
        a_bar * s_o - s_oa - o_bar * a_bar * m0 + o_bar * s_a,
        a_bar * a_bar * m0 - 2.0 * a_bar * s_a + s_aa,
        lowest,
        highest,
        jnp.exp(gamma * jnp.log(u_low)),
        jnp.exp(gamma * jnp.log(u_high)),
        a_low,
        a_high,
    )


# A block without drops, as rows: the means and rate bounds at 1 keep every division finite.
EMPTY_ROW = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0)


def _expanded(rows, f, c, beta):
    """Each block's ``sum_i d_i (1 + C y_i / w_i)**(-beta)`` at forward area ``f``, expanded.

    Second order in ``omega = w**beta = u**(gamma beta)`` and in the area ``y = f - F(i-1)``
    about the block's weighted means: in ``omega`` a term is linear far from its drop
    (``~ omega / (C y)**beta``), so blocks whose rates approach 0 expand well. The summand
    increases with ``u`` and decreases with ``y``, so the exact block sum lies between its values
    at the block's extreme rates and areas; the expansion is clipped to that interval, so a
    block's error never exceeds its drop mass times the spread of ``g`` over it.
    """
    o_bar, a_bar, m0, m_o, m_e, m_oo, m_oe, m_ee, lowest, highest, w_low, w_high, a_low, a_high = (
        rows
    )
    y = jnp.maximum(f - a_bar, 0.0)
    w = jnp.exp(jnp.log(o_bar) / beta)  # omega ** (1 / beta)
    ratio = c * y / w
    z = 1.0 + ratio
    phi = jnp.exp(-beta * jnp.log(z))
    phi1 = phi / z
    phi2 = phi1 / z
    d_o = phi1 * ratio / o_bar
    d_oo = -(beta + 1.0) / beta * phi2 * ratio / o_bar**2
    d_y = -beta * phi1 * c / w
    d_yy = beta * (beta + 1.0) * phi2 * (c / w) ** 2
    d_oy = c / (w * o_bar) * phi2 * (z - (beta + 1.0) * ratio)
    value = m0 * phi + d_o * m_o + d_y * m_e + 0.5 * d_oo * m_oo + d_oy * m_oe + 0.5 * d_yy * m_ee
    g_high = jnp.exp(-beta * jnp.log1p(c * jnp.maximum(f - a_high, 0.0) / w_high))
    g_low = jnp.exp(-beta * jnp.log1p(c * jnp.maximum(f - a_low, 0.0) / w_low))
    return jnp.clip(value, highest * g_low + lowest * g_high, highest * g_high + lowest * g_low)


def _cumulative_sum(x, size):
    """``cumsum(x)`` in blocks of ``size`` (a triangular product within, a short scan across)."""
    blocks = x.reshape(-1, size)
    within = blocks @ jnp.triu(jnp.ones((size, size), x.dtype))
    totals = jnp.cumsum(within[:, -1])
    return (within + (totals - within[:, -1])[:, None]).reshape(-1)


@functools.partial(jax.jit, static_argnames=("sizes", "separation", "chunk"))
def drop_sum(
    lr: jax.Array,
    steps: jax.Array,
    ramp_end: jax.Array,
    c: jax.Array,
    beta: jax.Array,
    gamma: jax.Array,
    lr_ref: jax.Array,
    *,
    sizes: tuple[int, ...] | None = None,
    separation: int = SEPARATION,
    chunk: int | None = None,
) -> jax.Array:
    """``sum_{i <= s} d_i * G(x_i(s))`` at ``steps``, with ``G(x) = 1 - (1 + C x)^(-beta)``.

    ``d_i`` are the drops of ``u = lr / lr_ref`` after ``ramp_end`` and ``x_i(s) =
    u_i**(-gamma) * sum_{i <= tau <= s} u_tau`` (see the module docstring); ``LD = B *
    drop_sum``.

    Args:
      lr: one schedule ``(T,)`` (padded inside to whole coarsest blocks by repeating its last
        rate, which adds no drop).
      steps: requested steps ``(n,)`` in ``[0, T)``.
      ramp_end: drops at or before this index are ignored.
      c, beta, gamma, lr_ref: the law's parameters.
      sizes: block lengths, finest first, each a multiple of the previous (default
        :func:`block_sizes`); ``sizes=(T,)`` sums every term exactly.
      separation: blocks of a level are expanded only this many of their lengths back.
      chunk: requested steps evaluated at once (default: about :data:`CHUNK_ELEMENTS` terms);
        the result does not depend on it.

    Returns:
      ``(n,)``.

    Example: one drop from 1 to 1/2 at step 64; seven steps later (``gamma = 0``, ``C = beta =
    1``) ``G = 1 - 1 / (1 + 7 / 2)``, so the sum is ``(1 / 2) (7 / 9)``.

    >>> import numpy as np
    >>> lr = np.r_[np.ones(64), np.full(64, 0.5)]
    >>> round(float(drop_sum(lr, np.array([70]), 0, 1.0, 1.0, 0.0, 1.0)[0]), 6)
    0.388889
    """
    # The sum depends on lr_ref only through u = lr / lr_ref; by x -> x * (lr_ref / unit)**(gamma
    # - 1) it equals (unit / lr_ref) times the sum in units of ``unit``, with C scaled. Working
    # in a fixed unit keeps lr_ref's derivative to two scalars instead of every array.
    unit = jax.lax.stop_gradient(lr_ref)
    scale = lr_ref / unit
    c_unit = c * scale ** (gamma - 1.0)
    return (
        _drop_sum(lr / unit, steps, ramp_end, c_unit, beta, gamma, sizes, separation, chunk) / scale
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(6, 7, 8))
def _drop_sum(u, steps, ramp_end, c, beta, gamma, sizes, separation, chunk):
    return _drop_sum_direct(u, steps, ramp_end, c, beta, gamma, sizes, separation, chunk)


def _drop_sum_jvp(sizes, separation, chunk, primals, tangents):
    """Derivatives in the three scalar parameters by forward mode, as a dense ``(3, n)`` Jacobian.

    Reverse mode through the sum would scatter cotangents back into every gathered window;
    three forward tangents cost less, and the fitter's reverse pass then only contracts the
    Jacobian. A tangent of the schedule itself (e.g. a planner's) goes through plain forward mode.
    """
    u, steps, ramp_end, c, beta, gamma = primals
    du, _, _, dc, dbeta, dgamma = tangents
    scalars = (c, beta, gamma)

    def of_scalars(*values):
        return _drop_sum_direct(u, steps, ramp_end, *values, sizes, separation, chunk)

    basis = jnp.eye(3, dtype=jnp.result_type(*scalars))
    value, jacobian = jax.vmap(
        lambda t: jax.jvp(of_scalars, scalars, tuple(t)), out_axes=(None, 0)
    )(basis)
    tangent = jnp.zeros_like(value)
    for row, d in zip(jacobian, (dc, dbeta, dgamma), strict=True):
        if not isinstance(d, jax.custom_derivatives.SymbolicZero):
            tangent = tangent + row * d
    if not isinstance(du, jax.custom_derivatives.SymbolicZero):
        tangent = (
            tangent
            + jax.jvp(
                lambda v: _drop_sum_direct(v, steps, ramp_end, *scalars, sizes, separation, chunk),
                (u,),
                (du,),
            )[1]
        )
    return value, tangent


_drop_sum.defjvp(_drop_sum_jvp, symbolic_zeros=True)


def _drop_sum_direct(u, steps, ramp_end, c, beta, gamma, sizes, separation, chunk):
    """:func:`drop_sum` for rates ``u`` already in units of ``lr_ref``."""
    length = u.shape[-1]
    sizes = block_sizes(length) if sizes is None else tuple(sizes)
    top = sizes[-1]
    padded_length = -(-length // top) * top
    # Repeating the last rate adds no drops, so the padding changes nothing before it.
    u = jnp.concatenate([u, jnp.full(padded_length - length, u[-1])])

    drops = _drops(u, ramp_end)
    log_rate = jnp.log(jnp.maximum(u, RATE_FLOOR))
    omega = jnp.exp(gamma * beta * log_rate)  # the far field's expansion variable
    area = _cumulative_sum(u, sizes[0])  # F(i): steps at lr_ref up to and including i
    before = area - u  # F(i - 1)

    finest = sizes[0]
    k = separation
    exact = (k + 1) * finest  # a step's own finest block and k before it: summed exactly
    pad = k * finest
    d_pad = jnp.concatenate([jnp.zeros(pad), drops])
    log_rate_pad = jnp.concatenate([jnp.zeros(pad), log_rate])
    before_pad = jnp.concatenate([jnp.zeros(pad), before])

    # Levels below the top: for a step, the blocks inside the next level's near zone that are
    # not inside this level's (at most (k + 1) * (ratio - 1) of them, gathered as one window).
    rate = jnp.maximum(u, RATE_FLOOR)
    sums, extremes = _block_stats(drops, rate, omega, before, finest)
    windows = []
    for level, size in enumerate(sizes[:-1]):
        ratio = sizes[level + 1] // size
        rows = _rows(sums, extremes, gamma)
        sums, extremes = _coarser(sums, extremes, ratio)
        span = (k + 1) * (ratio - 1)
        # Empty blocks in front and behind keep every window inside the arrays (a dynamic_slice
        # that ran over would be shifted, not cut).
        padded = tuple(
            jnp.concatenate([jnp.full(k * ratio, fill), row, jnp.full(k * ratio + span, fill)])
            for row, fill in zip(rows, EMPTY_ROW, strict=True)
        )
        windows.append((size, ratio, span, padded))
    top_rows = _rows(sums, extremes, gamma)
    top_index = jnp.arange(top_rows[0].shape[0])

    def g(x):
        return jnp.exp(-beta * jnp.log1p(c * x))

    def at(s):
        f = area[s]
        first = (s // finest - k) * finest  # the exact window's first index (may be < 0)
        inside = first + jnp.arange(exact) <= s
        d_near, log_rate_near, before_near = (
            jax.lax.dynamic_slice(x, (first + pad,), (exact,))
            for x in (d_pad, log_rate_pad, before_pad)
        )
        y = jnp.where(inside, jnp.maximum(f - before_near, 0.0), 0.0)
        total = jnp.sum(jnp.where(inside, d_near * g(y * jnp.exp(-gamma * log_rate_near)), 0.0))
        for size, ratio, span, rows in windows:
            start = (s // (size * ratio) - k) * ratio  # block index, may be -k * ratio
            window = tuple(
                jax.lax.dynamic_slice(row, (start + k * ratio,), (span,)) for row in rows
            )
            index = start + jnp.arange(span)
            used = (index >= 0) & (index < s // size - k)
            total += jnp.sum(jnp.where(used, _expanded(window, f, c, beta), 0.0))
        used = top_index < s // top - k
        total += jnp.sum(jnp.where(used, _expanded(top_rows, f, c, beta), 0.0))
        telescoped = jnp.where(s > ramp_end, u[ramp_end] - u[s], 0.0)  # sum of d_i, i <= s
        return telescoped - total

    per_step = exact + sum(span for _, _, span, _ in windows) + top_rows[0].shape[0]
    size = _chunk_size(per_step, chunk)
    n = steps.shape[-1]
    if n <= size:
        return jax.vmap(at)(steps)
    count = -(-n // size)
    padded = jnp.concatenate([steps, jnp.full(count * size - n, steps[-1])])
    result = jax.lax.map(jax.vmap(at), padded.reshape(count, size))
    return result.reshape(-1)[:n]


def exact_drop_sum(
    lr: jax.Array,
    steps: jax.Array,
    ramp_end: jax.Array,
    c: jax.Array,
    beta: jax.Array,
    gamma: jax.Array,
    lr_ref: jax.Array,
) -> jax.Array:
    """:func:`drop_sum` term by term: ``O(n T)`` time and memory for ``n`` steps, so for a few
    steps only. Unlike the block expansion (whose clipping has kinks) it is smooth in the rates,
    which a descent on the schedule needs.

    >>> import numpy as np
    >>> lr = np.r_[np.ones(64), np.full(64, 0.5)]
    >>> round(float(exact_drop_sum(lr, np.array([70]), 0, 1.0, 1.0, 0.0, 1.0)[0]), 6)
    0.388889
    """
    u = lr / lr_ref
    drops = _drops(u, ramp_end)
    area = jnp.cumsum(u)
    weight = jnp.exp(-gamma * jnp.log(jnp.maximum(u, RATE_FLOOR)))  # u**(-gamma)
    x = jnp.maximum(area[steps][:, None] - (area - u)[None, :], 0.0) * weight
    seen = jnp.arange(u.shape[-1])[None, :] <= steps[:, None]
    saturation = -jnp.expm1(-beta * jnp.log1p(c * x))  # 1 - (1 + C x)**(-beta)
    return jnp.sum(jnp.where(seen, drops * saturation, 0.0), axis=-1)


def predict(
    params: jax.Array,
    lr: jax.Array,
    steps: jax.Array,
    ramp_end: jax.Array,
    *,
    exact: bool = False,
) -> jax.Array:
    """The loss at ``steps``; ``params = (L0, A, alpha, B, C, beta, gamma, lr_ref)``. ``exact``
    sums ``LD`` term by term (:func:`exact_drop_sum`, for a few steps) instead of by
    :func:`drop_sum`."""
    l0, a, alpha, b, c, beta, gamma, lr_ref = (params[i] for i in range(8))
    s1 = forward_area(lr, steps)
    total = exact_drop_sum if exact else drop_sum
    ld = b * total(lr, steps, ramp_end, c, beta, gamma, lr_ref)
    return l0 + a * jnp.power(jnp.maximum(s1, 1e-30), -alpha) - ld


def reference_rate(
    schedules: Sequence[np.ndarray], logged_steps: Sequence[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """Fix ``lr_ref`` at the largest rate of the fitting runs (the unit of ``B`` and ``C``)."""
    del logged_steps
    peak = max(float(np.max(lr)) for lr in schedules)
    if not peak > 0:
        raise InvalidInput(f"multi_power: the fitting runs' rates are all 0 (largest rate {peak})")
    return {"lr_ref": (peak, peak)}


def prior_penalty(params: jax.Array) -> jax.Array:
    """``sum_j ((v_j - centre_j) / width_j)**2 / 2`` over ``log C``, ``log beta``, ``gamma``."""
    c, beta, gamma = params[4], params[5], params[6]
    terms = (
        (jnp.log(c) - np.log(PRIOR_CENTRE["C"])) / PRIOR_WIDTH["C"],
        (jnp.log(beta) - np.log(PRIOR_CENTRE["beta"])) / PRIOR_WIDTH["beta"],
        (gamma - PRIOR_CENTRE["gamma"]) / PRIOR_WIDTH["gamma"],
    )
    return 0.5 * sum(t * t for t in terms)


def annealing_prior(reference: Reference) -> Prior:
    """``B`` at the prior's gain (:mod:`fitting.priors`; ``B`` is the loss a full anneal from
    ``lr_ref``, the peak, removes) and the saturation ``(C, beta, gamma)`` at the centre of the
    law's own prior (:data:`PRIOR_CENTRE`, :data:`PRIOR_WIDTH`), for runs that show no decay."""
    widths = (GAIN_LOG_SD, PRIOR_WIDTH["C"], PRIOR_WIDTH["beta"], PRIOR_WIDTH["gamma"])
    return Prior(
        values={"B": gain_of(reference), **PRIOR_CENTRE},
        covariance=tuple(
            tuple(w * w if i == j else 0.0 for j in range(len(widths)))
            for i, w in enumerate(widths)
        ),
        summary=(
            f"{gain_words(reference)}; the saturation at the law's prior (C = "
            f"{PRIOR_CENTRE['C']:g}, beta = {PRIOR_CENTRE['beta']:g}, gamma = "
            f"{PRIOR_CENTRE['gamma']:g})"
        ),
    )


def paper_parameters(params: dict[str, float]) -> dict[str, float]:
    """The parameters in the paper's units (rates in absolute units, not in units of lr_ref)."""
    lr_ref, gamma = params["lr_ref"], params["gamma"]
    converted = {k: v for k, v in params.items() if k != "lr_ref"}
    converted["B"] = params["B"] / lr_ref
    converted["C"] = params["C"] * lr_ref ** (gamma - 1.0)
    return converted


MULTI_POWER = Law(
    name="multi_power",
    formula=(
        "L(s) = L0 + A*S1(s)^(-alpha) - B*sum_{i<=s} (u[i-1]-u[i])*(1-(1+C*u[i]^(-gamma)"
        "*sum_{i<=t<=s} u[t])^(-beta)), u = lr/lr_ref"
    ),
    parameters=(
        Parameter("L0", 0.0, 20.0, linear=True, doc="irreducible loss"),
        Parameter("A", 1e-6, 1e3, "log", linear=True, doc="scale of the power-law term"),
        Parameter("alpha", 0.01, 3.0, starts=(0.3, 0.5, 0.7), doc="exponent of S1"),
        Parameter(
            "B", 1e-6, 1e3, "log", linear=True, doc="loss removed by a full anneal from lr_ref"
        ),
        Parameter("C", 1e-5, 1e3, "log", starts=(0.03, 0.3), doc="saturation rate per step"),
        Parameter("beta", 1e-3, 10.0, "log", starts=(0.3, 0.8), doc="power of the saturation"),
        Parameter("gamma", 0.0, 2.0, starts=(0.3, 0.7), doc="rate exponent of the saturation"),
        Parameter("lr_ref", 1e-12, 1e6, "log", doc="unit of rates (fixed: the runs' peak rate)"),
    ),
    predict=predict,
    data_bounds=reference_rate,
    penalty=prior_penalty,
    refined_starts=1,
    exact_predict=functools.partial(predict, exact=True),
    annealing=("B", "C", "beta", "gamma"),
    annealing_prior=annealing_prior,
)
