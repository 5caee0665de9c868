"""The service's error types and their HTTP form: one JSON shape for every error, never a trace.

Every error answer is :class:`app.schemas.ErrorOut`::

    {"detail": [{"loc": ["body", "candidates", 1, "schedule"], "msg": "...", "type": "..."}],
     "request_id": "3f2a..."}

the shape of FastAPI's own 422 (a list, with ``loc`` where in the request the problem is, ``[]``
when it is about the request as a whole), plus the request's id, which is also the
``X-Request-ID`` response header (a client's own ``X-Request-ID`` is kept). What maps to what:

- 422: the request does not validate (pydantic), its body cannot be parsed, or its values are
  wrong: :class:`fitting.errors.InvalidInput` (``fitting/``'s checks) and its subclass
  :class:`InputError` (the service's, with where in the request), :class:`BudgetExceeded`.
- 401 no or a bad API key, 403 a key without the scope (``app/auth.py``).
- 404 :class:`NotFound`, 409 :class:`Conflict`, 405 (with ``Allow``); ``OPTIONS`` on a known path
  is a 204 whose ``Allow`` lists exactly the methods of that path.
- 503 with ``Retry-After``: the database is unreachable (SQLAlchemy ``OperationalError``, an
  invalidated connection, a pool timeout).
- 500: anything else -- a bug, never "your input is wrong" -- logged with its traceback and
  the request id, answered without either.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sql
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain import json_safe
from fitting.errors import InvalidInput

logger = logging.getLogger("losscast")

REQUEST_ID_HEADER = "X-Request-ID"
#: A client's X-Request-ID is kept when it looks like an id (it goes into logs and headers).
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SCOPE_KEY = "losscast.request_id"
#: Seconds a client is told to wait (``Retry-After``) when the database is unreachable.
RETRY_AFTER_SECONDS = 5


class InputError(InvalidInput):
    """Bad input, with where it is (``candidates[1].schedule``) prefixed to the message."""

    status_code = 422
    kind = "invalid_input"

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class BudgetExceeded(InputError):
    """A request that asks for more work than one request may do (``app/budgets.py``)."""

    kind = "budget_exceeded"


class NotFound(LookupError):
    status_code = 404
    kind = "not_found"


class Conflict(ValueError):
    """The request contradicts what is stored (e.g. a different loss for a logged step)."""

    status_code = 409
    kind = "conflict"


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The default handler echoes the offending input, which can be a 60 MB array: leave it out.
    detail = []
    for error in exc.errors()[:50]:
        item = {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": ""}
        item["type"] = error.get("type", "")
        if "ctx" in error:
            item["ctx"] = error["ctx"]
        detail.append(item)
    return json_safe(detail, unknown=str)  # pydantic's details may hold exceptions or bytes


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error shape (see the module docstring), and give every
    request an id (:class:`RequestID`, added last so that it wraps every other middleware)."""

    async def known_error(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 422)
        if isinstance(exc, InputError):
            loc, message = location(exc.where), exc.message
        else:
            loc, message = [], str(exc)
        kind = getattr(exc, "kind", "invalid_input")
        return error_response(request, status, message, loc=loc, kind=kind)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, detail=_validation_detail(exc))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            if request.method == "OPTIONS" and allowed:
                return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
            headers["Allow"] = ", ".join(allowed)
        status, kind = exc.status_code, _HTTP_KINDS.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if status == 400:
            # FastAPI's "There was an error parsing the body" (a broken multipart form, a body
            # that is not UTF-8): a malformed request, answered like every other one, 422.
            status, kind = 422, "body_unparsable"
            cause = exc.__cause__
            message = f"{message}: {cause}" if cause and str(cause) else message
            return error_response(request, status, message, loc=["body"], kind=kind)
        return error_response(request, status, message, kind=kind, headers=headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            return await unexpected(request, exc)
        logger.warning(
            "request %s: database unavailable on %s %s: %s",
            request_id(request.scope),
            request.method,
            request.url.path,
            exc,
        )
        return error_response(
            request,
            503,
            "the database is unavailable; retry later",
            kind="service_unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Runs in Starlette's ServerErrorMiddleware, outside RequestID: it sets the header itself.
        rid = request_id(request.scope)
        logger.error(
            "request %s: unhandled error on %s %s",
            rid,
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return error_response(
            request,
            500,
            f"internal server error; quote request id {rid} when reporting it",
            kind="internal_error",
            headers={REQUEST_ID_HEADER: rid},
        )

    for kind in (InvalidInput, NotFound, Conflict):
        app.add_exception_handler(kind, known_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(sql.DBAPIError, database_error)
    app.add_exception_handler(sql.TimeoutError, database_error)
    app.add_exception_handler(Exception, unexpected)


_HTTP_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "cannot reach the database now" (a 503 worth retrying)
    rather than a bug in a query (a 500): OperationalError (connection refused or lost, a
    locked SQLite file), a connection SQLAlchemy invalidated, or no pooled connection in time."""
    if isinstance(exc, sql.OperationalError | sql.TimeoutError):
        return True
    return isinstance(exc, sql.DBAPIError) and bool(exc.connection_invalidated)


#: The ``name`` of a route that only answers 405 (for methods a path must not take from a
#: template it also matches): its methods are not the path's.
REFUSES_METHODS = "refuses_methods"


def method_table(routes: Iterable[BaseRoute]) -> list[tuple[str, re.Pattern[str], frozenset[str]]]:
    """(path, path regex, methods) of every route that serves its methods, for
    :func:`allowed_methods`; ``create_app`` builds it once into ``app.state.method_table`` from
    the app's and the routers' routes (FastAPI nests included routers in objects of its own)."""
    return [
        (route.path, compile_path(route.path)[0], frozenset(route.methods))
        for route in routes
        if getattr(route, "methods", None)
        and getattr(route, "path", None)
        and getattr(route, "name", None) != REFUSES_METHODS
    ]


def allowed_methods(request: Request) -> list[str]:
    """Every method the app's routes serve on this request's path, and OPTIONS, sorted;
    [] for a path no route serves. A literal path shadows the templates it also matches
    (``/v1/runs/csv`` is not ``/v1/runs/{run_id}``: a hidden route refuses the methods it
    would take from it). Starlette's own 405 named only the first route that matched the
    path, so ``GET /v1/runs`` and ``POST /v1/runs`` each hid the other."""
    path = request.scope.get("path", "")
    table = getattr(request.app.state, "method_table", [])
    matching = [(route, allowed) for route, regex, allowed in table if regex.match(path)]
    literal = [(route, allowed) for route, allowed in matching if "{" not in route]
    methods = {method for _, allowed in literal or matching for method in allowed}
    return sorted(methods | {"OPTIONS"}) if methods else []


def location(where: str | None) -> list[str | int]:
    """``"candidates[1].schedule"`` -> ``["body", "candidates", 1, "schedule"]``;
    ``"query.level"`` -> ``["query", "level"]`` (FastAPI's ``loc`` convention); ``[]`` for None."""
    if not where:
        return []
    parts: list[str | int] = [
        int(index) if index else name for name, index in _LOC_PART.findall(where)
    ]
    return parts if parts and parts[0] in _LOC_ROOTS else ["body", *parts]


_LOC_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_LOC_ROOTS = ("body", "query", "path", "header")


def error_body(
    rid: str,
    message: str = "",
    *,
    loc: list[str | int] | None = None,
    kind: str = "invalid_input",
    detail: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The one error shape (:class:`app.schemas.ErrorOut`): one item, or ``detail`` as given."""
    items = detail if detail is not None else [{"loc": loc or [], "msg": message, "type": kind}]
    return {"detail": items, "request_id": rid}


def error_response(
    request: Request,
    status: int,
    message: str = "",
    *,
    loc: list[str | int] | None = None,
    kind: str = "invalid_input",
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(request_id(request.scope), message, loc=loc, kind=kind, detail=detail)
    return JSONResponse(body, status_code=status, headers=headers)


def request_id(scope: Scope) -> str:
    """This request's id (set by :class:`RequestID`; a fresh one where it did not run)."""
    return scope.setdefault(_SCOPE_KEY, uuid.uuid4().hex)


class RequestID:
    """Gives every HTTP request an id -- the client's ``X-Request-ID`` when it sent a sane one,
    else a fresh uuid4 -- kept in the ASGI scope for the error bodies and logs, and sent back
    as the ``X-Request-ID`` header of every answer (errors or not), so that a client's report
    of a 500 finds its traceback in the log."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"")
        given = given.decode("latin-1")
        rid = given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope[_SCOPE_KEY] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
