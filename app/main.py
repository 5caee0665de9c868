"""Builds the FastAPI app: settings, storage, the compute pool, the routers, the error handlers
and request ids (``app/errors.py``), the request-body limit and the JIT warm-up at start.

``create_app(settings)`` is the factory (tests build apps on their own database);
``app`` is the module-level instance for ``uvicorn app.main:app``, configured from the
environment (``app/settings.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Security
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__, schemas
from app.auth import authorize, install_openapi_security, refuse_open_exposure
from app.deps import Compute
from app.errors import (
    RequestID,
    error_body,
    install_error_handlers,
    method_table,
    request_id,
)
from app.jobs import Worker, run_local_worker
from app.logs import AccessLog, configure_logging
from app.metrics import count_database_errors, install_metrics
from app.refits import Refits, refit_run
from app.routers import fits, health, jobs, pages, plans, predictions, runs
from app.settings import Settings
from app.storage import Store
from app.warmup import configure_jax_cache, warm_up

logger = logging.getLogger("losscast")

DESCRIPTION = """Loss-curve prediction for LLM pretraining: post logged runs, fit a scaling law
of the learning-rate schedule to them, predict the loss curve of schedules not yet run."""


class BodyLimit:
    """413 for a request body over ``max_bytes``: refused on its Content-Length at once, or
    when the streamed body passes the limit (chunked uploads), before the app sees any of it.
    A Content-Length that is not a number is a malformed request, 422 like the others."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                where = ["header", "content-length"]
                await self._refuse(scope, send, 422, "not a number", where, "invalid_input")
                return
            if too_large:
                await self._refuse(scope, send, 413, self._message(int(declared)))
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send, 413, self._message(size, streamed=True))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self, size: int, streamed: bool = False) -> str:
        what = "the request body passed" if streamed else f"the request body ({size} bytes) is over"
        return f"{what} the limit of {self.max_bytes} bytes (MAX_BODY_BYTES)"

    @staticmethod
    async def _refuse(
        scope: Scope,
        send: Send,
        status: int,
        message: str,
        loc: list[str] | None = None,
        kind: str = "body_too_large",
    ) -> None:
        body = error_body(request_id(scope), message, loc=loc or ["body"], kind=kind)
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _warm_up(app: FastAPI) -> None:
    try:
        await app.state.compute.run_fit(warm_up, app.state.settings.warmup_laws)
    except Exception:  # the service still answers; /healthz says it is not warm
        logger.exception("JIT warm-up failed")
        app.state.warmup_state = "failed"
    else:
        app.state.warmup_state = "ok"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_logging(settings.log_level, settings.log_format)
    configure_jax_cache(settings.jax_cache_dir)
    store = Store(settings.database_url)
    count_database_errors(store.engine)
    await anyio.to_thread.run_sync(store.create_schema)
    await anyio.to_thread.run_sync(refuse_open_exposure, settings, store)
    app.state.store = store
    app.state.compute = Compute(settings.compute_threads)
    app.state.refits = Refits(
        store,
        refit_run,
        enabled=settings.refit,
        delay=settings.refit_delay,
        max_wait=settings.refit_max_wait,
        max_pending=settings.refit_max_pending,
    )
    app.state.warmup_state = "warming_up" if settings.warmup else "ok"
    local_worker = settings.local_worker
    if local_worker is None:
        local_worker = store.backend == "sqlite"
    logger.info("losscast %s on %s database", __version__, store.backend)
    try:
        async with anyio.create_task_group() as tasks:
            app.state.compute.background = tasks  # fits past their request's time limit
            if settings.warmup:
                tasks.start_soon(_warm_up, app)
            tasks.start_soon(app.state.refits.run_forever)
            if local_worker:
                worker = Worker(store, lease=settings.job_lease)
                limiter = app.state.compute.fit_limiter
                tasks.start_soon(run_local_worker, worker, limiter, settings.job_poll)
            yield
            tasks.cancel_scope.cancel()
    finally:
        store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service, configured by ``settings`` (default: from the environment)."""
    app = FastAPI(
        title="losscast",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Security(authorize)],  # every route: the scope it needs (app/auth.py)
        responses=schemas.error_responses(401, 403),
    )
    app.state.settings = settings or Settings.from_env()
    app.state.warmup_state = "warming_up"
    install_error_handlers(app)
    install_openapi_security(app)
    routers = (
        health.router,
        runs.router,
        fits.router,
        jobs.router,
        predictions.router,
        plans.router,
    )
    for router in (*routers, pages.router):
        app.include_router(router)
    pages.mount_static(app)
    app.state.method_table = method_table(
        [*app.routes, *(route for router in routers for route in router.routes)]
    )
    app.add_middleware(BodyLimit, max_bytes=app.state.settings.max_body_bytes)
    install_metrics(app)  # GET /metrics
    app.add_middleware(AccessLog)  # inside RequestID: its lines carry the request id
    app.add_middleware(RequestID)  # the last added is the outermost: its id reaches every answer
    return app


app = create_app()
