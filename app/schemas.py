"""Request and response shapes of the HTTP API (pydantic), each with an example for /docs.

Structure is checked here (types, lengths, "one of schedule or lr_per_step"); the numbers
themselves (finite, positive, increasing, within the schedule) are checked by ``fitting/``
through ``app/services/``, whose messages say which value is wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fitting.fit import DEFAULT_HUBER_DELTA, DEFAULT_WARMUP, WARMUP_TREATMENTS
from fitting.intervals import DEFAULT_LEVEL as DEFAULT_LEVEL
from fitting.laws import CONTINUAL_LAWS, LAWS
from fitting.predict import DEFAULT_NUM_POINTS as DEFAULT_NUM_POINTS  # the grid of every curve
from fitting.schedules import MAX_TOTAL_STEPS

#: Most candidates one prediction request may ask for.
MAX_CANDIDATES = 64
#: Most runs one fit may use.
MAX_FIT_RUNS = 64
#: Most points of one predicted curve (explicit ``steps`` or ``num_points``).
MAX_CURVE_POINTS = 200_000
#: Largest ``offset`` of a listing: beyond a SQL BIGINT, the database overflowed (a 500).
MAX_OFFSET = 2**53
#: ``law`` of a fit that cross-validates every registered law and keeps the best.
AUTO = "auto"
#: The law a fit uses when none is named, and ``auto``'s fallback when it cannot cross-validate.
DEFAULT_LAW = "lr_annealing"

Step = Annotated[int, Field(ge=0, lt=MAX_TOTAL_STEPS)]
Warmup = Literal[WARMUP_TREATMENTS]  # type: ignore[valid-type]
#: The level of a prediction band: a probability strictly between 0 and 1.
Level = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
LEVEL_DOC = (
    f"the prediction band's level, in (0, 1) (default {DEFAULT_LEVEL}): lower and upper hold "
    "the predicted loss with this probability; null for no band. Only fits with an uncertainty "
    "(fitted with intervals) give a band: inline law+params and fits without one answer with "
    "lower/upper null and interval_note saying why"
)
#: ``?level=`` of the GET endpoints: a query string has no null, so "none" asks for no band.
LevelQuery = Annotated[
    str,
    Query(
        max_length=32,
        description=(
            f"the prediction band's level, a number in (0, 1) (default {DEFAULT_LEVEL}), or none "
            "for no band. Only fits with an uncertainty give one (see the fit's "
            "uncertainty_note; interval_note says why a band is missing)"
        ),
        examples=[str(DEFAULT_LEVEL), "0.5", "none"],
    ),
]

COSINE_24000 = {
    "type": "cosine",
    "peak_lr": 3e-4,
    "total_steps": 24000,
    "num_warmup_steps": 2160,
    "min_lr": 3e-5,
}
WSD_24000 = {
    "type": "wsd",
    "peak_lr": 3e-4,
    "total_steps": 24000,
    "num_warmup_steps": 2160,
    "num_decay_steps": 4000,
    "decay_type": "linear",
    "min_lr": 3e-5,
}
#: A complete small run: 22 points, one every 1,024 steps, of the 25M model's cosine run of
#: 24,000 steps (Luo et al. 2025; tests/data/mpl). Enough points for a fit to converge and to
#: hold out its last 20% and 40% (so the fit has bands); the contract tests fit it.
SMALL_RUN = {
    "name": "25M-cosine_24000-every-1024",
    "group": "25M-llama",
    "metadata": {"model_size": "25M", "tokens_per_step": 524288},
    "schedule": COSINE_24000,
    "points": {
        "step": list(range(2160, 24000, 1024)),
        "loss": [
            4.1114,
            3.7997,
            3.6803,
            3.6117,
            3.5637,
            3.5263,
            3.4968,
            3.47,
            3.449,
            3.4302,
            3.411,
            3.3957,
            3.3809,
            3.3664,
            3.3547,
            3.3439,
            3.3339,
            3.3252,
            3.3178,
            3.3121,
            3.308,
            3.3049,
        ],
    },
}
LR_SOURCE_NOTES = {
    "schedule": "per-step learning rate built from the run's schedule spec",
    "lr_per_step": "per-step learning rate given explicitly (lr_per_step)",
    "interpolated": (
        "per-step learning rate interpolated linearly between the logged points' lr (held at "
        "the first logged value before the first logged step): exact only for per-step logs"
    ),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Rules between fields, stated in the JSON schema too, so that the OpenAPI document describes the
# requests the validators accept ("fit_id, or law and params"; "one source for the learning
# rate"). Each model's validator raises on the same cases; tests/test_schema_rules.py checks that
# the two agree.


def _case(given: dict[str, str] | None = None, absent: tuple[str, ...] = ()) -> dict:
    """The JSON schema of "these fields given (with these JSON types), these absent or null"."""
    given = given or {}
    properties = {name: {"type": kind} for name, kind in given.items()}
    properties.update({name: {"type": "null"} for name in absent})
    schema: dict[str, Any] = {"properties": properties}
    if given:
        schema["required"] = list(given)
    return schema


#: A candidate's schedule: exactly one of ``schedule`` and ``lr_per_step``; not both ``steps``
#: and ``num_points``.
ONE_CANDIDATE_RULE = {
    "allOf": [
        {
            "oneOf": [
                _case({"schedule": "object"}, ("lr_per_step",)),
                _case({"lr_per_step": "array"}, ("schedule",)),
            ]
        },
        {"not": _case({"steps": "array", "num_points": "integer"})},
    ]
}

#: A run's learning rate: not both ``schedule`` and ``lr_per_step``; one of them or ``points.lr``.
RUN_LR_RULE = [
    {"not": _case({"schedule": "object", "lr_per_step": "array"})},
    {
        "anyOf": [
            _case({"schedule": "object"}),
            _case({"lr_per_step": "array"}),
            {"required": ["points"], "properties": {"points": _case({"lr": "array"})}},
        ]
    },
]


# ---------------------------------------------------------------------------------------------
# Errors: every error answer has this shape (app/errors.py makes them).


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(
        description=(
            "where in the request: ['body', 'candidates', 1, 'schedule'], ['query', 'level']; "
            "[] when the error is about the request as a whole"
        )
    )
    msg: str = Field(description="what is wrong, naming the value")
    type: str = Field(
        description=(
            "the kind: pydantic's error types for requests that do not validate, else one of "
            "invalid_input, budget_exceeded, body_unparsable, body_too_large, not_found, "
            "method_not_allowed, conflict, service_unavailable, internal_error"
        )
    )
    ctx: dict[str, Any] | None = Field(None, description="pydantic's context, when it has one")


class ErrorOut(BaseModel):
    detail: list[ErrorItem]
    request_id: str = Field(
        description="this request's id, also the X-Request-ID header (the client's, if it sent one)"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["body", "candidates", 1, "schedule"],
                            "msg": "cosine: requires peak_lr > 0, got peak_lr=-1",
                            "type": "invalid_input",
                        }
                    ],
                    "request_id": "0b5c8f3e4a7d4c1f9e2a6b3d5c7e9f10",
                }
            ]
        }
    )


ERROR_DESCRIPTIONS = {
    401: "no valid API key, and this request needs one (once keys exist; app/auth.py)",
    403: "the API key lacks the scope this request needs",
    404: "no such resource",
    409: "the request contradicts what is stored",
    413: "the request body is over MAX_BODY_BYTES",
    422: (
        "the request is invalid: it does not validate, its body cannot be parsed, a value is "
        "wrong, or it asks for more work than a request may do (type budget_exceeded)"
    ),
    500: "a bug in the service; the request id finds its traceback in the server's log",
    503: "the database is unreachable; retry after Retry-After seconds",
}
_REQUEST_ID_HEADER = {
    "X-Request-ID": {"description": "the request's id", "schema": {"type": "string"}}
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for the error codes it can return (500 always), each with
    the one error shape (:class:`ErrorOut`); ``descriptions`` replace the defaults of
    :data:`ERROR_DESCRIPTIONS`, keyed ``e404=...``."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 500}):
        headers = dict(_REQUEST_ID_HEADER)
        if code == 503:
            headers["Retry-After"] = {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        responses[code] = {
            "model": ErrorOut,
            "description": descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code]),
            "headers": headers,
        }
    return responses


# ---------------------------------------------------------------------------------------------
# Runs.


class Points(_Model):
    step: list[Step] = Field(description="logged steps, strictly increasing, 0-based")
    loss: list[float] = Field(description="loss at each step, finite and > 0")
    lr: list[float] | None = Field(
        None, description="the learning rate logged at each step (optional)"
    )

    @model_validator(mode="after")
    def _same_lengths(self) -> Points:
        if len(self.step) != len(self.loss):
            raise ValueError(
                f"step and loss must have the same length, got {len(self.step)} and "
                f"{len(self.loss)}"
            )
        if self.lr is not None and len(self.lr) != len(self.step):
            raise ValueError(
                f"lr must have one value per step, got {len(self.lr)} for {len(self.step)} steps"
            )
        if not self.step:
            raise ValueError("points must not be empty")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"step": [2160, 2288, 2416], "loss": [4.1114, 4.0342, 3.9793]},
                {"step": [0, 1, 2], "loss": [10.9, 10.7, 10.4], "lr": [0.0, 1e-6, 2e-6]},
            ]
        },
    )


GROUP_DOC = (
    "runs of the same model, data and optimiser: a fit of a running job with with_group (and "
    "its background refits) uses the group's other runs with it, so that what the job has not "
    "shown yet (a cooldown) is learned from runs that have"
)


DOMAIN_DOC = (
    "the data this run's loss is measured on (free text, e.g. 'python', 'c'): one run is one "
    "curve of one domain, so a phase validated on two domains is two runs of one group. The "
    "cpt law tells a continuation's old domain (its parent's) from its new one by it"
)
REPLAY_DOC = (
    "share of the parent's (old) data in each batch of a run that continues another, in [0, 1) "
    "(default 0; a run that continues none has none)"
)


#: A share of a batch, in [0, 1): a number (not a boolean, which JSON keeps apart).
Share = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False, strict=True)]


class Continues(_Model):
    """Where a run branched from: the parent run and the parent's step at the branch."""

    run_id: str = Field(min_length=1, max_length=64, description="the parent run")
    at_step: int = Field(
        ge=0,
        lt=MAX_TOTAL_STEPS,
        strict=True,
        description=(
            "the parent's step at the branch point: the checkpoint continued is the parent's "
            "after that step (a base run's steps are 0-based, the rate of update s is its "
            "lr[s]; a continuing parent's step s is after s updates of its own phase)"
        ),
    )


