"""The schedule optimiser: the monotone per-step schedule with a fixed peak, length and floor that
minimises the predicted final loss under a fitted law, compared with cosine and the best WSD of
the same length.

The free parameters are the decrements of a piecewise-linear schedule through knots
(:class:`_KnotSchedule`); L-BFGS-B descends on the exact gradient of the law's final-loss
prediction with respect to the per-step rates (one jitted value-and-gradient per law and length
bucket), pulled back to the knots in numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from fitting.compiled import bounded_jit
from fitting.errors import InvalidInput
from fitting.fit import count_traces, ramp_end_of
from fitting.laws import Law
from fitting.padding import pad_schedule, schedule_length_bucket
from fitting.plan.cost import TrainingScale
from fitting.plan.planned import PlannedRun
from fitting.plan.searches import best_cooldown
from fitting.predict import FittedLaw
from fitting.schedules import floor_rate, learning_rates

__all__ = ["DEFAULT_NUM_KNOTS", "OptimisedSchedule", "optimise_schedule"]

#: Knots of the optimised schedule (a piecewise-linear schedule through them).
DEFAULT_NUM_KNOTS = 256


@dataclass(frozen=True)
class OptimisedSchedule:
    """The per-step schedule that minimises the predicted final loss, and how it compares.

    Attributes:
      spec: the schedule as a ``piecewise`` spec (linear between the knots, the warmup ramp
        before them): ``learning_rates(spec)`` gives :attr:`lr` back exactly.
      lr: ``(T,)`` per-step rates.
      knot_steps, knot_lr: the knots.
      final_loss: its predicted final loss.
      baselines: ``{"cosine": {...}, "best_wsd": {...}}``, each with ``final_loss`` and ``spec``.
      gap_to_cosine, gap_to_best_wsd: ``final_loss`` minus theirs (negative: better).
      at_min_lr, at_peak: share of the steps after the warmup that sit on the floor / at the
        peak.
      constraints: the constraints the optimum sits on, each with ``name``, ``share`` of the
        steps on it, ``binding`` (the law's gradient pushes past it: without it the predicted
        loss would fall further) and a ``note``.
      converged, message, iterations, evaluations: the optimiser's account (best start).
      optimiser_seconds: time of the gradient descent (both starts, compilation included).
      seconds: total time, baselines included.
      cost: steps, tokens and FLOPs of the run.
    """

    spec: dict
    lr: np.ndarray
    knot_steps: list[int]
    knot_lr: list[float]
    final_loss: float
    baselines: dict[str, dict]
    gap_to_cosine: float
    gap_to_best_wsd: float
    at_min_lr: float
    at_peak: float
    constraints: list[dict]
    converged: bool
    message: str
    iterations: int
    evaluations: int
    optimiser_seconds: float
    seconds: float
    cost: dict

    @property
    def on_constraint(self) -> bool:
        return bool(self.constraints)

    def planned(self) -> PlannedRun:
        """The optimised schedule as the plan's answer."""
        return PlannedRun("optimised", int(self.lr.size), self.final_loss, self.spec, self.cost)


@bounded_jit(static_argnums=0, name="plan.final_loss_and_gradient")
@count_traces("plan.final_loss_and_gradient")
def _final_loss_and_gradient(law: Law, params, lr, last_step, ramp_end):
    """The prediction at ``last_step`` and its gradient with respect to every rate (by the
    law's ``exact_predict`` when it has one: a descent needs a loss smooth in the rates)."""
    predict = law.exact_predict or law.predict

    def final(rates):
        return predict(params, rates, last_step[None], ramp_end)[0]

    return jax.value_and_grad(final)(lr)


