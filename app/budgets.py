"""Request budgets: the most work one request may ask for, checked before any of it is done.

The schemas bound each field (64 candidates, schedules of up to ``MAX_TOTAL_STEPS`` steps), but
not their product: 32 candidates of 10,000,000-step schedules at 300 points each pass every
field's check, and then took 30 s and 4-6 GB. The work of a request grows with the steps its
schedules hold and the points it asks for, and both are known from the request itself -- a
spec's ``total_steps``, ``len(lr_per_step)`` (:func:`fitting.schedules.schedule_length`) --
without building any schedule. So the routers call these checks first, and an oversized request
is answered in milliseconds.

A request over a budget is a 422 (:class:`app.errors.BudgetExceeded`, ``type``
``budget_exceeded``), not a 413: its body is small and well formed, and a 413 would tell the
client to send fewer bytes, when what helps is fewer or shorter candidates, or a larger setting.
The message names the budget, the amount asked for, and the environment variable that sets it.
The numbers are :class:`app.settings.Settings`' (their defaults and why are documented there);
``settings=None`` checks nothing (the CLI computing on its own machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app import plan_schemas, schemas
from app.errors import BudgetExceeded
from app.settings import BUDGET_VARIABLES, Settings
from fitting.plan import COOLDOWN_SHAPES, DEFAULT_COOLDOWN_FRACTIONS, SEARCH_POINTS
from fitting.plan.continual import DEFAULT_PEAK_COUNT
from fitting.schedules import schedule_length


def _check(settings: Settings, field: str, amount: int, what: str, where: str | None) -> None:
    limit = getattr(settings, field)
    if amount > limit:
        variable = BUDGET_VARIABLES[field]
        raise BudgetExceeded(
            f"{what} is {amount:,}, over this service's budget of {limit:,} per request "
            f"({variable}); ask for less in one request, or raise {variable}",
            where,
        )


def _length(schedule: Any, lr_per_step: Sequence[float] | None) -> int:
    return len(lr_per_step) if lr_per_step is not None else schedule_length(schedule)


def check_candidates(
    settings: Settings | None,
    lengths: Sequence[int],
    points: Sequence[int],
    where: str | None = None,
) -> None:
    """Curves of schedules of ``lengths`` steps at ``points`` points each: the lengths summed
    (candidates x schedule length) and the points summed (candidates x points)."""
    if settings is None:
        return
    _check(
        settings,
        "max_prediction_steps",
        sum(lengths),
        f"candidates x schedule length (the {len(lengths)} candidates' schedules, in steps)",
        where,
    )
    _check(
        settings,
        "max_prediction_points",
        sum(points),
        f"candidates x points (the points of the {len(points)} candidates' curves)",
        where,
    )


def check_prediction(settings: Settings | None, body: schemas.PredictionRequest) -> None:
    """``POST /v1/predictions``."""
    candidates = body.candidate_list()
    lengths = [_length(c.schedule, c.lr_per_step) for c in candidates]
    points = [
        len(c.steps) if c.steps is not None else c.num_points or schemas.DEFAULT_NUM_POINTS
        for c in candidates
    ]
    check_candidates(settings, lengths, points, "candidates" if body.candidates else None)


def check_curve(settings: Settings | None, spec: Any, num_points: int) -> None:
    """``GET /v1/fits/{id}/curve``: one candidate."""
    check_candidates(settings, [schedule_length(spec)], [num_points], "query.schedule")


def check_run(settings: Settings | None, num_points: int, length: int) -> None:
    """A run as it would be stored (created, or after an append): its points, and the length of
    its per-step learning rate (which every fit of it builds)."""
    if settings is None:
        return
    _check(settings, "max_run_points", num_points, "the run's logged points", "points")
    _check(settings, "max_run_steps", length, "the run's schedule length, in steps", None)


def check_new_run(settings: Settings | None, body: schemas.RunCreate) -> None:
    """``POST /v1/runs`` (and its CSV form): the length is the schedule's, ``lr_per_step``'s,
    or (rates interpolated from the points) the last logged step + 1."""
    if body.schedule is not None or body.lr_per_step is not None:
        length = _length(body.schedule, body.lr_per_step)
    else:
        length = max(body.points.step, default=-1) + 1
    check_run(settings, len(body.points.step), length)


def plan_steps(body: Any) -> tuple[int, str] | None:
    """The schedule steps a grid plan evaluates, and how they add up (None: not a grid plan;
    ``compare`` and ``budget`` are predictions, :func:`check_plan` checks them as such)."""
    if isinstance(body, plan_schemas.CooldownPlanRequest):
        shapes, fractions = len(set(body.decay_types)), len(set(body.fractions))
        total = schedule_length(body.schedule)
        return (
            shapes * fractions * total,
            f"{shapes} decay_types x {fractions} fractions x {total} total_steps",
        )
    if isinstance(body, plan_schemas.StepsToTargetPlan):
        return (
            SEARCH_POINTS * body.max_steps,
            f"{SEARCH_POINTS} lengths per search batch x {body.max_steps} max_steps",
        )
    if isinstance(body, plan_schemas.CptPlan):
        options = (
            (len(body.peaks) if body.peaks is not None else DEFAULT_PEAK_COUNT)
            * len(set(body.shapes))
            * len(set(body.replays))
        )
        history = body.continues.at_step + 1 + body.total_steps
        return (
            2 * options * 2 * history,
            f"2 domains x {options} options (peaks x shapes x replays) x 2 x {history} "
            "history steps (the parent's to the branch, then total_steps; rate and share each)",
        )
    if isinstance(body, plan_schemas.OptimisePlan):
        cooldowns = len(DEFAULT_COOLDOWN_FRACTIONS) * len(COOLDOWN_SHAPES)
        total = schedule_length(body.schedule)
        return (
            (cooldowns + 2 * body.max_iterations) * total,
            f"({cooldowns} cooldown schedules + 2 starts x {body.max_iterations} max_iterations) "
            f"x {total} total_steps",
        )
    return None


def check_plan(settings: Settings | None, body: Any) -> None:
    """``POST /v1/plans``, before the plan runs. A ``budget`` given in tokens or FLOPs needs
    the fit's cost of a step: :func:`check_budget_plan` checks it once that is known."""
    if settings is None:
        return
    if isinstance(body, plan_schemas.ComparePlan):
        lengths = [_length(c.schedule, c.lr_per_step) for c in body.candidates]
        check_candidates(settings, lengths, [body.num_points] * len(lengths), "candidates")
    elif isinstance(body, plan_schemas.BudgetPlan) and body.total_steps is not None:
        check_budget_plan(settings, body.total_steps, body.num_points)
    grid = plan_steps(body)
    if grid is not None:
        steps, what = grid
        _check(settings, "max_plan_steps", steps, f"the plan's schedule steps ({what})", None)


def check_budget_plan(settings: Settings | None, total_steps: int, num_points: int) -> None:
    """A ``budget`` plan: one prediction of ``total_steps`` steps."""
    check_candidates(settings, [total_steps], [num_points], None)
