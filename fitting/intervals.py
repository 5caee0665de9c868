r"""Prediction intervals: how far to trust a predicted loss curve.

Three sources of error are added on the log scale the fit works in:

.. math::

    v(s) = \underbrace{g(s)^\top \Sigma \, g(s)}_{\text{parameters}}
         + \underbrace{\max\big(\sigma^2,\ \sigma_{cv}^2,\
           \tfrac{K-1}{K} \textstyle\sum_k (f_k(s) - \bar f(s))^2\big)}_{\text{noise, model error
           and the folds' spread}}
         + \underbrace{\tfrac{1}{M} \sum_m (a_m(s) - f(s))^2}_{\text{other laws}},
    \qquad \log \hat L(s) \pm z_{(1+\ell)/2} \sqrt{v(s)}

- Parameters (Laplace / delta method): ``g(s) = d log L(s) / du`` by JAX in the fit coordinates
  ``u`` of the free parameters (held ones and those on a bound carry no variance), and the
  sandwich covariance of the run-weighted least-squares problem the fit solves,
  ``Sigma = kappa sigma^2 (J'WJ)^-1 (J'W^2J) (J'WJ)^-1``, ``W = diag(1/n_r)``, inflated by
  ``kappa = (1 + rho)/(1 - rho)`` for the lag-1 autocorrelation ``rho`` of the residuals (a loss
  curve's residuals are a smooth misfit, not independent noise).
- Noise, model error and the folds' spread -- three measures of one error, the larger used:
  ``sigma`` is a robust scale (MAD) of the fitted runs' log residuals (the error on data the law
  has seen); ``sigma_cv`` the root-mean-square log error on held-out data in the
  cross-validation of :mod:`fitting.select` (a law's error on a schedule it has not seen, which
  on real curves is several times the noise); and the jackknife over folds, the ``K``
  cross-validation fits ``f_k``, each without one run (or without the last 20% / 40% of a single
  run), which disagree most where the prediction extrapolates (long horizons, deep or unseen
  annealing), so it widens the band there. The held-out error and the folds' spread come from the
  same fold fits (both measure how far a fit without some of the data strays), so adding them
  counted one piece of evidence twice: the band takes the held-out
  error where the folds agree and their spread where they do not. On the live-forecast protocol
  (``bench/live_forecast.py``, a cut job with two complete runs of its model), the sum made the
  90% bands hold every final loss at 25M with a median half-width 5x the median error (1.07% of
  the loss for 0.20%); the larger of the two, 0.87%, still holds every one (95% of them at 400M
  either way, 1.18% -> 1.03%). For a fit *for* some of its runs (a running job with its group's
  complete runs, ``targets``), the held-out error is that of the folds that hold out those runs:
  how far the law, fitted to the other runs, strays on the job -- the question the forecast asks,
  as ``auto``'s choice does (:mod:`fitting.select`). The other folds measure it on the group's
  runs (a cosine predicted from two constant-rate runs, its cooldown resting on the prior), which
  the job's forecast, fitted with them, does not face; their spread still enters through the
  jackknife. On that protocol (through the API) the median half-width went from 0.77% to 0.75%
  at 25M and from 1.28% to 1.13% at 400M, with the same coverage (100%, 95%):
  ``constant_72000``'s bands narrowed from +-1.27% to +-0.18 .. 0.67% at 400M around errors of
  0.07 .. 0.19%, and the WSD cooldowns' bands, set by the folds' spread and the other law,
  stayed at +-1.5 .. 1.7%.
- Other laws (structural uncertainty): the ``M`` other registered laws ``a_m``, fitted to the same
  runs (``law: auto`` fits them all). Where two laws that both fit the runs disagree on a
  schedule, the data do not decide between them, and the band must hold either answer: the other
  law's prediction counts as one more error of its size. This term is what widens the band on
  schedules unlike the fitting runs; the first two barely see them (the folds share the law's
  form, and its misfit on a new kind of schedule is systematic, not noise).

Measured on the MPL curves (fit on ``cosine_24000``, ``constant_24000``, ``wsdcon_9``; six held-out
curves), the share of logged points inside the 90% band without -> with the last term:
``lr_annealing`` (``multi_power`` the other law) 99.8% -> 100% at 25M, 83% -> 97% at 400M, for a
median band width of 0.75% -> 0.77% and 0.72% -> 0.84% of the loss; ``multi_power`` 90% -> 94%
and 79% -> 87% (widths 0.58% -> 0.59%, 0.50% -> 0.62%). The final losses of the 400M WSD
cooldowns stay outside the ``lr_annealing`` band (it over-predicts the cooldown's gain there by
0.8-1.2%, and so, less, does ``multi_power``). A Student quantile for ``K`` folds in place of
``z`` doubled every width (100% of points at 25M) and still missed them, so it is not used.
With the folds' evidence counted once (above) in place of the sum: ``lr_annealing`` 99.9% and
96.8% of points (widths 0.74%, 0.74%), ``multi_power`` 91.7% and 85.9% (0.52%, 0.59%).

Laplace or bootstrap for the parameter term: a moving-block bootstrap of the fitted runs' log
residuals (blocks of 10 points, 40 refits) gave parameter spreads 1.2-2x the Laplace ones at the
held-out curves' ends, but both are at most 0.07% of the loss beside a model-error floor of about
0.2%, and the bands' coverage is the same (``lr_annealing``, with the other law: 100% / 97.2% of
points at 25M / 400M against 100% / 97.1%, the same finals, median widths within 0.01%). The
Laplace term costs one Jacobian instead of 40 fits (7 s), so it is the one used.

Without a cross-validation (one fold cannot be jackknifed), only the parameters and ``sigma``
remain, and the band says less than it should: the service always cross-validates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from fitting.compiled import bounded_jit
from fitting.errors import InvalidInput
from fitting.fit import (
    LOSS_FLOOR,
    FitResult,
    Run,
    count_traces,
    pad_candidates,
    predict_losses,
)
from fitting.laws import Law, from_fit_coordinates, get_law, to_fit_coordinates
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
      alternatives: ``(law name, parameters)`` of the other laws fitted to the same runs with the
        same options (empty when only one law was fitted).
    """

    covariance: np.ndarray
    noise: float
    autocorrelation: float
    model_error: float = 0.0
    fold_params: tuple[dict[str, float], ...] = ()
    alternatives: tuple[tuple[str, dict[str, float]], ...] = ()

    def to_dict(self) -> dict:
        return {
            "covariance": np.asarray(self.covariance).tolist(),
            "noise": self.noise,
            "autocorrelation": self.autocorrelation,
            "model_error": self.model_error,
            "fold_params": list(self.fold_params),
            "alternatives": [{"law": name, "params": p} for name, p in self.alternatives],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Uncertainty:
        return cls(
            covariance=np.asarray(data["covariance"], dtype=np.float64),
            noise=float(data["noise"]),
            autocorrelation=float(data["autocorrelation"]),
            model_error=float(data.get("model_error", 0.0)),
            fold_params=tuple(dict(p) for p in data.get("fold_params", ())),
            alternatives=tuple(
                (str(a["law"]), dict(a["params"])) for a in data.get("alternatives", ())
            ),
        )


def _log_prediction(law: Law, fitted, lr, steps, ramp_end):
    params = from_fit_coordinates(law, fitted)
    predicted = law.predict(params, lr, steps, ramp_end)
    return jnp.log(jnp.maximum(predicted, LOSS_FLOOR))


@bounded_jit(static_argnums=0, name="intervals.log_prediction_and_jacobian")
@count_traces("intervals.log_prediction_and_jacobian")
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
    law: Law,
    result: FitResult,
    runs: Sequence[Run],
    validation: Validation | None = None,
    alternatives: Sequence[FitResult] = (),
    targets: Sequence[int] | None = None,
) -> Uncertainty:
    """The uncertainty of ``result``, fitted to ``runs``, with ``validation`` (the
    cross-validation of the same law, runs and options) for the model-error and jackknife terms,
    and ``alternatives`` (other laws' fits to the same runs and options) for the other-laws term.
    ``targets``: the indices of the runs the fit is for, when the others only lend them strength
    (a running job with its group): the model error is then the held-out error of the folds that
    hold out those runs (see the module docstring), where every one of them has such a fold.
    """
    for other in alternatives:
        if other.law == result.law or other.warmup != result.warmup:
            raise ValueError(
                f"an alternative must be another law fitted with the same warmup, got "
                f"{other.law!r} (warmup {other.warmup!r}) for {result.law!r} ({result.warmup!r})"
            )
    others = tuple((other.law, dict(other.params)) for other in alternatives)
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
    prior = (result.identification or {}).get("prior")
    if prior:
        covariance += _prior_covariance(law, prior, jacobian, weights, free)
    if validation is None or not validation.log_residuals:
        return Uncertainty(covariance, noise, rho, alternatives=others)
    held_out = validation.log_residuals
    if targets and all(i in validation.run_log_residuals for i in targets):
        held_out = [validation.run_log_residuals[i] for i in targets]
    model_error = float(np.sqrt(np.mean([np.mean(r**2) for r in held_out])))
    return Uncertainty(covariance, noise, rho, model_error, tuple(validation.fold_params), others)