CONTINUES_DOC = (
    "the run this one continues (a continual pre-training branch): the parent and its step at the "
    "branch. This run's steps and per-step learning rate start at the branch: step 0 is the "
    "checkpoint, before any update of the new phase, step s the loss after s updates, and "
    "lr_per_step[j] (or the schedule's rate j) the rate of the phase's update j + 1"
)


class RunCreate(_Model):
    name: str = Field(min_length=1, max_length=256)
    group: str | None = Field(None, min_length=1, max_length=256, description=GROUP_DOC)
    domain: str | None = Field(None, min_length=1, max_length=256, description=DOMAIN_DOC)
    continues: Continues | None = Field(None, description=CONTINUES_DOC)
    replay: Share = Field(0.0, description=REPLAY_DOC)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="free-form: model size, tokens per step, tags, ..."
    )
    points: Points
    schedule: dict[str, Any] | None = Field(
        None,
        description="the run's schedule in fitting.schedules' vocabulary (GET /v1/schedules)",
    )
    lr_per_step: list[float] | None = Field(
        None, description="the rate of every update 0..T-1 (index = step)"
    )

    @model_validator(mode="after")
    def _one_lr_source(self) -> RunCreate:  # stated in the schema by RUN_LR_RULE
        if self.schedule is not None and self.lr_per_step is not None:
            raise ValueError("give the learning rate as schedule or lr_per_step, not both")
        if self.schedule is None and self.lr_per_step is None and self.points.lr is None:
            raise ValueError(
                "the run needs a learning rate: a schedule, lr_per_step, or points.lr (which is "
                "then interpolated between logged steps)"
            )
        if self.replay and self.continues is None:
            raise ValueError(
                f"replay={self.replay} is a share of the parent's data: give continues too (a "
                "run that continues none has no old data to replay)"
            )
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "25M-cosine_24000",
                    "group": "25M-llama",
                    "metadata": {"model_size": "25M", "tokens_per_step": 524288},
                    "schedule": COSINE_24000,
                    "points": {"step": [2160, 2288, 2416], "loss": [4.1114, 4.0342, 3.9793]},
                },
                SMALL_RUN,
            ],
            "allOf": RUN_LR_RULE,
        },
    )


