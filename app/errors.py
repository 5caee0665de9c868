"""The service's error types and their HTTP form: always JSON ``{"detail": ...}``, never a trace.

Routers and ``app/service.py`` raise these (or let a ``ValueError`` from ``fitting/`` through);
``install_error_handlers`` maps them to status codes. Anything else becomes a generic 500 that is
logged with its traceback server-side only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger("losscast")


class InputError(ValueError):
    """Bad input, with where it is (``candidates[1].schedule``) prefixed to the message."""

    status_code = 422

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class NotFound(LookupError):
    status_code = 404


class Conflict(ValueError):
    """The request contradicts what is stored (e.g. a different loss for a logged step)."""

    status_code = 409


def located(where: str, error: ValueError) -> InputError:
    """Re-raise a ``ValueError`` from ``fitting/`` with where in the request it came from."""
    return InputError(str(error), where)


def _json_safe(value: Any) -> Any:
    """Pydantic's error details may hold exceptions, bytes or NaN: keep them printable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The default handler echoes the offending input, which can be a 60 MB array: leave it out.
    detail = []
    for error in exc.errors()[:50]:
        item = {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": ""}
        item["type"] = error.get("type", "")
        if "ctx" in error:
            item["ctx"] = error["ctx"]
        detail.append(item)
    return _json_safe(detail)


def install_error_handlers(app: FastAPI) -> None:
    async def input_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=getattr(exc, "status_code", 422))

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": _json_safe(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    for kind in (InputError, NotFound, Conflict, ValueError):
        app.add_exception_handler(kind, input_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
