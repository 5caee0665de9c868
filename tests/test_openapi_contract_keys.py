"""The OpenAPI contract with API keys: schemathesis' generated requests (its default checks, as
in tests/test_openapi_contract.py) against an app whose database has keys, sent with an
``admin`` key (every operation answers as documented, as with no keys), with a ``read`` key
(writes are 403s, documented) and with none (every operation but the public ones is a 401,
documented, and none is a 2xx).

Fast profile only: a few cases per operation (``LOSSCAST_CONTRACT_KEYS_EXAMPLES``, default 4).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from app.auth import create_key, required_scope

EXAMPLES = int(os.environ.get("LOSSCAST_CONTRACT_KEYS_EXAMPLES", "4"))
#: Answers given before the key is looked at: a body too large (413) or unparsable (422), a
#: method the path does not take (405), a path no route matches (404).
REFUSED_EARLY = {404, 405, 413, 422}
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def _keyed_app():
    """An app on its own SQLite file, with an admin and a read key made before it starts."""
    from app.main import create_app
    from app.settings import Settings
    from app.storage import Store

    folder = tempfile.mkdtemp(prefix="losscast-contract-keys-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    url = f"sqlite:///{folder}/x.db"
    store = Store(url)
    store.create_schema()
    tokens = {scope: create_key(store, scope, [scope])[1] for scope in ("read", "admin")}
    store.close()
    app = create_app(Settings(database_url=url, warmup=False, jax_cache_dir="", refit=False))
    return app, tokens


APP, TOKENS = _keyed_app()


def _schema(token: str | None):
    """The app's schema for schemathesis, sending ``token`` as the HTTPBearer credentials (so its
    auth checks know them valid: ``ignored_auth`` probes that a request without them, or with
    others, is refused)."""
    config = {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
    if token:
        config["auth"] = {"openapi": {"HTTPBearer": {"bearer": token}}}
    config = SchemathesisConfig.from_dict(config)
    return schemathesis.openapi.from_asgi("/openapi.json", APP, config=config)


admin_schema, read_schema, anonymous_schema = (
    _schema(TOKENS["admin"]),
    _schema(TOKENS["read"]),
    _schema(None),
)


def _sent(response, token: str) -> bool:
    """Whether the request carried ``token`` (schemathesis' negative cases leave it out or send
    another, to check that they are refused)."""
    return response.request.headers.get("authorization") == f"Bearer {token}"


@admin_schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SUPPRESSED)
def test_with_an_admin_key_every_operation_answers_as_documented(case):
    response = case.call_and_validate()
    needed = required_scope(response.request.method, case.operation.path)
    if _sent(response, TOKENS["admin"]) or needed is None:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code in REFUSED_EARLY | {401}, response.text


@read_schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SUPPRESSED)
def test_with_a_read_key_writes_are_refused_as_documented(case):
    response = case.call_and_validate()
    needed = required_scope(response.request.method, case.operation.path)
    if needed is not None and not _sent(response, TOKENS["read"]):
        assert response.status_code in REFUSED_EARLY | {401}, response.text
    elif needed in ("write", "admin"):
        assert response.status_code in REFUSED_EARLY | {403}, response.status_code
    else:
        assert response.status_code not in (401, 403), response.text


@anonymous_schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=SUPPRESSED)
def test_without_a_key_only_public_operations_answer(case):
    response = case.call_and_validate()
    if required_scope(response.request.method, case.operation.path) is None:
        assert response.status_code not in (401, 403)
    else:
        assert response.status_code in REFUSED_EARLY | {401}, response.status_code