class RunSummaryOut(BaseModel):
    id: str
    name: str
    group: str | None = Field(None, description=GROUP_DOC)
    domain: str | None = Field(None, description=DOMAIN_DOC)
    continues: Continues | None = Field(None, description=CONTINUES_DOC)
    replay: float = Field(0.0, description=REPLAY_DOC)
    metadata: dict[str, Any]
    lr_source: Literal["schedule", "lr_per_step", "interpolated"]
    lr_source_note: str
    schedule: dict[str, Any] | None
    num_points: int
    first_step: int
    last_step: int
    total_steps: int = Field(description="length T of the per-step learning rate")
    version: int = Field(description="1 at creation, +1 for every append that added points")
    created_at: datetime
    updated_at: datetime


class RunOut(RunSummaryOut):
    points: Points
    lr_per_step: list[float] | None = Field(
        None, description="only with ?include_lr=true and lr_source lr_per_step"
    )
    warnings: list[str] = Field(default_factory=list)


class AppendOut(RunOut):
    appended: int = Field(description="points added by this request")
    unchanged: int = Field(description="points already stored with the same values (skipped)")


class ImportedRunOut(RunSummaryOut):
    warnings: list[str] = Field(default_factory=list)


class ImportOut(BaseModel):
    format: str = Field(description="the format read (named, or detected)")
    runs: list[ImportedRunOut] = Field(
        description="the runs stored: the training loss, and the validation loss as a second "
        "run of the same group"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="what the import left out or guessed: points without a finite loss, a "
        "partly readable file (how much was read), an interpolated learning rate",
    )


