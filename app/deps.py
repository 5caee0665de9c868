"""Shared dependencies, injected into routers with ``Depends``: settings, the store, and the
compute pool that runs fits and predictions off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from app.metrics import timed_fit
from app.settings import Settings
from app.storage import Store

T = TypeVar("T")


class Compute:
    """Runs CPU-heavy calls in worker threads, so the event loop (health checks, light
    requests) stays responsive: predictions at most ``threads`` at once, fits one at a time.

    Fits are serialised because two fits at once hang for good on JAX 0.10.2's CPU backend:
    two threads running ``fitting.fit._solve_starts`` at the same time both wait forever for
    their results (predictions, and a fit beside predictions, do not).
    """

    def __init__(self, threads: int):
        self.limiter = anyio.CapacityLimiter(threads)
        self.fit_limiter = anyio.CapacityLimiter(1)
        #: The app's task group (set by its lifespan): fits a request stops waiting for
        #: (:meth:`start_fit`) go on in it.
        self.background: TaskGroup | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (predictions, forecasts)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run_fit(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, alone among fits (timed in ``/metrics``)."""
        return await anyio.to_thread.run_sync(timed_fit, fn, *args, limiter=self.fit_limiter)

    async def start_fit(self, fn: Callable[[], T]) -> Started[T]:
        """``fn()`` in a worker thread, alone among fits, as a task of the app's own (it goes on
        when the request that started it stops waiting, and holds the fit limiter until it
        ends); :meth:`Started.wait` waits for it. ``fn`` times itself."""
        if self.background is None:
            raise RuntimeError("the compute pool has no task group (the app's lifespan sets it)")
        started: Started[T] = Started()

        async def run() -> None:
            try:
                started.value = await anyio.to_thread.run_sync(
                    fn, limiter=self.fit_limiter, abandon_on_cancel=True
                )
            except Exception as error:  # the waiting request raises it
                started.error = error
            finally:
                started.ended.set()

        self.background.start_soon(run)
        return started


class Started(Generic[T]):
    """A call :meth:`Compute.start_fit` started: wait for it, then read its value."""

    def __init__(self) -> None:
        self.ended = anyio.Event()
        self.value: T | None = None
        self.error: Exception | None = None

    async def wait(self, seconds: float | None = None) -> bool:
        """Whether the call ended within ``seconds`` (None: wait for it)."""
        with anyio.move_on_after(seconds):
            await self.ended.wait()
        return self.ended.is_set()

    def result(self) -> T:
        """The call's value, or what it raised raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_compute(request: Request) -> Compute:
    return request.app.state.compute


def get_refits(request: Request):
    """The background refits of live runs (:class:`app.refits.Refits`)."""
    return request.app.state.refits


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """A blocking call (database I/O) in the default thread pool."""
    return await run_in_threadpool(fn, *args)
