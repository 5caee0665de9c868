"""Request and response shapes of ``POST /v1/plans`` (pydantic), each with an example for /docs.

One endpoint, six kinds of plan, told apart by ``kind`` (a discriminated union): ``compare``,
``cooldown``, ``steps_to_target``, ``budget``, ``optimise``, and ``cpt`` (a continuation's
trade-off under the continual law). Each is one function of
:mod:`fitting.plan`, whose docstrings define every field of the results (their JSON:
:mod:`app.plan_json`). Structure is checked here; the numbers (a schedule's arguments, a budget
that needs a model size) by ``fitting/``, whose messages say which value is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import (
    COSINE_24000,
    DEFAULT_LEVEL,
    MAX_CANDIDATES,
    MAX_CURVE_POINTS,
    Continues,
    Share,
    Warmup,
)
from fitting.plan import (
    COOLDOWN_SHAPES,
    DEFAULT_COOLDOWN_FRACTIONS,
    DEFAULT_MAX_STEPS,
    DEFAULT_NUM_KNOTS,
    NEAR_OPTIMAL_TOLERANCE,
)
from fitting.plan.continual import CONTINUATION_SHAPES, DEFAULT_REPLAYS
from fitting.predict import DEFAULT_NUM_POINTS
from fitting.schedules import DECAY_TYPES, MAX_TOTAL_STEPS

#: Most cooldown fractions one request may try (per shape).
MAX_COOLDOWN_FRACTIONS = 201
#: Most knots of an optimised schedule.
MAX_KNOTS = 2048
#: Most peaks (and most replay shares) one cpt plan may try.
MAX_CPT_VALUES = 32

COSINE_FAMILY = {k: v for k, v in COSINE_24000.items() if k != "total_steps"}
INLINE_LAW = {
    "law": "lr_annealing",
    "params": {"L0": 2.396, "A": 0.6214, "alpha": 0.4614, "C": 0.8904, "decay": 0.99839},
    "warmup": "include",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PlanBase(_Model):
    """The fitted law to plan under, and what a step costs."""

    fit_id: str | None = Field(None, description="a stored fit (or give law and params)")
    law: str | None = Field(None, description="with params, instead of fit_id")
    params: dict[str, float] | None = None
    warmup: Warmup | None = Field(None, description="with inline params; a fit uses its own")
    tokens_per_step: float | None = Field(
        None, gt=0, description="tokens per step (default: the fitted runs' metadata, if any)"
    )
    n_params: float | None = Field(
        None, gt=0, description="model size, for FLOPs = 6 * n_params * tokens (default: ditto)"
    )

    @model_validator(mode="after")
    def _one_model(self):
        if (self.fit_id is None) == (self.law is None and self.params is None):
            raise ValueError("give fit_id, or law and params (not both)")
        if self.fit_id is None and (self.law is None or self.params is None):
            raise ValueError("inline plans need both law and params")
        if self.fit_id is not None and self.warmup is not None:
            raise ValueError("warmup comes from the fit when fit_id is given")
        return self


class PlanCandidate(_Model):
    name: str | None = Field(None, max_length=256)
    schedule: dict[str, Any] | None = None
    lr_per_step: list[float] | None = Field(None, max_length=MAX_TOTAL_STEPS)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.schedule is None) == (self.lr_per_step is None):
            raise ValueError("give exactly one of schedule or lr_per_step")
        return self


class ComparePlan(_PlanBase):
    """Rank candidate schedules by predicted final loss (:func:`fitting.plan.compare_schedules`)."""

    kind: Literal["compare"]
    candidates: list[PlanCandidate] = Field(min_length=1, max_length=MAX_CANDIDATES)
    num_points: int = Field(DEFAULT_NUM_POINTS, ge=1, le=MAX_CURVE_POINTS)
    level: float = Field(
        DEFAULT_LEVEL, gt=0, lt=1, description="prediction band, when the fit has one"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "compare",
                    "fit_id": "fit_5e0a...",
                    "candidates": [
                        {"name": "cosine", "schedule": COSINE_24000},
                        {
                            "name": "wsd 20%",
                            "schedule": {
                                **COSINE_FAMILY,
                                "type": "wsd",
                                "total_steps": 24000,
                                "decay_fraction": 0.2,
                                "decay_type": "linear",
                            },
                        },
                    ],
                }
            ]
        },
    )


class CooldownPlanRequest(_PlanBase):
    """WSD's best cooldown fraction and shape at a fixed length
    (:func:`fitting.plan.best_cooldown`). ``schedule`` gives the frame: ``peak_lr``,
    ``total_steps``, ``num_warmup_steps``, ``warmup_init_value`` and the floor (``min_lr`` /
    ``min_lr_ratio``); its type is ignored."""

    kind: Literal["cooldown"]
    schedule: dict[str, Any]
    fractions: list[float] = Field(
        list(DEFAULT_COOLDOWN_FRACTIONS), min_length=1, max_length=MAX_COOLDOWN_FRACTIONS
    )
    decay_types: list[Literal[DECAY_TYPES]] = Field(  # type: ignore[valid-type]
        list(COOLDOWN_SHAPES), min_length=1, max_length=len(DECAY_TYPES)
    )
    tolerance: float = Field(NEAR_OPTIMAL_TOLERANCE, ge=0, allow_inf_nan=False)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "cooldown", "fit_id": "fit_5e0a...", "schedule": COSINE_24000}]
        },
    )


class StepsToTargetPlan(_PlanBase):
    """The fewest steps of a schedule family that reach a target loss
    (:func:`fitting.plan.steps_to_target`). The family is ``schedule`` with ``total_steps``
    varied (a given ``total_steps`` is ignored)."""

    kind: Literal["steps_to_target"]
    schedule: dict[str, Any]
    target_loss: float = Field(gt=0, allow_inf_nan=False)
    min_steps: int | None = Field(None, ge=1, le=MAX_TOTAL_STEPS)
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1, le=MAX_TOTAL_STEPS)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "steps_to_target",
                    "fit_id": "fit_5e0a...",
                    "schedule": COSINE_FAMILY,
                    "target_loss": 2.6156,
                    "tokens_per_step": 524288,
                    "n_params": 4e8,
                }
            ]
        },
    )


class BudgetPlan(_PlanBase):
    """The final loss a budget buys with a schedule family (:func:`fitting.plan.loss_for_budget`):
    exactly one of ``total_steps``, ``tokens``, ``flops``."""

    kind: Literal["budget"]
    schedule: dict[str, Any]
    total_steps: int | None = Field(None, ge=1, le=MAX_TOTAL_STEPS)
    tokens: float | None = Field(None, gt=0, allow_inf_nan=False)
    flops: float | None = Field(None, gt=0, allow_inf_nan=False)
    num_points: int = Field(DEFAULT_NUM_POINTS, ge=1, le=MAX_CURVE_POINTS)
    level: float = Field(
        DEFAULT_LEVEL, gt=0, lt=1, description="prediction band, when the fit has one"
    )

    @model_validator(mode="after")
    def _one_budget(self):
        given = [n for n in ("total_steps", "tokens", "flops") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of total_steps, tokens, flops; got {given}")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "budget",
                    "fit_id": "fit_5e0a...",
                    "schedule": COSINE_FAMILY,
                    "total_steps": 72000,
                },
                {
                    "kind": "budget",
                    **INLINE_LAW,
                    "schedule": COSINE_FAMILY,
                    "tokens": 3.8e10,
                    "tokens_per_step": 524288,
                },
            ]
        },
    )


class OptimisePlan(_PlanBase):
    """The monotone schedule that minimises the predicted final loss for a fixed frame
    (:func:`fitting.plan.optimise_schedule`); ``schedule`` gives the frame, as for cooldown."""

    kind: Literal["optimise"]
    schedule: dict[str, Any]
    num_knots: int = Field(DEFAULT_NUM_KNOTS, ge=1, le=MAX_KNOTS)
    max_iterations: int = Field(1000, ge=1, le=10_000)
    include_lr_per_step: bool = Field(False, description="also return every step's rate")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "optimise", "fit_id": "fit_5e0a...", "schedule": COSINE_24000}]
        },
    )


class CptPlan(_PlanBase):
    """A continuation's trade-off under a fit of the continual law ``cpt``
    (:func:`fitting.plan.plan_continuation`): for ``total_steps`` steps continuing the stored run
    ``continues.run_id`` from its step ``continues.at_step``, every re-warm peak x decay shape x
    replay share, with its predicted final loss on the new and the old domain; the best new-domain
    final whose old-domain final is within ``old_ceiling`` (none: the lowest new-domain final),
    and the Pareto front of the two."""

    kind: Literal["cpt"]
    continues: Continues
    total_steps: int = Field(ge=2, le=MAX_TOTAL_STEPS, description="the continuation's steps")
    peaks: list[Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_CPT_VALUES,
        description="re-warm peaks (default: 5 log-spaced from the rate at the branch to the "
        "base's peak)",
    )
    shapes: list[Literal[CONTINUATION_SHAPES]] = Field(  # type: ignore[valid-type]
        list(CONTINUATION_SHAPES),
        min_length=1,
        max_length=len(CONTINUATION_SHAPES),
        description="decay shapes after the re-warm: cosine, linear, wsd (last 20%), constant",
    )
    replays: list[Share] = Field(list(DEFAULT_REPLAYS), min_length=1, max_length=MAX_CPT_VALUES)
    num_warmup_steps: int | None = Field(
        None, ge=0, le=MAX_TOTAL_STEPS, description="the re-warm's length (default 5% of T)"
    )
    min_lr: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="the floor (default the branch rate)",
    )
    old_ceiling: float | None = Field(
        None, gt=0, allow_inf_nan=False, strict=True, description="most the old final loss may be"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "cpt",
                    "fit_id": "fit_5e0a...",
                    "continues": {"run_id": "run_0f3c...", "at_step": 1399},
                    "total_steps": 1000,
                    "old_ceiling": 1.9,
                }
            ]
        },
    )


PlanRequest = Annotated[
    ComparePlan | CooldownPlanRequest | StepsToTargetPlan | BudgetPlan | OptimisePlan | CptPlan,
    Field(discriminator="kind"),
]


class Planned(BaseModel):
    """The run the plan recommends (or evaluates): what a CI gate checks."""

    name: str
    total_steps: int | None = Field(description="None when a target was not reached")
    final_loss: float = Field(description="its predicted final loss (at step total_steps - 1)")
    spec: dict[str, Any] = Field(description="its schedule, in fitting.schedules' vocabulary")
    cost: dict[str, float | int | None] = Field(description="steps, tokens and FLOPs")


class PlanOut(BaseModel):
    kind: str
    fit_id: str | None
    law: str
    params: dict[str, float]
    warmup: str
    tokens_per_step: float | None
    n_params: float | None
    planned: Planned
    result: dict[str, Any] = Field(
        description=(
            "the plan, as fitting.plan returns it: compare -> {'ranking': [ScheduleForecast]}, "
            "cooldown -> CooldownPlan, steps_to_target -> StepsToTarget, budget -> "
            "ScheduleForecast, optimise -> OptimisedSchedule, cpt -> ContinuationPlan (fields "
            "documented there)"
        )
    )
    seconds: float
