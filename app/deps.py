"""Shared dependencies, injected into routers with ``Depends``: settings, the store, and the
compute pool that runs fits and predictions off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.settings import Settings
from app.storage import Store

T = TypeVar("T")


class Compute:
    """Runs CPU-heavy calls in worker threads, at most ``threads`` at once, so the event loop
    (health checks, light requests) stays responsive while fits run."""

    def __init__(self, threads: int):
        self.limiter = anyio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_compute(request: Request) -> Compute:
    return request.app.state.compute


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """A blocking call (database I/O) in the default thread pool."""
    return await run_in_threadpool(fn, *args)
