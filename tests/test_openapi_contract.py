"""The OpenAPI document tells the truth: schemathesis generates requests from it, sends them to
the app in-process (ASGI), and checks every answer with its default checks -- no 500, status
codes, content types, headers and bodies as documented, 405 with ``Allow`` for undocumented
methods, ``OPTIONS``'s ``Allow`` -- for every operation.

- Fast profile (``make test``): a few generated cases per operation, about a minute on 2 cores.
  The fits it can make are of tiny runs, or 404s (generated run ids), so it compiles little.
- Full profile (``@pytest.mark.slow``, ``make bench``): many more cases per operation, and the
  stateful phase, which follows the OpenAPI links (POST /v1/runs -> POST /v1/fits -> curves,
  forecasts, predictions, plans) with real runs and fits.

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
from schemathesis.config import SchemathesisConfig

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


@pytest.mark.slow
def test_stateful_workflows_follow_the_links():
    """Runs -> fits -> curves, forecasts, predictions, plans, along the OpenAPI links."""
    workflow = schema.as_state_machine()

    class Counted(workflow):
        def call(self, case, **kwargs):
            CASES["stateful"] += 1
            return super().call(case, **kwargs)

    Counted.run(
        settings=settings(
            max_examples=int(os.environ.get("LOSSCAST_CONTRACT_STATEFUL_EXAMPLES", "60")),
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=[*SUPPRESSED, HealthCheck.function_scoped_fixture],
        )
    )