def _prior_covariance(
    law: Law, prior: Mapping, jacobian: np.ndarray, weights: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """The covariance that parameters held at a prior (runs that do not identify them) add:
    the prior's own covariance ``P`` carried through the fit. Were a held parameter ``h`` moved
    by ``dh``, the free ones would be refitted and move by ``dF = -(J_f'WJ_f)^+ J_f'WJ_h dh``
    (Gauss-Newton), so a perturbation of all parameters is ``T dh`` with ``T = [I; dF/dh]``, and
    the term is ``T P T'``. The refit matters: a held annealing gain shifts the warmup ramp's
    after-effect, which the free ``L0`` absorbs, so a run that never anneals gains no width."""
    held = np.array([law.index(name) for name in prior["parameters"]])
    transfer = np.zeros((len(law.names), held.size))
    transfer[held, np.arange(held.size)] = 1.0
    if free.any():
        j_free, j_held = jacobian[:, free], jacobian[:, held]
        gram = j_free.T @ (weights[:, None] * j_free)
        transfer[free] = -np.linalg.pinv(gram) @ (j_free.T @ (weights[:, None] * j_held))
    return transfer @ np.asarray(prior["covariance"], dtype=np.float64) @ transfer.T


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
        raise InvalidInput(f"level must lie in (0, 1), got level={level}")
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    schedules = [np.asarray(lr, dtype=np.float64) for lr in schedules]
    steps = [np.asarray(s, dtype=np.int64) for s in steps]

    def log_predictions(other: Law, params: Mapping[str, float]) -> list[np.ndarray]:
        return [
            np.log(np.maximum(p, LOSS_FLOOR))
            for p in predict_losses(other, params, schedules, steps, warmup)
        ]

    folds = [log_predictions(law, fold) for fold in uncertainty.fold_params]
    others = [log_predictions(get_law(name), p) for name, p in uncertainty.alternatives]
    floor = max(uncertainty.noise, uncertainty.model_error) ** 2
    out = []
    for j, (value, jacobian) in enumerate(_evaluate(law, params, schedules, steps, warmup)):
        spread = np.einsum("np,pq,nq->n", jacobian, uncertainty.covariance, jacobian)
        error = np.full(value.shape, floor)
        if len(folds) >= 2:
            per_fold = np.stack([fold[j] for fold in folds])
            k = per_fold.shape[0]
            jackknife = (k - 1) / k * np.sum((per_fold - per_fold.mean(0)) ** 2, axis=0)
            error = np.maximum(error, jackknife)
        if others:
            spread = spread + np.mean([(other[j] - value) ** 2 for other in others], axis=0)
        half = z * np.sqrt(np.maximum(spread, 0.0) + error)
        out.append(
            {"loss": np.exp(value), "lower": np.exp(value - half), "upper": np.exp(value + half)}
        )
    return out