class RunPage(BaseModel):
    items: list[RunSummaryOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


# ---------------------------------------------------------------------------------------------
# Fits.


class FitCreate(_Model):
    run_ids: list[str] = Field(min_length=1, max_length=MAX_FIT_RUNS)
    with_group: bool = Field(
        False,
        description=(
            "also fit the other runs of these runs' groups (newest first, up to "
            f"{MAX_FIT_RUNS} runs in all), sharing the law's parameters: how a running job "
            "borrows strength from complete runs of the same model; the fit's run_ids name "
            "every run used"
        ),
    )
    law: str = Field(
        DEFAULT_LAW,
        description=(
            "a key of fitting.laws.LAWS (GET /v1/laws lists them), or 'auto': cross-validate "
            "every registered law on these runs (leave one run out; one run: its last 20% and "
            "40% of steps held out) and fit the one with the lowest held-out PredE; the fit's "
            "selection records every candidate's validation error. 'cpt' (continual "
            "pre-training) fits runs that continue runs with their parents, on two domains; "
            "'auto' over such runs compares the continual laws only, leaving one group (a "
            "phase's curves) out at a time"
        ),
        json_schema_extra={"enum": [AUTO, *LAWS, *CONTINUAL_LAWS]},
    )
    warmup: Warmup = Field(
        DEFAULT_WARMUP, description="how the warmup ramp enters the annealing terms"
    )
    min_step: Step = Field(0, description="logged points before this step are skipped")
    fixed: dict[str, float] = Field(
        default_factory=dict, description="parameters held at a value, e.g. {'decay': 0.999}"
    )
    bounds: dict[str, tuple[float, float]] | None = Field(
        None, description="natural bounds that replace the law's for some parameters"
    )
    huber_delta: float = Field(DEFAULT_HUBER_DELTA, gt=0, allow_inf_nan=False)
    intervals: bool = Field(
        True,
        description=(
            "cross-validate the law too (3 extra fits for 3 runs) and store the fit's "
            "uncertainty, so that predictions from it carry prediction bands; false: a plain "
            "fit, no bands"
        ),
    )

    @field_validator("law")
    @classmethod
    def _known_law(cls, law: str) -> str:
        if law != AUTO and law not in LAWS and law not in CONTINUAL_LAWS:
            raise ValueError(f"unknown law {law!r}; known laws: {[AUTO, *LAWS, *CONTINUAL_LAWS]}")
        return law

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"run_ids": ["run_0f3c...", "run_9a1b...", "run_77de..."], "law": "lr_annealing"},
                {"run_ids": ["run_0f3c...", "run_9a1b...", "run_77de..."], "law": "auto"},
                {
                    "run_ids": ["run_0f3c..."],
                    "law": "lr_annealing",
                    "fixed": {"decay": 0.999},
                    "intervals": False,
                },
            ]
        },
    )


