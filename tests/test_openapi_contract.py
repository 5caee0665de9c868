"""The OpenAPI document tells the truth: schemathesis generates requests from it, sends them to
the app in-process (ASGI), and checks every answer with its default checks -- no 500, status
codes, content types, headers and bodies as documented, 405 with ``Allow`` for undocumented
methods, ``OPTIONS``'s ``Allow`` -- for every operation.

- Fast profile (``make test``): a few generated cases per operation, and a few stateful
  scenarios (below); about a minute or two on 2 cores, most of it compiling the first fit.
- Full profile (``@pytest.mark.slow``, ``make bench``): many more cases per operation, and many
  more stateful scenarios, which must reach a successful fit and a 200 from each of curve,
  forecast, predictions and plans.
- Stateful phase: schemathesis' state machine follows the OpenAPI links (POST /v1/runs ->
  POST /v1/fits -> curves, forecasts, predictions, plans, and back to the runs), each scenario
  from a real run that it has fitted (``_workflows``). The steps are counted per operation and
  status, and per link and status, and printed at the end.

The app is a fresh one on its own SQLite file, without the JIT warm-up (``jax_cache_dir`` empty:
nothing from other tests). How many cases each profile generated is printed at the end
(``pytest -s``).
"""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import initialize, multiple
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.stateful.state_machine import StepInput, normalize_name

CASES: collections.Counter[str] = collections.Counter()
FAST_EXAMPLES = int(os.environ.get("LOSSCAST_CONTRACT_EXAMPLES", "8"))
FULL_EXAMPLES = int(os.environ.get("LOSSCAST_CONTRACT_FULL_EXAMPLES", "100"))
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def _contract_app():
    """Built at import: schemathesis parametrizes the tests from the schema at collection (its
    fixture-based loader needs a pytest internal that pytest 9 removed)."""
    from app.main import create_app
    from app.settings import Settings

    folder = tempfile.mkdtemp(prefix="losscast-contract-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return create_app(
        Settings(database_url=f"sqlite:///{folder}/x.db", warmup=False, jax_cache_dir="")
    )


#: A schema-valid request may still be a 422: the schema checks structure, ``fitting/`` the values
#: (a schedule's peak_lr > 0, steps within the schedule, a request budget), and the document
#: says so on every 422. So positive_data_acceptance also accepts 422 (its other defaults kept).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _contract_app(), config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    for profile, count in sorted(CASES.items()):
        print(f"\nschemathesis {profile} profile: {count} cases")


@schema.parametrize()
@settings(max_examples=FAST_EXAMPLES, deadline=None, suppress_health_check=SUPPRESSED)
def test_every_operation_answers_as_documented(case):
    CASES["fast"] += 1
    case.call_and_validate()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=FULL_EXAMPLES, deadline=None, suppress_health_check=SUPPRESSED)
def test_every_operation_answers_as_documented_full(case):
    CASES["full"] += 1
    case.call_and_validate()


#: Per profile: (operation, status) of every stateful step, and (link, status) of every step
#: that followed a link.
STEPS: dict[str, collections.Counter[tuple[str, int]]] = collections.defaultdict(
    collections.Counter
)
LINKED: dict[str, collections.Counter[tuple[str, int]]] = collections.defaultdict(
    collections.Counter
)
#: Where the workflows must get to with a real run: a fit, then each thing asked of it.
REACHED = {
    ("POST /v1/fits", 201),
    ("GET /v1/fits/{fit_id}/curve", 200),
    ("GET /v1/runs/{run_id}/forecast", 200),
    ("POST /v1/predictions", 200),
    ("POST /v1/plans", 200),
}


