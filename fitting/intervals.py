r"""Prediction intervals: how far to trust a predicted loss curve.

Three sources of error are added on the log scale the fit works in:

.. math::

    v(s) = \underbrace{g(s)^\top \Sigma \, g(s)}_{\text{parameters}}
         + \underbrace{\max(\sigma^2, \sigma_{cv}^2)}_{\text{noise and model error}}
         + \underbrace{\tfrac{K-1}{K} \sum_k (f_k(s) - \bar f(s))^2}_{\text{jackknife over folds}},
    \qquad \log \hat L(s) \pm z_{(1+\ell)/2} \sqrt{v(s)}

- Parameters (Laplace / delta method): ``g(s) = d log L(s) / du`` by JAX in the fit coordinates
  ``u`` of the free parameters (held ones and those on a bound carry no variance), and the
  sandwich covariance of the run-weighted least-squares problem the fit solves,
  ``Sigma = kappa sigma^2 (J'WJ)^-1 (J'W^2J) (J'WJ)^-1``, ``W = diag(1/n_r)``, inflated by
  ``kappa = (1 + rho)/(1 - rho)`` for the lag-1 autocorrelation ``rho`` of the residuals (a loss
  curve's residuals are a smooth misfit, not independent noise).
- Noise and model error: ``sigma`` is a robust scale (MAD) of the fitted runs' log residuals;
  ``sigma_cv`` the root-mean-square log error on held-out data in the cross-validation of
  :mod:`fitting.select` (a law's error on a schedule it has not seen, which on real curves is
  several times the noise).
- Jackknife over folds: the ``K`` cross-validation fits ``f_k``, each without one run (or without
  the last 20% of a single run), disagree most where the prediction extrapolates (long horizons,
  deep or unseen annealing), which widens the band there.

Without a cross-validation (one fold cannot be jackknifed), only the first two terms with
``sigma`` remain, and the band says less than it should: the service always cross-validates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from fitting.fit import FitResult, Run, pad_candidates, predict_losses
from fitting.laws import Law, from_fit_coordinates, to_fit_coordinates
from fitting.select import Validation

DEFAULT_LEVEL = 0.9
MAX_AUTOCORRELATION = 0.95


@dataclass(frozen=True)
class Uncertainty:
    """What a prediction interval needs from a fit.

    Attributes:
      covariance: ``(P, P)`` covariance of the fit coordinates (zero rows for held parameters).
      noise: robust standard deviation of the log residuals on the fitted runs.
      autocorrelation: lag-1 autocorrelation of those residuals (the inflation's ``rho``).
      model_error: root-mean-square held-out log error of the cross-validation (0 without one).
      fold_params: the cross-validation fits' parameters (empty without one).
    """

    covariance: np.ndarray
    noise: float
    autocorrelation: float
    model_error: float = 0.0
    fold_params: tuple[dict[str, float], ...] = ()

    def to_dict(self) -> dict:
        return {
            "covariance": np.asarray(self.covariance).tolist(),
            "noise": self.noise,
            "autocorrelation": self.autocorrelation,
            "model_error": self.model_error,
            "fold_params": list(self.fold_params),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Uncertainty:
        return cls(
            covariance=np.asarray(data["covariance"], dtype=np.float64),
            noise=float(data["noise"]),
            autocorrelation=float(data["autocorrelation"]),
            model_error=float(data.get("model_error", 0.0)),
            fold_params=tuple(dict(p) for p in data.get("fold_params", ())),
        )


def _log_prediction(law: Law, fitted, lr, steps, ramp_end):
    params = from_fit_coordinates(law, fitted)
    predicted = law.predict(params, lr, steps, ramp_end)
    return jnp.log(jnp.maximum(predicted, 1e-12))


@functools.partial(jax.jit, static_argnums=0)
def _log_prediction_and_jacobian(law: Law, fitted, lr, steps, ramp_end):
    """Log prediction ``(B, n)`` and its Jacobian ``(B, n, P)`` in fit coordinates."""

    def one(lr_row, steps_row, ramp_row):
        value = _log_prediction(law, fitted, lr_row, steps_row, ramp_row)
        jacobian = jax.jacfwd(_log_prediction, argnums=1)(law, fitted, lr_row, steps_row, ramp_row)
        return value, jacobian

    return jax.vmap(one)(lr, steps, ramp_end)


def _evaluate(law: Law, params: Mapping[str, float], schedules, steps, warmup):
    vector = jnp.asarray([params[name] for name in law.names], dtype=jnp.float64)
    lr, padded_steps, ramp_end = pad_candidates(schedules, steps, warmup)
    value, jacobian = _log_prediction_and_jacobian(
        law, to_fit_coordinates(law, vector), lr, padded_steps, ramp_end
    )
    value, jacobian = np.asarray(value), np.asarray(jacobian)
    return [(value[j, : s.size], jacobian[j, : s.size]) for j, s in enumerate(steps)]


def estimate_uncertainty(
    law: Law, result: FitResult, runs: Sequence[Run], validation: Validation | None = None
) -> Uncertainty:
    """The uncertainty of ``result``, fitted to ``runs``, with ``validation`` (the
    cross-validation of the same law, runs and options) for the model-error and jackknife terms.
    """
    runs = [
        Run(r.lr, r.steps[r.steps >= result.min_step], r.loss[r.steps >= result.min_step], r.name)
        for r in runs
    ]
    evaluated = _evaluate(
        law, result.params, [r.lr for r in runs], [r.steps for r in runs], result.warmup
    )
    residuals = [np.log(r.loss) - value for r, (value, _) in zip(runs, evaluated, strict=True)]
    jacobian = np.concatenate([j for _, j in evaluated])
    weights = np.concatenate([np.full(r.steps.size, 1.0 / r.steps.size) for r in runs])
    flat = np.concatenate(residuals)
    noise = float(1.4826 * np.median(np.abs(flat - np.median(flat))))
    products = [np.sum(r[1:] * r[:-1]) / np.sum(r * r) for r in residuals if r.size > 2]
    rho = float(np.clip(np.mean(products) if products else 0.0, 0.0, MAX_AUTOCORRELATION))

    held = set(result.at_bounds) | {n for n, (lo, hi) in result.bounds.items() if lo == hi}
    free = np.array([name not in held for name in law.names])
    covariance = np.zeros((len(law.names), len(law.names)))
    if free.any():
        j = jacobian[:, free]
        bread = np.linalg.pinv(j.T @ (weights[:, None] * j))
        meat = j.T @ ((weights**2)[:, None] * j)
        inflation = (1 + rho) / (1 - rho)
        covariance[np.ix_(free, free)] = inflation * noise**2 * bread @ meat @ bread
    if validation is None or not validation.log_residuals:
        return Uncertainty(covariance, noise, rho)
    model_error = float(np.sqrt(np.mean([np.mean(r**2) for r in validation.log_residuals])))
    return Uncertainty(covariance, noise, rho, model_error, tuple(validation.fold_params))


def predict_intervals(
    law: Law,
    params: Mapping[str, float],
    uncertainty: Uncertainty,
    schedules: Sequence[np.ndarray],
    steps: Sequence[np.ndarray],
    warmup: str,
    level: float = DEFAULT_LEVEL,
) -> list[dict[str, np.ndarray]]:
    """Predicted loss with a ``level`` prediction band for each schedule at its steps.

    Returns one dict per schedule with ``loss``, ``lower``, ``upper`` arrays.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got level={level}")
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    schedules = [np.asarray(lr, dtype=np.float64) for lr in schedules]
    steps = [np.asarray(s, dtype=np.int64) for s in steps]
    folds = [
        [np.log(np.maximum(p, 1e-12)) for p in predict_losses(law, fold, schedules, steps, warmup)]
        for fold in uncertainty.fold_params
    ]  # per fold, per schedule: log predictions
    floor = max(uncertainty.noise, uncertainty.model_error) ** 2
    out = []
    for j, (value, jacobian) in enumerate(_evaluate(law, params, schedules, steps, warmup)):
        spread = np.einsum("np,pq,nq->n", jacobian, uncertainty.covariance, jacobian)
        if len(folds) >= 2:
            per_fold = np.stack([fold[j] for fold in folds])
            k = per_fold.shape[0]
            spread = spread + (k - 1) / k * np.sum((per_fold - per_fold.mean(0)) ** 2, axis=0)
        half = z * np.sqrt(np.maximum(spread, 0.0) + floor)
        out.append(
            {"loss": np.exp(value), "lower": np.exp(value - half), "upper": np.exp(value + half)}
        )
    return out