class FitRunOut(BaseModel):
    run_id: str
    name: str
    version: int = Field(description="the run's version the fit saw")
    num_points: int
    last_step: int
    lr_source: str
    total_steps: int
    lr_sha256: str
    points_sha256: str


class UncertaintyOut(BaseModel):
    noise: float | None = Field(description="robust sd of the fitted runs' log residuals")
    model_error: float | None = Field(
        description="root-mean-square held-out log error of the cross-validation"
    )
    autocorrelation: float | None = Field(description="lag-1 autocorrelation of the residuals")
    folds: int = Field(description="cross-validation fits behind the jackknife term")
    other_laws: list[str] = Field(
        default_factory=list,
        description="other laws fitted to the same runs (law 'auto'), whose disagreement with "
        "this law widens its bands",
    )


class Identification(BaseModel):
    parameters: list[str] = Field(description="the law's annealing parameters")
    identified_by: list[str] = Field(
        description="the fitted runs whose decay of the rate identifies them (run ids)"
    )
    source: Literal["data", "prior", "caller", "none"] = Field(
        description=(
            "where their values come from: the runs' data, the prior (no fitted run has decayed "
            "its rate yet), the request's fixed/bounds, or none (the law has no annealing term)"
        )
    )
    prior: dict[str, Any] | None = Field(
        None, description="the prior held (parameters, values, covariance, summary)"
    )
    note: str = Field(description="the same in words")


class FitOut(BaseModel):
    id: str
    law: str = Field(description="the fitted law (with law 'auto': the one chosen)")
    params: dict[str, float]
    converged: bool
    message: str
    metrics: dict[str, dict[str, float | None]] = Field(
        description="per fitted run: r2, mae, rmse, pred_e, worst_e (fitting.metrics)"
    )
    warmup: str
    min_step: int
    run_ids: list[str]
    runs: list[FitRunOut] | None = Field(None, description="what the fit saw of each run")
    selection: dict[str, Any] | None = Field(
        None,
        description=(
            "law 'auto' only: {chosen, scheme, criterion, scores, candidates: [{law, scheme, "
            "pred_e, folds}]}, every registered law's cross-validation (pred_e null: no fold "
            "could be fitted), the score each law was chosen by (lower is better) and its "
            "criterion (with_group: the held-out error of the runs asked for), and a note when "
            "there were too few points to choose by evidence"
        ),
    )
    validation: dict[str, Any] | None = Field(
        None, description="the fitted law's cross-validation {law, scheme, pred_e, folds}"
    )
    uncertainty: UncertaintyOut | None = Field(
        None,
        description=(
            "what the prediction bands are made of (the whole of it is result.uncertainty); "
            "null: predictions from this fit carry no band, see uncertainty_note"
        ),
    )
    uncertainty_note: str | None = Field(None, description="why there is no uncertainty")
    identification: Identification | None = Field(
        None, description="what the fitted runs identify of the law's annealing response"
    )
    domains: dict[str, str] | None = Field(
        None,
        description=(
            "a continual law's fit (cpt): the runs' domains behind the law's old domain (the "
            "continued runs') and new one, {'old': 'python', 'new': 'c'}; null otherwise"
        ),
    )
    result: dict[str, Any] = Field(description="the fitter's whole FitResult")
    created_at: datetime


