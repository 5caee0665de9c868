"""What a user gets, as frozen typed records, each with one way to and from JSON.

- :class:`FitReport`: a fit -- the law's name and parameters, the fitter's
  :class:`~fitting.fit.FitResult` fields, the cross-validation, the uncertainty behind the bands,
  the law's selection (``auto``) and what the runs identify. Its JSON is what the store's JSON
  column holds and what ``FitOut.result`` answers; everything that reads a stored fit reads it
  through :meth:`FitReport.from_json`.
- :class:`~fitting.predict.FittedLaw`: a law with fitted parameters, its warmup treatment and its
  uncertainty, the one record every prediction and plan is made under (it lives in ``fitting/``
  because the planner takes it); :class:`Model` says where one came from (a stored fit, or an
  inline law and parameters) and, without an uncertainty, why its predictions have no band.
- :class:`Curve`: a predicted curve -- steps, loss, its band (lower, upper) and the learning rate
  at those steps (``CurveOut`` on the wire).

No HTTP and no SQL here: the service, the routers and the CLI build and read these records; the
store keeps their JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from fitting.fit import DEFAULT_WARMUP, FitResult
from fitting.intervals import Uncertainty
from fitting.laws import LAWS
from fitting.predict import FittedLaw
from fitting.schedules import warmup_steps_of

__all__ = ["Curve", "FitReport", "FittedLaw", "Model", "json_safe"]


def json_safe(value: Any, unknown: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as JSON: arrays to lists, numpy scalars to Python's, non-finite floats to None
    (JSON has no NaN, and PostgreSQL's json refuses it); anything else that JSON cannot hold is
    kept, or passed to ``unknown`` (e.g. ``str`` for an error's details). The JSON form of every
    record of the service: fit reports, curves, plans, error bodies.

    >>> json_safe({"loss": np.array([2.5, np.inf]), "steps": np.int64(3), "ok": np.bool_(True)})
    {'loss': [2.5, None], 'steps': 3, 'ok': True}
    >>> json_safe([ValueError("bad")], unknown=str)
    ['bad']
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, unknown) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, unknown) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist(), unknown)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool) or unknown is None:
        return value
    return unknown(value)


@dataclass(frozen=True)
class FitReport:
    """A fit as its user gets it.

    Attributes:
      law ... identification: :class:`~fitting.fit.FitResult`'s fields (see there).
      selection: with law ``auto``, ``{chosen, scheme, candidates, note?}``: every registered
        law's cross-validation; None when the law was named.
      validation: the fitted law's cross-validation ``{law, scheme, pred_e, folds}``, or None.
      uncertainty: what the prediction bands are made of, in
        :meth:`fitting.intervals.Uncertainty.to_dict`'s form (read it with
        :meth:`band_uncertainty`), or None and ``uncertainty_note`` says why.
      total_seconds: wall time of the fit with its cross-validation and the other laws' fits.
      points_fitted: per run id, how many of its points the fit saw (stored fits; None in fits
        made before they recorded it).
      domains: a continual law's fit (``cpt``): ``{"old": ..., "new": ...}``, the runs' domain
        names behind the law's old domain (the parents') and new one; None otherwise.
    """

    law: str
    params: Mapping[str, float]
    objective: float | None
    converged: bool
    message: str
    iterations: int
    gradient_norm: float | None
    evaluations: int
    at_bounds: tuple[str, ...]
    fixed: Mapping[str, float]
    bounds: Mapping[str, Sequence[float]]
    warmup: str
    min_step: int
    huber_delta: float | None
    metrics: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    seconds: float = 0.0
    identification: Mapping[str, Any] = field(default_factory=dict)
    selection: Mapping[str, Any] | None = None
    validation: Mapping[str, Any] | None = None
    uncertainty: Mapping[str, Any] | None = None
    uncertainty_note: str | None = None
    total_seconds: float | None = None
    points_fitted: Mapping[str, int] | None = None
    domains: Mapping[str, str] | None = None

    @classmethod
    def of_fit(cls, result: FitResult, **report: Any) -> FitReport:
        """The report of ``result`` with the policy's ``selection``, ``validation``, ...; a
        :class:`~fitting.fit.FitResult` field this record lacks is a TypeError here, at once."""
        values = result.to_dict()
        values["at_bounds"] = tuple(values["at_bounds"])
        return cls(**values, **report)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (non-finite numbers as null), fields in declaration order."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["at_bounds"] = list(self.at_bounds)
        return json_safe(values)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FitReport:
        """The report stored as ``data`` (:meth:`to_json`'s form). Fields written by later
        versions than the fit's take their defaults."""
        values = {item.name: data[item.name] for item in fields(cls) if item.name in data}
        values.setdefault("objective", None)
        values.setdefault("converged", False)
        values.setdefault("message", "")
        values.setdefault("iterations", 0)
        values.setdefault("gradient_norm", None)
        values.setdefault("evaluations", 0)
        values["at_bounds"] = tuple(values.get("at_bounds") or ())
        values.setdefault("fixed", {})
        values.setdefault("bounds", {})
        values.setdefault("warmup", DEFAULT_WARMUP)
        values.setdefault("min_step", 0)
        values.setdefault("huber_delta", None)
        values["metrics"] = values.get("metrics") or {}
        values["identification"] = values.get("identification") or {}
        return cls(**values)

    def band_uncertainty(self) -> tuple[Uncertainty | None, str | None]:
        """The uncertainty behind the fit's prediction bands, or None and why there is none
        (none stored, unreadable, or comparing with a law no longer registered)."""
        if not self.uncertainty:
            return None, self.uncertainty_note or (
                "no prediction intervals: this fit stored no uncertainty"
            )
        try:
            uncertainty = Uncertainty.from_dict(self.uncertainty)
        except (KeyError, TypeError, ValueError):  # stored data, not this request's input
            return None, "no prediction intervals: this fit's stored uncertainty is unreadable"
        unknown = [name for name, _ in uncertainty.alternatives if name not in LAWS]
        if unknown:
            return None, (
                "no prediction intervals: this fit's band compares with laws no longer "
                f"registered ({unknown})"
            )
        return uncertainty, None

    def uncertainty_summary(self) -> dict[str, Any] | None:
        """``FitOut.uncertainty``: the figures of the band's terms, or None without one."""
        stored = self.uncertainty
        if not stored:
            return None
        return {
            "noise": stored.get("noise"),
            "model_error": stored.get("model_error"),
            "autocorrelation": stored.get("autocorrelation"),
            "folds": len(stored.get("fold_params") or ()),
            "other_laws": [a["law"] for a in stored.get("alternatives") or ()],
        }


@dataclass(frozen=True)
class Model:
    """The fitted law a prediction is made under, and where it came from: ``fit_id`` (None for
    an inline law and parameters) and, when ``fitted`` has no uncertainty, ``no_band``: why
    predictions under it have no band."""

    fitted: FittedLaw
    fit_id: str | None = None
    no_band: str | None = None
    domains: Mapping[str, str] | None = None  # a continual fit's (FitReport.domains)

    @classmethod
    def of_report(cls, report: FitReport, fit_id: str | None = None) -> Model:
        """The law a stored fit fitted, with the uncertainty it stored (or why it has none).
        A stored law no longer registered, or stored parameters that are not finite, are
        :class:`~fitting.errors.InvalidInput`."""
        uncertainty, why = report.band_uncertainty()
        fitted = FittedLaw(report.law, report.params, report.warmup, uncertainty)
        return cls(fitted, fit_id, why, report.domains)


@dataclass(frozen=True)
class Curve:
    """A predicted curve: the loss at ``steps`` of a schedule of ``total_steps`` steps, its band
    (``lower``, ``upper``; None without one), and ``lr``, the schedule's rate at those steps.

    Attributes:
      steps: ``(n,)`` int64 steps.
      loss: ``(n,)`` predicted losses.
      lr: ``(n,)`` the rate of each step.
      total_steps: the schedule's length.
      warmup_end: where its warmup ramp ends (:func:`fitting.schedules.warmup_steps_of`).
      lower, upper: ``(n,)`` the band, or None.
      name: the candidate's (or run's) name, or None.
    """

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    total_steps: int
    warmup_end: int
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    name: str | None = None

    @classmethod
    def on_schedule(
        cls,
        schedule: np.ndarray,
        steps: np.ndarray,
        loss: np.ndarray,
        band: tuple[np.ndarray, np.ndarray] | None = None,
        name: str | None = None,
    ) -> Curve:
        """The curve of ``loss`` at ``steps`` of the per-step rates ``schedule``."""
        lower, upper = (None, None) if band is None else band
        return cls(
            steps=np.asarray(steps, dtype=np.int64),
            loss=np.asarray(loss, dtype=np.float64),
            lr=np.asarray(schedule)[steps],
            total_steps=int(np.asarray(schedule).size),
            warmup_end=warmup_steps_of(schedule),
            lower=lower,
            upper=upper,
            name=name,
        )

    def to_json(self) -> dict[str, Any]:
        """``CurveOut``'s fields."""
        return {
            "name": self.name,
            "steps": self.steps.tolist(),
            "loss": self.loss.tolist(),
            "lower": None if self.lower is None else self.lower.tolist(),
            "upper": None if self.upper is None else self.upper.tolist(),
            "lr": self.lr.tolist(),
            "total_steps": self.total_steps,
            "warmup_end": self.warmup_end,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Curve:
        """The curve :meth:`to_json` wrote (a client reading an answer)."""

        def band(key: str) -> np.ndarray | None:
            value = data.get(key)
            return None if value is None else np.asarray(value, dtype=np.float64)

        return cls(
            steps=np.asarray(data["steps"], dtype=np.int64),
            loss=np.asarray(data["loss"], dtype=np.float64),
            lr=np.asarray(data["lr"], dtype=np.float64),
            total_steps=int(data["total_steps"]),
            warmup_end=int(data["warmup_end"]),
            lower=band("lower"),
            upper=band("upper"),
            name=data.get("name"),
        )