def _workflows(profile: str):
    """schemathesis' state machine over the OpenAPI links, counted. Each scenario starts from a
    real run, fitted: the documented small run (``schemas.SMALL_RUN``) through the root rule of
    POST /v1/runs, then its ``FitRun`` link through that link's rule -- sent and checked like
    any step, and both left for the scenario's later steps to follow links from. Without it the
    links past POST /v1/fits are almost never followed: a generated run is almost never valid
    (step and loss of one length, a schedule fitting/ accepts), and a generated scenario rarely
    fits the example run before deleting it."""
    from app.schemas import SMALL_RUN

    workflow = schema.as_state_machine()
    (fit_run,) = (
        link
        for link in workflow._transitions.operations["POST /v1/runs"].outgoing
        if link.name == "FitRun"
    )
    create_run_rule = getattr(workflow, normalize_name("RANDOM -> POST /v1/runs"))
    fit_run_rule = getattr(workflow, normalize_name(fit_run.full_name))

    class Workflows(workflow):
        @initialize(target=workflow.bundles["POST /v1/runs -> 201"])
        def a_fitted_run(self):
            run = create_run_rule(self, StepInput.initial(fit_run.source.Case(body=SMALL_RUN)))
            transition = fit_run.extract(run)
            case = fit_run.target.Case(body=transition.request_body.value.ok())
            fit = fit_run_rule(self, StepInput(case, transition, [(ParameterLocation.BODY, None)]))
            return multiple(run, fit)  # each to its bundle (schemathesis matches the response)

        def step(self, input):
            try:
                output = super().step(input)
            except Exception as failure:  # a check failed, or the call did
                FAILED[profile].append(failure)
                raise
            label, status = input.case.operation.label, output.response.status_code
            CASES[profile] += 1
            STEPS[profile][label, status] += 1
            if input.transition is not None:
                LINKED[profile][input.transition.id, status] += 1
            return output

    return Workflows


@pytest.fixture(scope="module", autouse=True)
def report_steps():
    yield
    for profile in sorted(STEPS):
        print(f"\n{profile}: steps (count, status, operation)")
        for (label, status), count in sorted(STEPS[profile].items()):
            print(f"  {count:5d}  {status}  {label}")
        print(f"{profile}: steps that followed a link (count, status, link)")
        for (link, status), count in sorted(LINKED[profile].items()):
            print(f"  {count:5d}  {status}  {link}")


#: Per profile: what failed in a stateful step (kept for when Hypothesis cannot replay it).
FAILED: dict[str, list[Exception]] = collections.defaultdict(list)
#: How many times a profile's scenarios start again after an inconsistent replay (below).
RESTARTS = 3


def _run_workflows(profile: str, scenarios: int, steps: int) -> None:
    """Run the scenarios; on ``FlakyStrategyDefinition`` with no failed step, start again.

    The scenarios share one server, whose state each changes (runs, fits), and schemathesis
    mixes in examples by true randomness: the same choices can meet other answers (a 404 where
    a run was deleted, a 201 where a generated run was a 422), hence bundles of other sizes,
    and Hypothesis reports its data as inconsistent. That says nothing about the API (the
    schemathesis engine, too, counts it as no failure and runs again); a failed check does,
    and is raised as it was, even where Hypothesis could not replay it."""
    machine = _workflows(profile)
    for restart in range(RESTARTS + 1):
        try:
            machine.run(
                settings=settings(
                    max_examples=scenarios,
                    stateful_step_count=steps,
                    deadline=None,
                    database=None,  # an example stored by an earlier run meets another state
                    suppress_health_check=[*SUPPRESSED, HealthCheck.function_scoped_fixture],
                )
            )
            return
        except FlakyStrategyDefinition as flaky:
            if FAILED[profile]:
                raise FAILED[profile][0] from flaky
            if restart == RESTARTS:
                raise
            print(f"\n{profile}: inconsistent replay (the server's state), starting again")


def test_stateful_workflows_follow_the_links():
    """A few scenarios along the links, each from a fitted run (a fit, the first time, compiles)."""
    _run_workflows(
        "stateful-fast", int(os.environ.get("LOSSCAST_CONTRACT_STATEFUL_FAST_EXAMPLES", "8")), 6
    )
    assert STEPS["stateful-fast"]["POST /v1/fits", 201] >= 1


@pytest.mark.slow
def test_stateful_workflows_follow_the_links_full():
    """Runs -> fits -> curves, forecasts, predictions, plans, along the OpenAPI links: each of
    them is reached with a fit that succeeded, and answers as documented."""
    _run_workflows(
        "stateful-full", int(os.environ.get("LOSSCAST_CONTRACT_STATEFUL_EXAMPLES", "100")), 10
    )
    reached = {step for step, count in STEPS["stateful-full"].items() if count}
    assert REACHED <= reached, f"never reached: {sorted(REACHED - reached)}"
