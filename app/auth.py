"""API keys: who may read, write and delete, checked on every route by one dependency.

A key has scopes ``read``, ``write`` and ``admin``, each implying the ones before it (a ``write``
key reads too). What a route needs is decided here, from its method and path template, so a new
route is covered without a line of its own:

- public, always: ``/healthz`` (load balancers), the dashboard's page ``/`` and ``/static/``
  (files with no data in them: the page reads the API, with the key its user gives), the
  OpenAPI page and document, and ``OPTIONS`` (it names the methods a path takes, nothing more);
- ``read``: ``GET``/``HEAD``, and the ``POST``s that compute without storing anything
  (:data:`READ_POSTS`: predictions, plans);
- ``write``: every other ``POST``/``PUT``/``PATCH`` (runs, points, fits, imports);
- ``admin``: ``DELETE``.

While no key exists (the embedded default), anyone may do anything: ``make serve`` on loopback
needs no key, and :func:`refuse_open_exposure` stops a start on any other address unless
``LOSSCAST_ALLOW_ANONYMOUS=1`` asks for it. Once a key was made, a request without one is a 401
(reads too, unless ``LOSSCAST_PUBLIC_READS=1``), a key without the scope a 403; revoked keys
count, so revoking the last one does not open the service.

A token is ``lck_<id>_<secret>``: the id (16 hex digits) finds the key, the secret (256 random
bits) proves it. The database keeps only the token's SHA-256, compared with
:func:`hmac.compare_digest`. Not bcrypt or another slow password hash: those make guessing a
*low-entropy* password expensive, but nobody can enumerate 2**256 secrets at any hash speed, and
a 100 ms hash on every request would cost more CPU than the request. Tokens are read only from
the ``Authorization`` header, never a query string, so no access log holds one.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Sequence
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from app.deps import in_thread
from app.settings import Settings
from app.storage import ApiKeyRecord, Store

SCOPES = ("read", "write", "admin")
#: What each scope allows: itself and the scopes before it.
GRANTS = {scope: frozenset(SCOPES[: i + 1]) for i, scope in enumerate(SCOPES)}
#: Paths anyone may use, with or without keys.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
PUBLIC_PREFIXES = ("/static/",)
#: POSTs that compute from stored fits and store nothing: reads.
READ_POSTS = frozenset({"/v1/predictions", "/v1/plans"})

TOKEN_PREFIX = "lck_"
_TOKEN = re.compile(r"lck_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`losscast keys create`): `Authorization: Bearer lck_...`. Needed "
    "once keys exist: `read` for reads, `write` for writes, `admin` for deletes.",
)


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs (None: public), from its method and route path template.

    >>> required_scope("GET", "/v1/runs/{run_id}"), required_scope("POST", "/v1/predictions")
    ('read', 'read')
    >>> required_scope("POST", "/v1/fits"), required_scope("DELETE", "/v1/runs/{run_id}")
    ('write', 'admin')
    >>> required_scope("GET", "/healthz") is None
    True
    """
    method = method.upper()
    # OPTIONS answers only the path's Allow (app/errors.py), before any route runs.
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or method == "OPTIONS":
        return None
    if method in ("GET", "HEAD"):
        return "read"
    if method == "DELETE":
        return "admin"
    if method == "POST" and path in READ_POSTS:
        return "read"
    return "write"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(store: Store, name: str, scopes: Sequence[str]) -> tuple[ApiKeyRecord, str]:
    """A new key with ``scopes``; returns its record and its token (shown once, never stored)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise ValueError(f"scopes must be some of {list(SCOPES)}, got {list(scopes)}")
    key_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    ordered = [scope for scope in SCOPES if scope in scopes]
    return store.add_api_key(key_id, name, ordered, token_sha256(token)), token


def verify_token(store: Store, token: str) -> ApiKeyRecord | None:
    """The key ``token`` belongs to, or None (malformed, unknown, wrong secret, revoked)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    key = store.get_api_key(match.group(1))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.token_sha256, token_sha256(token)):
        return None
    return key


def _refuse(status: int, message: str) -> HTTPException:
    challenge = 'Bearer realm="losscast"'
    if status == 403:
        challenge += ', error="insufficient_scope"'
    return HTTPException(status, message, headers={"WWW-Authenticate": challenge})


async def authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiKeyRecord | None:
    """The dependency every route has (``create_app`` sets it on the app): the caller's key,
    None when the route is public or no key is needed; 401/403 otherwise."""
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", request.url.path))
    if needed is None:
        return None
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    if needed == "read" and settings.public_reads and credentials is None:
        return None
    if credentials is None:
        if not await in_thread(store.api_keys_configured):
            return None
        raise _refuse(
            401, f"an API key with the {needed!r} scope is needed (Authorization: Bearer)"
        )
    key = await in_thread(verify_token, store, credentials.credentials)
    if key is None:
        raise _refuse(401, "the API key is not valid (unknown, revoked or malformed)")
    request.state.api_key_id = key.id  # for the access log: the id, never the token
    if not any(needed in GRANTS[scope] for scope in key.scopes):
        raise _refuse(403, f"the API key {key.id} lacks the {needed!r} scope this request needs")
    return key


class OpenExposure(RuntimeError):
    """The service would listen beyond loopback with no API key and no explicit consent."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (a name other than ``localhost`` is not).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("10.0.0.5"), is_loopback("example.org")
    (False, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_exposure(settings: Settings, store: Store) -> None:
    """Raise :class:`OpenExposure` when ``HOST`` is not loopback, no key exists and
    ``LOSSCAST_ALLOW_ANONYMOUS`` is off (anyone reaching the port could delete every run)."""
    if is_loopback(settings.host) or settings.allow_anonymous or store.api_keys_configured():
        return
    raise OpenExposure(
        f"refusing to listen on {settings.host} with no API keys: anyone who reaches it could "
        "write and delete; create one (losscast keys create --scope admin) or set "
        "LOSSCAST_ALLOW_ANONYMOUS=1 to serve without keys"
    )


def install_openapi_security(app) -> None:
    """Make ``app``'s OpenAPI document say what :func:`authorize` does, as it stands when the
    document is asked for: public operations need nothing (``security: []``); the others need a
    key once keys exist, and take one optionally (``[{}, HTTPBearer]``) while none does, or for
    reads when ``LOSSCAST_PUBLIC_READS`` is on."""
    build = app.openapi  # FastAPI's, which caches the document it generated

    def openapi() -> dict:
        document = copy.deepcopy(build())
        enforced = _keys_configured(app)
        public_reads = app.state.settings.public_reads
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                needed = required_scope(method, path)
                if needed is None:
                    operation["security"] = []
                    for code in ("401", "403"):
                        operation["responses"].pop(code, None)
                elif not enforced or (needed == "read" and public_reads):
                    operation["security"] = [{}, *operation.get("security", [])]
        return document

    app.openapi = openapi


def _keys_configured(app) -> bool:
    store = getattr(app.state, "store", None)
    if store is not None:
        return store.api_keys_configured()
    # Not started (a tool reading the document in-process): look in the database it will use.
    store = Store(app.state.settings.database_url)
    try:
        return store.api_keys_configured()
    except Exception:  # no schema yet: no key
        return False
    finally:
        store.close()
