"""Budget planning under a fitted law: decide, before spending the compute, how long to train,
which schedule to use and how long to cool down.

Five questions, each one pure function of a :class:`fitting.predict.FittedLaw` (a law record,
its fitted parameters and the warmup treatment they were fitted with), one module per concern:

* :mod:`~fitting.plan.compare` -- :func:`compare_schedules`: the predicted curve and final loss
  of candidate schedules, ranked (with a prediction band when the fitted law carries an
  uncertainty, see :mod:`fitting.intervals`).
* :mod:`~fitting.plan.searches` -- :func:`best_cooldown`: for warmup-stable-decay at a fixed
  length, the final loss on a grid of cooldown fractions for each decay shape, the best one, and
  how flat the optimum is; :func:`steps_to_target`: for a family whose length scales with the
  budget (``cosine``, ``wsd`` with ``decay_fraction``, ``wsd`` with a fixed
  ``num_decay_steps``, ``constant``, ...), the smallest ``total_steps`` whose predicted final
  loss reaches a target; :func:`loss_for_budget`, the reverse (the final loss a number of steps,
  tokens or FLOPs buys).
* :mod:`~fitting.plan.optimise` -- :func:`optimise_schedule`: the monotone per-step schedule with
  a fixed peak, length and floor that minimises the predicted final loss (gradient descent
  through the law), compared with cosine and the best WSD of the same length.
* :mod:`~fitting.plan.cost` -- :class:`TrainingScale`, the cost model: what a step costs in
  tokens and FLOPs.
* :mod:`~fitting.plan.continual` -- :func:`plan_continuation`: under the continual law
  (``cpt``), the trade-off of continuing a base run for a budget of steps -- every re-warm peak,
  decay shape and replay share with its final loss on the new and the old domain, the Pareto
  front, and the best new-domain loss under a ceiling on the old one. It takes the base's
  rates up to the branch, not a schedule family, and only continual laws.

Each answer is a frozen record whose ``planned()`` is a :class:`PlannedRun`, the run the plan
recommends. Their JSON is the service's business (``app/plan_json.py``), not this package's.

Conventions are :mod:`fitting.schedules`' (``lr[i]`` is the rate of update ``i``; the warmup ramp
ends on the peak at step ``W - 1``) and :mod:`fitting.areas`' (the loss logged at step ``s`` has
seen ``lr[0..s]``). The **final loss** of a schedule of ``T`` steps is the prediction at step
``T - 1``. Every question is answered through the law record only, so it holds for any law in
:data:`fitting.laws.LAWS`. Schedules are evaluated in batches by :mod:`fitting.predict`.

The names below are the planner's API (each module's ``__all__``): import them from
``fitting.plan``; the modules are how it is organised. Nothing here imports web, storage or
HTTP code.
"""

from fitting.plan.compare import ScheduleForecast, compare_schedules
from fitting.plan.continual import (
    CONTINUATION_SHAPES,
    ContinuationOption,
    ContinuationPlan,
    plan_continuation,
)
from fitting.plan.cost import TrainingScale, parse_model_size
from fitting.plan.optimise import DEFAULT_NUM_KNOTS, OptimisedSchedule, optimise_schedule
from fitting.plan.planned import PlannedRun
from fitting.plan.searches import (
    COOLDOWN_SHAPES,
    DEFAULT_COOLDOWN_FRACTIONS,
    DEFAULT_MAX_STEPS,
    NEAR_OPTIMAL_TOLERANCE,
    SEARCH_POINTS,
    CooldownPlan,
    StepsToTarget,
    best_cooldown,
    frame_of,
    loss_for_budget,
    steps_to_target,
)

__all__ = [
    "CONTINUATION_SHAPES",
    "COOLDOWN_SHAPES",
    "DEFAULT_COOLDOWN_FRACTIONS",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_NUM_KNOTS",
    "NEAR_OPTIMAL_TOLERANCE",
    "SEARCH_POINTS",
    "ContinuationOption",
    "ContinuationPlan",
    "CooldownPlan",
    "OptimisedSchedule",
    "PlannedRun",
    "ScheduleForecast",
    "StepsToTarget",
    "TrainingScale",
    "best_cooldown",
    "compare_schedules",
    "frame_of",
    "loss_for_budget",
    "optimise_schedule",
    "parse_model_size",
    "plan_continuation",
    "steps_to_target",
]
