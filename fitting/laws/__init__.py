"""Scaling laws of the loss curve, each described as data (a :class:`Law` record).

A law is its name, its parameters (bounds, the coordinate the fitter works in, starting values,
whether it enters the prediction linearly) and one pure ``predict`` function. The fitter, the
uncertainty code, the planner and the API work on any law through this record only. Adding a law
is one new module here and one line in :data:`LAWS` (or, for a law of runs that continue runs,
:data:`CONTINUAL_LAWS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from fitting.errors import InvalidInput
from fitting.priors import Prior, Reference

# predict(params, lr, steps, ramp_end) -> loss at steps. ``params`` is the vector of natural
# parameter values in the law's order; ``lr`` one padded per-step schedule ``(T,)``; ``steps``
# ``(n,)``; ``ramp_end`` the index of the schedule's first peak when the warmup ramp is excluded
# from annealing terms, else 0 (see fitting.areas).
Predict = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]

# data_bounds(schedules, logged_steps) -> {name: (lower, upper)}: bounds that the fitting data
# imposes on some parameters (equal bounds fix a parameter the data cannot identify).
DataBounds = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], dict[str, tuple[float, float]]]

# penalty(params) -> scalar added to the fit objective (e.g. a weak prior toward typical values
# of parameters the data may not identify); ``params`` as for Predict.
Penalty = Callable[[jax.Array], jax.Array]

# annealing_prior(reference) -> Prior: the values (and their spread) at which a fit holds the
# law's annealing response when its runs show no decay of the rate (fitting.priors).
AnnealingPrior = Callable[[Reference], Prior]

# The coordinates the optimiser works in: bounded parameters spanning decades are fitted in log
# space, a decay close to 1 in log(1 - decay), so that one step of the optimiser means the same
# relative change for every parameter.
_TO_FIT = {"identity": lambda x: x, "log": jnp.log, "log1m": lambda x: jnp.log1p(-x)}
_FROM_FIT = {"identity": lambda u: u, "log": jnp.exp, "log1m": lambda u: -jnp.expm1(u)}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a law.

    Attributes:
      name: as shown to users.
      lower, upper: bounds on the natural value.
      coordinate: "identity", "log" or "log1m": what the optimiser moves.
      starts: starting values tried by the multi-start grid (ignored for linear parameters).
      linear: the prediction is affine in it; the fitter solves it by least squares per start.
      doc: one line for users.
    """

    name: str
    lower: float
    upper: float
    coordinate: str = "identity"
    starts: tuple[float, ...] = ()
    linear: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Law:
    """A law as data: its parameters and a pure, jit-able ``predict``.

    ``data_bounds`` (optional) narrows or fixes parameters from the fitting data; ``penalty``
    (optional, pure and jit-able) is added to the fit objective, in the objective's units;
    ``refined_starts`` (optional) replaces the fitter's default number of grid starts refined;
    ``exact_predict`` (optional, same signature as ``predict``) is the law computed without the
    approximations ``predict`` makes for speed over many steps, for callers that ask for a few
    steps and need a prediction smooth in the schedule (the planner's descent on the final loss).

    ``annealing`` names the parameters of the law's annealing response (identified only by a run
    whose rate has dropped, :mod:`fitting.priors`); ``annealing_prior`` gives the values a fit
    holds them at when no fitted run identifies them, with the prior's spread for the bands.
    """

    name: str
    formula: str
    parameters: tuple[Parameter, ...]
    predict: Predict
    data_bounds: DataBounds | None = None
    penalty: Penalty | None = None
    refined_starts: int | None = None
    exact_predict: Predict | None = None
    annealing: tuple[str, ...] = ()
    annealing_prior: AnnealingPrior | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def index(self, name: str) -> int:
        return self.names.index(name)


def to_fit_coordinates(law: Law, natural: jax.Array) -> jax.Array:
    """Natural parameter values ``(..., P)`` to the optimiser's coordinates."""
    return jnp.stack(
        [_TO_FIT[p.coordinate](natural[..., i]) for i, p in enumerate(law.parameters)], axis=-1
    )


def from_fit_coordinates(law: Law, fitted: jax.Array) -> jax.Array:
    """The optimiser's coordinates ``(..., P)`` back to natural parameter values."""
    return jnp.stack(
        [_FROM_FIT[p.coordinate](fitted[..., i]) for i, p in enumerate(law.parameters)], axis=-1
    )


def natural_bounds(law: Law) -> np.ndarray:
    """``(P, 2)`` array of the law's natural lower and upper bounds."""
    return np.array([[p.lower, p.upper] for p in law.parameters], dtype=np.float64)


from fitting.laws.lr_annealing import LR_ANNEALING  # noqa: E402  (the registry needs Law first)
from fitting.laws.multi_power import MULTI_POWER  # noqa: E402

#: The laws of a run's schedule: ``auto`` compares them, a band counts their disagreement, the
#: planner's schedule searches run under any of them.
LAWS: dict[str, Law] = {law.name: law for law in (LR_ANNEALING, MULTI_POWER)}

from fitting.laws.cpt import CPT  # noqa: E402  (it imports fitting.continual, which needs Law)

#: The laws of continual pre-training histories (:mod:`fitting.continual`): their runs are a base
#: run's rates then a continuation's, interleaved with the share of each batch from the curve's
#: domain, so they never meet the schedule laws of :data:`LAWS` (``auto`` fits one of these only
#: to runs that continue runs, and the schedule searches of :mod:`fitting.plan` do not take them).
CONTINUAL_LAWS: dict[str, Law] = {law.name: law for law in (CPT,)}


def get_law(name: str) -> Law:
    """The registered law called ``name`` (of :data:`LAWS` or :data:`CONTINUAL_LAWS`);
    InvalidInput listing the known ones otherwise."""
    try:
        return LAWS.get(name) or CONTINUAL_LAWS[name]
    except KeyError:
        known = sorted([*LAWS, *CONTINUAL_LAWS])
        raise InvalidInput(f"unknown law {name!r}; known laws: {known}") from None


def is_continual(law: Law | str) -> bool:
    """Whether ``law`` (a record or a name) reads continual histories, not schedules."""
    return (law if isinstance(law, str) else law.name) in CONTINUAL_LAWS