class FitPage(BaseModel):
    items: list[FitOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


# ---------------------------------------------------------------------------------------------
# Predictions.


class Candidate(_Model):
    name: str | None = Field(None, max_length=256)
    schedule: dict[str, Any] | None = None
    lr_per_step: list[float] | None = None
    steps: list[Step] | None = Field(None, max_length=MAX_CURVE_POINTS)
    num_points: int | None = Field(None, ge=1, le=MAX_CURVE_POINTS)
    continues: Continues | None = Field(
        None,
        description=(
            "with a fit of a continual law (cpt): the stored run this candidate continues, and "
            "the run's step at the branch; the schedule (or lr_per_step) is then the new "
            "phase's, and steps count from the branch (0 = the checkpoint)"
        ),
    )
    domain: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="with a cpt fit: the domain whose curve to predict (the fit's old or new)",
    )
    replay: Share = Field(0.0, description=REPLAY_DOC)

    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_CANDIDATE_RULE)

    @model_validator(mode="after")
    def _one_of_each(self) -> Candidate:  # stated in the schema by ONE_CANDIDATE_RULE
        if (self.schedule is None) == (self.lr_per_step is None):
            raise ValueError("give exactly one of schedule or lr_per_step")
        if self.steps is not None and self.num_points is not None:
            raise ValueError("give steps or num_points, not both")
        if self.replay and self.continues is None:
            raise ValueError("replay is a share of the parent's data: give continues too")
        return self


class PredictionRequest(_Model):
    fit_id: str | None = None
    law: str | None = Field(None, description="with params, instead of fit_id")
    params: dict[str, float] | None = None
    warmup: Warmup | None = Field(
        None, description=f"with inline params (default {DEFAULT_WARMUP!r}); a fit uses its own"
    )
    name: str | None = Field(None, max_length=256)
    schedule: dict[str, Any] | None = None
    lr_per_step: list[float] | None = None
    steps: list[Step] | None = Field(None, max_length=MAX_CURVE_POINTS)
    num_points: int | None = Field(None, ge=1, le=MAX_CURVE_POINTS)
    candidates: list[Candidate] | None = Field(None, min_length=1, max_length=MAX_CANDIDATES)
    level: Level | None = Field(DEFAULT_LEVEL, description=LEVEL_DOC)

    @model_validator(mode="after")
    def _consistent(self) -> PredictionRequest:  # stated in the schema (model_config below)
        if (self.fit_id is None) == (self.law is None and self.params is None):
            raise ValueError("give fit_id, or law and params, (not both)")
        if self.fit_id is None and (self.law is None or self.params is None):
            raise ValueError("inline predictions need both law and params")
        if self.fit_id is not None and self.warmup is not None:
            raise ValueError("warmup comes from the fit when fit_id is given")
        single = [self.name, self.schedule, self.lr_per_step, self.steps, self.num_points]
        if self.candidates is not None:
            if any(value is not None for value in single):
                raise ValueError(
                    "with candidates, give name/schedule/lr_per_step/steps/num_points inside "
                    "each candidate"
                )
        else:
            self.candidate_list()  # validates the single candidate given at the top level
        return self

    def candidate_list(self) -> list[Candidate]:
        if self.candidates is not None:
            return self.candidates
        return [
            Candidate(
                name=self.name,
                schedule=self.schedule,
                lr_per_step=self.lr_per_step,
                steps=self.steps,
                num_points=self.num_points,
            )
        ]

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"fit_id": "fit_5e0a...", "schedule": COSINE_24000, "num_points": 300},
                {"fit_id": "fit_5e0a...", "schedule": COSINE_24000, "level": 0.5},
                {"fit_id": "fit_5e0a...", "schedule": COSINE_24000, "level": None},
                {
                    "fit_id": "fit_5e0a...",
                    "candidates": [
                        {"name": "cosine", "schedule": COSINE_24000},
                        {"name": "wsd", "schedule": WSD_24000, "steps": [12000, 20000, 23999]},
                    ],
                },
                {
                    "law": "lr_annealing",
                    "params": {"L0": 3.04, "A": 0.519, "alpha": 0.507, "C": 1.64, "decay": 0.9957},
                    "warmup": "include",
                    "schedule": COSINE_24000,
                },
            ],
            "allOf": [
                {
                    "oneOf": [
                        _case({"fit_id": "string"}, ("law", "params", "warmup")),
                        _case({"law": "string", "params": "object"}, ("fit_id",)),
                    ]
                },
                {
                    "oneOf": [
                        _case(
                            {"candidates": "array"},
                            ("name", "schedule", "lr_per_step", "steps", "num_points"),
                        ),
                        {"allOf": [_case(absent=("candidates",)), ONE_CANDIDATE_RULE]},
                    ]
                },
            ],
        },
    )


