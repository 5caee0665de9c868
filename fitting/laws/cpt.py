r"""The continual-pre-training law of Wang, Tissue et al. 2025 ("Learning Dynamics in Continual
Pre-Training for Large Language Models", arXiv 2505.07796), for both domains at once.

The paper describes a CPT loss curve as the LR-annealing law (:mod:`fitting.laws.lr_annealing`)
of the *whole* history -- the forward area ``S1`` and annealing area ``S2`` of the base run's
rates followed by the continuation's, so that a re-warm is negative annealing -- plus a
distribution-shift term that saturates in the forward area spent on the new data:

.. math::

    L(s) = L_0 + A\,S_1(s)^{-\alpha} - C_1\,S_2^{pt}(s) - C_2\,S_2^{cpt}(s)
           + B\,\big(1 - (1 + E\,S_1^{cpt}(s))^{-\beta}\big),

with ``B < 0`` on the new domain (the loss falls toward the new data's own curve) and ``B > 0``
on the old one (forgetting); ``S1^cpt`` is the forward area of the continuation alone and
``S2^pt``, ``S2^cpt`` the parts of the annealing area ``S2`` (gaps below the history's first
rate, every change counted, :mod:`fitting.areas`) that come from the base's and from the
continuation's updates. The curves are read from the history arrays of :mod:`fitting.continual`
(rates ``eta_i`` and the share ``p_i`` of each batch from the curve's own domain), so one fit
holds the base run and every branch on both domains. Per domain ``d`` (``old``, ``new``):
``L0_d``, ``A_d``, ``alpha_d``, ``C_d`` (the hidden curve of the base's training, on the old
data and as the new domain sees it), ``B_d``, ``E_d``, ``gamma_d``, and ``beta_new`` (the old
domain's forgetting is logarithmic, below); shared by both: the continuation's annealing
weight ``Ccpt``, the annealing momentum's ``decay`` and the replay's ``K_replay``.

**Departures from the paper** (figures: ``python bench/cpt.py``, leave one branch out of the
five tinycpt branches, :mod:`bench.cpt`):

- *The shift's drive is a power of the rate*, ``D_d = peak * sum_{cpt} (eta_i / peak)**gamma_d
  (1 - r_i)`` (``peak`` the base run's largest rate), where the paper has the area ``S1^cpt``
  (``gamma = 1``). With the area, the branch of the highest re-warm (3e-3) held out was
  predicted 2.1% too low on the new domain (PredE 0.0150) and the branch without re-warm 1.5%
  too high (0.0148): the new data are learned less than in proportion to the rate. One
  ``gamma`` shared by both domains (tried with a separate annealing momentum for the
  continuation, which alone moved no fold's PredE by more than 0.003) made the first -0.49%
  (0.0058) and the constant-1.5e-3 branch 0.0041 instead of 0.0081, but left the old domain's
  3e-3 branch 5.9% too low: forgetting grows with the rate faster than the new domain's gain,
  so each domain has its own ``gamma``. Over the five folds, new-domain PredE 0.0115 -> 0.0066
  (area -> a power per domain); old-domain 0.0183 -> 0.0210 (the replay fold, which rests on
  the prior of ``K``, 0.030 -> 0.049; the other four 0.0155 -> 0.0139). A term linear in
  ``D_old`` added to the saturating forgetting (``beta_old`` ends on its lower bound, a
  logarithmic growth) made the constant-1.5e-3 fold's old-domain PredE 0.0224 (from 0.0138)
  and was not kept.
- *Forgetting grows as a logarithm, without saturating*: on the old domain the shift is
  ``B_old * log(1 + E_old * D_old)`` (the paper's saturating power as ``beta -> 0``, one
  parameter fewer). With ``beta_old`` free it ended on its lower bound (0.02) in four of the
  five folds; in the fifth, the highest re-warm (``cos_3e-3``) held out, the branches of lower
  peaks chose a saturation (``beta_old = 0.26``) that left the held-out branch's forgetting
  short: its old-domain final -3.73% (PredE 0.0208). With the logarithm -2.37% (0.0140), the
  other folds unchanged to 0.0006; over the five folds old-domain PredE 0.0147 -> 0.0134,
  worst final 3.73% -> 2.37%. The old curves of the branches at a constant rate still rise
  about linearly at their end (``none``: 1.87 -> 2.00 over the last 600 steps), faster than
  either form. A Box-Cox family that holds both and a growth faster than the logarithm,
  ``B_old ((1 + E_old D_old)^b - 1) / b`` with ``b`` free in [-1, 1], chose a saturation again
  where the highest re-warm is held out (``cos_3e-3`` old final -3.73%, PredE 0.0208; five folds
  0.0148 against 0.0134), so the logarithm stays.
- *The new domain's gain saturates* (the paper's form): with the logarithm there too, new-domain
  PredE over the five folds 0.0064 -> 0.0105 (every held-out final but the replayed branch's
  1.4-2.4% low). Tying the continuation's gain to the base's power law of the new domain, as
  transferred area (``A_new (tau S1_base + D_new)^(-alpha_new)``, Hernandez et al. 2021's
  effective data), 0.0075 (``cos_3e-3`` final -1.63%).
- *The old domain's own forward area*: in ``A_old * S1_old^(-alpha_old)``, ``S1_old`` counts the
  old data seen -- the base's updates and the replayed share ``r_i`` of the continuation's --
  where the paper's ``S1`` is the whole history's for both domains (the new domain keeps it:
  what the base learned transfers). With replay the old domain goes on learning its own data
  (the replayed branch's old loss falls from 1.64 to 1.45 while the rate decays); with the
  whole area the law could only read that fall as annealing, and over-predicted the recovery
  of the highest re-warm. Over the five folds, old-domain PredE 0.0210 -> 0.0181 (replay fold
  0.049 -> 0.028).
- *One continuation annealing weight for both domains* (``Ccpt``; the paper's ``C2`` is per
  curve): the rate's reversible effect on the loss during the continuation, shared, so that on
  the old domain it is not confounded with forgetting (a branch at a high constant rate shows
  both). With the own area: old-domain PredE 0.0181 -> 0.0147 (``cos_3e-3`` 0.025 -> 0.021,
  final -4.76% -> -3.73%), new-domain 0.0060 -> 0.0064 (figures: ``python bench/cpt.py``).
- *Both domains in one fit*: the paper fits the general and the downstream loss separately;
  here they share the annealing momentum and the run's schedule, and the base run's two curves
  fix each domain's hidden curve before any branch is seen.
- *Replay* (share ``r`` of old data in each continuation batch): the paper fits each replay ratio
  on its own. Here the drive counts only the new data (the factor ``1 - r_i``), and forgetting
  is damped by the old data still seen,

  .. math:: \Delta L_{old}(s) = \frac{B_{old}}{1 + K \bar r(s)}\,\log\big(1 + E_{old}
            D_{old}(s)\big), \qquad \bar r(s) = \frac{\sum_{cpt, i \le s}
            \eta_i r_i}{\sum_{cpt, i \le s} \eta_i}

  (the rate-weighted mean replay so far, ``r`` at a constant share). ``K`` is identified only
  by a fitted run with replay; without one it is held at :data:`REPLAY_PRIOR`
  (:func:`cpt_bounds`), a round value for the literature's finding that a few percent of replay
  removes much of the forgetting (Ibrahim et al. 2024; Bethune et al. 2025), not fitted to any
  data here. Tried and not kept: forgetting that relaxes under replay (each increment of the
  logarithm decays by ``exp(-K r_i eta_i / peak)`` per update, so that with replay it is
  transient, as the replayed branch's old curve rises to 1.64 and falls back to 1.45). Fitted to
  every branch it describes that branch better (old PredE 0.0170 -> 0.0114, final +2.25% ->
  +0.50%; the others within 0.0008), but over the five folds the new domain gets worse (PredE
  0.0064 -> 0.0078: the shared annealing parameters move) and no published value of its ``K``
  exists to hold when no fitted run replays (the replay fold: old PredE 0.105).

**Base-only curves.** On the base run (``D = 0``, ``S2^cpt = 0``) the law is exactly
``lr_annealing`` with ``(L0_d, A_d, alpha_d, C_d, decay)`` (warmup "include"); on the new domain
it is the base's curve on the new data.

Registered in :data:`fitting.laws.CONTINUAL_LAWS`, not :data:`fitting.laws.LAWS`: its runs are
history arrays, which ``auto``'s comparison, the other-laws term of the bands and the planner's
law-agnostic searches would feed to the other laws as schedules (and theirs to it). The service
builds the histories from its runs' ``continues`` / ``domain`` / ``replay`` fields
(``app/services/continual.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fitting.areas import discounted_prefix_sum, forward_and_annealing_areas, forward_area
from fitting.continual import history_steps, rates_and_shares
from fitting.laws import Law, Parameter
from fitting.laws.lr_annealing import (
    LR_ANNEALING_DECAY_LOWER,
    LR_ANNEALING_DECAY_UPPER,
    MAX_MEMORY_FRACTION,
)

#: ``K`` held when no fitted run has replay: a replay share of 5% halves the forgetting.
REPLAY_PRIOR = 20.0


def shift_inputs(x: jax.Array, steps: jax.Array):
    """``(eta, k, is_old, u_away, rbar, continuing)`` of one history ``x`` at logged ``steps``:
    the rates, the history indices, whether the curve is the old domain's, ``(eta / peak) *
    (1 - r)`` per update (``peak`` the base run's largest rate; 0 on the base), the mean replay
    so far (see the module docstring) and the continuation's indicator per update."""
    eta, share = rates_and_shares(x)
    k = history_steps(steps)
    away = jnp.abs(share - share[0])  # 1 - r on the continuation, 0 on the base
    continuing = (away > 0).astype(x.dtype)
    peak = jnp.max(eta * (1.0 - continuing))
    area = forward_area(eta * continuing, k)
    replayed = forward_area(eta * continuing * (1.0 - away), k)
    rbar = replayed / jnp.maximum(area, 1e-30)
    return eta, k, share[0] > 0.5, eta / jnp.maximum(peak, 1e-30), away, rbar, continuing, peak


def predict(params: jax.Array, x: jax.Array, steps: jax.Array, ramp_end: jax.Array) -> jax.Array:
    """The loss on the curve's domain at ``steps``; ``params`` in :data:`CPT`'s order."""
    del ramp_end  # the law counts every change of the rate (see the module docstring)
    p = dict(zip(NAMES, (params[i] for i in range(len(NAMES))), strict=True))
    eta, k, is_old, unit, away, rbar, continuing, peak = shift_inputs(x, steps)
    s1, s2 = forward_and_annealing_areas(eta, k, p["decay"], 0)
    s2_cpt = discounted_prefix_sum((eta[0] - eta) * continuing, k, p["decay"])
    # the old domain's own data: the base's updates and the replayed share of the continuation's
    s1_old = jnp.maximum(s1 - forward_area(eta * continuing * away, k), 1e-30)
    s1 = jnp.maximum(s1, 1e-30)

    def domain(d, shift_of, damping, s1_d):
        # D_d = peak * sum (eta / peak) ** gamma_d * (1 - r): the new data's area when gamma = 1
        drive = peak * forward_area(jnp.power(unit, p[f"gamma_{d}"]) * away, k)
        shift = shift_of(p[f"E_{d}"] * drive)
        return (
            p[f"L0_{d}"]
            + p[f"A_{d}"] * jnp.power(s1_d, -p[f"alpha_{d}"])
            - p[f"C_{d}"] * (s2 - s2_cpt)
            - p["Ccpt"] * s2_cpt
            + p[f"B_{d}"] * shift * damping
        )

    # forgetting grows as a logarithm, the new domain's gain saturates (see the module docstring)
    old = domain("old", jnp.log1p, 1.0 / (1.0 + p["K_replay"] * rbar), s1_old)
    new = domain("new", lambda u: 1.0 - jnp.power(1.0 + u, -p["beta_new"]), 1.0, s1)
    return jnp.where(is_old, old, new)


def cpt_bounds(
    schedules: Sequence[np.ndarray], logged_steps: Sequence[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """Bounds the fitted histories impose: ``decay``'s memory at most
    :data:`~fitting.laws.lr_annealing.MAX_MEMORY_FRACTION` of the longest history (as
    ``lr_annealing``), and ``K_replay`` held at :data:`REPLAY_PRIOR` when no fitted run has
    replay (nothing else identifies it)."""
    longest = max(int(steps[-1]) // 2 + 1 for steps in logged_steps)
    upper = min(LR_ANNEALING_DECAY_UPPER, 1.0 - 1.0 / (MAX_MEMORY_FRACTION * longest))
    bounds = {"decay": (LR_ANNEALING_DECAY_LOWER, max(upper, LR_ANNEALING_DECAY_LOWER))}
    replayed = False
    for x, steps in zip(schedules, logged_steps, strict=True):
        share = np.asarray(x)[1 : int(steps[-1]) + 1 : 2]
        away = np.abs(share - share[0])
        replayed |= bool(np.any((away > 0) & (away < 1)))
    if not replayed:
        bounds["K_replay"] = (REPLAY_PRIOR, REPLAY_PRIOR)
    return bounds


def _domain_parameters(domain: str) -> tuple[Parameter, ...]:
    forgetting = domain == "old"
    lower, upper = (0.0, 20.0) if forgetting else (-20.0, 0.0)
    words = "forgetting per unit of log(1 + E*D)" if forgetting else "full gain"
    shift = (
        Parameter(f"B_{domain}", lower, upper, linear=True, doc=f"the shift's {words} ({domain})"),
        Parameter(f"E_{domain}", 1e-2, 1e5, "log", starts=(30.0, 300.0), doc="shift rate"),
    )
    if not forgetting:  # the gain saturates; forgetting is logarithmic (no exponent)
        shift += (
            Parameter(f"beta_{domain}", 0.02, 5.0, "log", starts=(0.3, 1.0), doc="shift exponent"),
        )
    return (
        Parameter(f"L0_{domain}", 0.0, 20.0, linear=True, doc=f"irreducible loss ({domain})"),
        Parameter(f"A_{domain}", 1e-6, 1e3, "log", linear=True, doc=f"power-law scale ({domain})"),
        Parameter(f"alpha_{domain}", 0.01, 3.0, starts=(0.25, 0.7), doc=f"exponent ({domain})"),
        Parameter(
            f"C_{domain}", 1e-6, 1e6, "log", linear=True, doc=f"annealing weight, base ({domain})"
        ),
        *shift,
        Parameter(
            f"gamma_{domain}", 0.0, 2.0, starts=(0.5, 1.0), doc="the shift's power of the rate"
        ),
    )


PARAMETERS = (
    *_domain_parameters("old"),
    *_domain_parameters("new"),
    Parameter(
        "Ccpt", 1e-6, 1e6, "log", linear=True, doc="annealing weight of the continuation (both)"
    ),
    Parameter(
        "decay",
        LR_ANNEALING_DECAY_LOWER,
        LR_ANNEALING_DECAY_UPPER,
        "log1m",
        starts=(0.96, 0.99),
        doc="decay lambda of the annealing momentum",
    ),
    Parameter(
        "K_replay",
        1e-2,
        1e4,
        "log",
        starts=(REPLAY_PRIOR,),
        doc="how strongly replay damps forgetting",
    ),
)
NAMES = tuple(p.name for p in PARAMETERS)

CPT = Law(
    name="cpt",
    formula=(
        "L_d(s) = L0_d + A_d*S1_d^(-alpha_d) - C_d*S2_base - Ccpt*S2_cpt "
        "+ B_old*log(1 + E_old*D_old) / (1 + K_replay*rbar) (old domain) "
        "| + B_new*(1 - (1 + E_new*D_new)^(-beta_new)) (new domain)"
    ),
    parameters=PARAMETERS,
    predict=predict,
    data_bounds=cpt_bounds,
)
