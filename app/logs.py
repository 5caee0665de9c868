"""The service's logs: one JSON object per line (python-json-logger), each with the id of the
request it belongs to, and one access line per request.

- :func:`configure_logging` sets up the ``losscast`` logger (``LOG_LEVEL``,
  ``LOSSCAST_LOG_FORMAT`` = ``json`` or ``text``). Its access lines replace uvicorn's, which are
  turned off: those carry neither the request id nor the route, and print the query string.
- :class:`AccessLog` (ASGI middleware, inside :class:`app.errors.RequestID`) makes the request
  id the current one for everything logged while the request runs (a context variable, which
  the compute threads inherit), and logs ``method``, ``path``, ``route``, ``status``,
  ``duration_ms`` and the API key's id. Never a header, a body or a query string: no token or
  user data reaches the log.
"""

from __future__ import annotations

import contextvars
import logging
import time

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import request_id

logger = logging.getLogger("losscast")
access_logger = logging.getLogger("losscast.access")

#: The id of the request being served in this context (None outside requests).
CURRENT_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "losscast_request_id", default=None
)
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"  # and "time", ISO 8601 in UTC
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the current request's, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = CURRENT_REQUEST_ID.get()
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "json") -> None:
    """The ``losscast`` logger at ``level``, one handler on stderr in ``log_format``; uvicorn's
    access log off (:class:`AccessLog` writes one with the request id)."""
    logger.setLevel(level)
    if not any(getattr(handler, "losscast", False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.losscast = True
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        logger.propagate = False
    for handler in logger.handlers:
        if getattr(handler, "losscast", False):
            handler.setFormatter(formatter(log_format))
    logging.getLogger("uvicorn.access").disabled = True


class AccessLog:
    """Sets the current request id and logs one line per HTTP request (see module docstring)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = CURRENT_REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            route = scope.get("route")
            access_logger.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "api_key_id": (scope.get("state") or {}).get("api_key_id"),
                    "request_id": rid,
                },
            )
            CURRENT_REQUEST_ID.reset(token)