class Curve(BaseModel):
    name: str | None
    steps: list[int]
    loss: list[float]
    lower: list[float] | None = Field(None, description="lower end of the band at each step")
    upper: list[float] | None = Field(None, description="upper end of the band at each step")
    lr: list[float] = Field(description="the candidate's learning rate at each step")
    total_steps: int
    warmup_end: int = Field(description="the step where the warmup ramp ends (0: no ramp)")


class PredictionOut(BaseModel):
    fit_id: str | None
    law: str
    params: dict[str, float]
    warmup: str
    level: float | None = Field(
        None, description="the level of the lower/upper bands (null: no band was given)"
    )
    interval_note: str | None = Field(None, description="why a band that was asked for is missing")
    steps: list[int] | None = Field(None, description="the single candidate's steps")
    loss: list[float] | None = Field(None, description="the single candidate's predicted loss")
    lower: list[float] | None = Field(None, description="the single candidate's band (lower)")
    upper: list[float] | None = Field(None, description="the single candidate's band (upper)")
    candidates: list[Curve]


class Freshness(BaseModel):
    points_fitted: int = Field(description="this run's points the fit saw")
    points_stored: int = Field(description="this run's points stored now")
    current: bool = Field(description="the fit saw every stored point")
    fitted_at: datetime = Field(description="when the fit was made")
    refit: Literal["pending", "running", "idle", "off"] = Field(
        description=(
            "the background refit of this run: pending (scheduled after recent appends), "
            "running, idle (nothing to do) or off (refits disabled, or the run has neither a "
            "group nor an earlier fit)"
        )
    )


class ForecastOut(BaseModel):
    run_id: str
    fit_id: str
    law: str
    params: dict[str, float]
    warmup: str
    points: Points = Field(description="the run's logged points (now)")
    predicted_at_logged: list[float] = Field(description="the prediction at each logged step")
    lower_at_logged: list[float] | None = Field(None, description="the band at each logged step")
    upper_at_logged: list[float] | None = None
    coverage: float | None = Field(
        None, description="the fraction of logged points inside the band"
    )
    level: float | None = Field(None, description="the bands' level (null: no band)")
    interval_note: str | None = Field(None, description="why a band that was asked for is missing")
    metrics: dict[str, float | None] = Field(description="prediction vs logged loss")
    curve: Curve = Field(description="the prediction for the run's own schedule")
    identification: Identification | None = Field(
        None, description="what the fit's runs identify (the note says what rests on a prior)"
    )
    fit_run_ids: list[str] = Field(default_factory=list, description="the runs the fit used")
    freshness: Freshness = Field(description="how current the fit is for this run")


class HealthOut(BaseModel):
    status: Literal["ok", "warming_up", "failed"]
    warmed_up: bool
    compilations: dict[str, int]
    compilations_total: int
    database: str
    version: str


# ---------------------------------------------------------------------------------------------
# Jobs (app/jobs.py): fits run by workers.


class JobProgress(BaseModel):
    stage: Literal["selecting", "fitting", "cross_validating", "other_laws", "intervals"] = Field(
        description=(
            "the stage the fit is in (app.policy.FIT_STAGES): selecting (law auto: every law "
            "cross-validated, the best fitted), fitting (the law fitted to all runs), "
            "cross_validating (for its intervals), other_laws (auto: the other laws fitted, "
            "for the bands), intervals (the bands' uncertainty)"
        )
    )
    step: int = Field(ge=1, description="its place among this fit's stages, from 1")
    steps: int = Field(ge=1, description="the stages this fit goes through")


class JobOut(BaseModel):
    id: str
    kind: Literal["fit"]
    status: Literal["queued", "running", "done", "failed"] = Field(
        description="queued, running on a worker (under a lease), done (result) or failed (error)"
    )
    attempts: int = Field(description="times a worker claimed it (more than 1: a worker died)")
    created_at: datetime
    started_at: datetime | None = Field(None, description="when the last claim started")
    finished_at: datetime | None = None
    fit_id: str | None = Field(None, description="the fit made, once done")
    result: str | None = Field(None, description="the fit's URL, once done")
    error: ErrorItem | None = Field(None, description="why it failed")
    progress: JobProgress | None = Field(
        None,
        description="how far its fit has come, while running (null before a worker starts it; "
        "once done, the last stage it reached)",
    )