class _KnotSchedule:
    """Per-step rates from knot decrements ``d`` (in units of ``peak - floor``):

    ``v_0 = peak``, ``v_k = max(floor, peak - (peak - floor) * sum_{j<=k} d_j)``, ``d >= 0``,
    linear between knots on steps ``W .. T-1`` after the fixed warmup ramp. So the schedule is
    non-increasing after the warmup, never above the peak and never below the floor, whatever
    ``d`` the optimiser tries within its bounds ``0 <= d_k <= 1``.
    """

    def __init__(self, ramp, peak, floor, total, warmup, num_knots):
        self.ramp, self.peak, self.floor, self.total, self.warmup = ramp, peak, floor, total, warmup
        self.span = peak - floor
        self.knots = np.unique(np.linspace(warmup, total - 1, num_knots + 1).round()).astype(
            np.int64
        )
        post = np.arange(warmup, total)
        self.index = np.clip(
            np.searchsorted(self.knots, post, side="right") - 1, 0, self.knots.size - 2
        )
        left, right = self.knots[self.index], self.knots[self.index + 1]
        self.weight = (post - left) / (right - left)

    @property
    def size(self) -> int:
        return self.knots.size - 1

    def values(self, d: np.ndarray) -> np.ndarray:
        drop = self.span * np.concatenate([[0.0], np.cumsum(d)])
        return np.maximum(self.peak - drop, self.floor)

    def rates(self, d: np.ndarray) -> np.ndarray:
        # np.interp, as the piecewise family computes it: flat stays exactly flat.
        post = np.interp(np.arange(self.warmup, self.total), self.knots, self.values(d))
        return np.concatenate([self.ramp, post])

    def decrements_of(self, lr: np.ndarray) -> np.ndarray:
        """The ``d`` whose knots sample ``lr`` (a non-increasing schedule after the warmup)."""
        v = np.clip(np.minimum.accumulate(lr[self.knots]), self.floor, self.peak)
        v[0] = self.peak
        return np.clip(-np.diff(v) / self.span, 0.0, 1.0)

    def pull_back(self, d: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """The gradient with respect to ``d`` from the gradient with respect to the rates."""
        g = gradient[self.warmup : self.total]
        size = self.knots.size
        g_v = np.bincount(self.index, g * (1 - self.weight), size) + np.bincount(
            self.index + 1, g * self.weight, size
        )
        free = self.peak - self.span * np.concatenate([[0.0], np.cumsum(d)]) > self.floor
        g_v = np.where(free, g_v, 0.0)
        return -self.span * np.cumsum(g_v[::-1])[::-1][1:]


def optimise_schedule(
    model: FittedLaw,
    *,
    peak_lr: float,
    total_steps: int,
    num_warmup_steps: int = 0,
    warmup_init_value: float = 0.0,
    min_lr: float | None = None,
    min_lr_ratio: float | None = None,
    num_knots: int = DEFAULT_NUM_KNOTS,
    max_iterations: int = 1000,
    scale: TrainingScale | None = None,
) -> OptimisedSchedule:
    """The non-increasing schedule (after a fixed warmup ramp) with a fixed peak, length and
    floor that minimises the predicted final loss.

    The schedule is piecewise linear through ``num_knots + 1`` knots evenly spaced over steps
    ``W .. T - 1``, the first at ``peak_lr``; the free parameters are the knots' non-negative
    decrements (:class:`_KnotSchedule`). L-BFGS-B descends on the exact gradient of the law's
    final-loss prediction (JAX), from two starts -- the cosine and the best WSD of the same frame
    -- and keeps the better optimum.

    The constraints are what keeps the optimum meaningful. Both laws have degenerate optima: the
    LR-annealing law keeps lowering its prediction as the rate drops to 0 and stays there (its
    annealing term grows while the forward area stops), and for every law a larger peak looks
    better. So the length is fixed, the rate never exceeds ``peak_lr`` nor falls below the floor,
    and the result says in :attr:`OptimisedSchedule.constraints` when the optimum sits on one of
    them and whether the law would push past it.

    Args:
      model: the fitted law.
      peak_lr, total_steps, num_warmup_steps, warmup_init_value: the frame (the warmup ramp is
        that of every family in :mod:`fitting.schedules`).
      min_lr, min_lr_ratio: the floor (default 0).
      num_knots: knots after the warmup (fewer when the schedule is shorter).
      max_iterations: L-BFGS-B iterations per start.
      scale: for the run's cost in tokens and FLOPs.

    Returns:
      An :class:`OptimisedSchedule`.
    """
    began = time.perf_counter()
    floor = floor_rate(peak_lr, min_lr, min_lr_ratio)
    frame = {
        "peak_lr": peak_lr,
        "total_steps": total_steps,
        "num_warmup_steps": num_warmup_steps,
        "warmup_init_value": warmup_init_value,
    }
    cosine_spec = {"type": "cosine", **frame, "min_lr": floor}
    cosine = learning_rates(cosine_spec)  # checks the frame
    peak, total, warmup = float(peak_lr), int(total_steps), int(num_warmup_steps)
    if not floor < peak:
        raise InvalidInput(
            f"requires min_lr < peak_lr to optimise, got min_lr={floor}, peak_lr={peak}"
        )
    if total - warmup < 3:
        raise InvalidInput(f"requires at least 3 steps after the warmup, got {total - warmup}")
    if int(num_knots) < 1:
        raise InvalidInput(f"requires num_knots >= 1, got num_knots={num_knots}")
    cooldown = best_cooldown(model, **frame, min_lr=floor)
    best_wsd = learning_rates(cooldown.best["spec"])

    knots = _KnotSchedule(cosine[:warmup], peak, floor, total, warmup, int(num_knots))
    length = schedule_length_bucket(total)
    params = jnp.asarray([model.params[name] for name in model.law.names], dtype=jnp.float64)
    ramp_end = jnp.asarray(ramp_end_of(cosine, model.warmup))
    last = jnp.asarray(total - 1)

    def loss_and_rate_gradient(lr):
        value, gradient = _final_loss_and_gradient(
            model.law, params, jnp.asarray(pad_schedule(lr, length)), last, ramp_end
        )
        return float(value), np.asarray(gradient)

    def objective(d):
        value, gradient = loss_and_rate_gradient(knots.rates(d))
        return value, knots.pull_back(d, gradient)

    optimised = time.perf_counter()
    baseline_losses = {
        "cosine": loss_and_rate_gradient(cosine)[0],
        "best_wsd": loss_and_rate_gradient(best_wsd)[0],
    }
    best = None
    for start in (cosine, best_wsd):
        outcome = scipy.optimize.minimize(
            objective,
            knots.decrements_of(start),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * knots.size,
            options={"maxiter": int(max_iterations), "ftol": 1e-15, "gtol": 1e-10, "maxcor": 30},
        )
        if best is None or outcome.fun < best.fun:
            best = outcome
    optimiser_seconds = time.perf_counter() - optimised

    lr = knots.rates(best.x)
    final_loss, gradient = loss_and_rate_gradient(lr)
    values = knots.values(best.x)
    spec = {
        "type": "piecewise",
        "total_steps": total,
        "steps": knots.knots.tolist(),
        "values": values.tolist(),
        "num_warmup_steps": warmup,
        "warmup_init_value": warmup_init_value,
    }
    after = lr[warmup:]
    tol = 1e-9 * knots.span
    on_floor = after <= floor + tol
    on_peak = after >= peak - tol
    constraints = _constraints_met(on_floor, on_peak, gradient[warmup:total], floor, peak)
    converged, message = _converged(best, knots, objective)
    return OptimisedSchedule(
        spec=spec,
        lr=lr,
        knot_steps=knots.knots.tolist(),
        knot_lr=values.tolist(),
        final_loss=final_loss,
        baselines={
            "cosine": {"final_loss": baseline_losses["cosine"], "spec": cosine_spec},
            "best_wsd": {"final_loss": baseline_losses["best_wsd"], "spec": cooldown.best["spec"]},
        },
        gap_to_cosine=final_loss - baseline_losses["cosine"],
        gap_to_best_wsd=final_loss - baseline_losses["best_wsd"],
        at_min_lr=float(on_floor.mean()),
        at_peak=float(on_peak.mean()),
        constraints=constraints,
        converged=converged,
        message=message,
        iterations=int(best.nit),
        evaluations=int(best.nfev),
        optimiser_seconds=optimiser_seconds,
        seconds=time.perf_counter() - began,
        cost=(scale or TrainingScale()).cost(total),
    )


def _constraints_met(on_floor, on_peak, gradient, floor, peak) -> list[dict]:
    """The bounds the optimum sits on, and whether the law pushes past them (a positive
    gradient on the floor: a lower rate would lower the loss; a negative one at the peak)."""
    met = []
    if on_floor.any():
        binding = bool(np.sum(gradient[on_floor]) > 0)
        met.append(
            {
                "name": "min_lr",
                "share": float(on_floor.mean()),
                "binding": binding,
                "note": (
                    f"{on_floor.mean():.1%} of the steps after the warmup sit on the floor "
                    f"min_lr={floor:.3g}"
                    + (
                        "; the law would lower the loss further with a lower floor (the floor "
                        "is a constraint, not the law's optimum)"
                        if binding
                        else ""
                    )
                ),
            }
        )
    if on_peak.any():
        binding = bool(np.sum(gradient[on_peak]) < 0)
        met.append(
            {
                "name": "peak_lr",
                "share": float(on_peak.mean()),
                "binding": binding,
                "note": (
                    f"{on_peak.mean():.1%} of the steps after the warmup stay at the peak "
                    f"peak_lr={peak:.3g}"
                    + (
                        "; the law would lower the loss further with a higher peak (the peak "
                        "is fixed, not the law's optimum)"
                        if binding
                        else ""
                    )
                ),
            }
        )
    return met


def _converged(outcome, knots: _KnotSchedule, objective) -> tuple[bool, str]:
    """L-BFGS-B's verdict; a line-search failure is accepted when the projected gradient is
    negligible (the objective is flat to rounding there)."""
    message = str(outcome.message)
    if outcome.success:
        return True, message
    _, gradient = objective(outcome.x)
    projected = np.where(
        ((outcome.x <= 0) & (gradient > 0)) | ((outcome.x >= 1) & (gradient < 0)), 0.0, gradient
    )
    size = float(np.max(np.abs(projected), initial=0.0))
    if size <= 1e-7:
        return True, f"{message} (accepted: projected gradient {size:.1e})"
    return False, message
