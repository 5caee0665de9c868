"""``GET /metrics`` in Prometheus' text format: prometheus-fastapi-instrumentator for the HTTP
side, prometheus_client for the rest.

- ``http_requests_total{handler,method,status}``: requests by route template and exact status;
  ``http_request_duration_seconds{handler,method}`` (latency histogram, by route) and
  ``http_request_duration_highr_seconds`` (finer buckets, all routes); request and response
  sizes. The instrumentator's own metrics, with its names.
- ``losscast_fit_duration_seconds{task,outcome}``: every fit the compute pool runs (``fit_runs``
  for requests, ``warm_up``) and every job's fit (``new_fit``, in the worker's process;
  background refits are jobs too), ok or error.
- ``losscast_jobs{status}``: fit jobs queued (the queue's depth), running, done, failed.
- ``losscast_fits_running``, ``losscast_fits_waiting``: fits now in the compute pool and waiting
  for it (fits run one at a time in a process, ``app.deps.Compute``);
  ``losscast_refits_pending`` and ``losscast_refits_total{outcome}`` (``app/refits.py``).
- ``losscast_jit_compilations_total{kernel}``, ``losscast_jit_evictions_total{kernel}``,
  ``losscast_jit_signatures{kernel}``: the bounded JIT cache of each kernel
  (:mod:`fitting.compiled`): signatures compiled (or loaded from the persistent cache), evicted,
  held now.
- ``losscast_database_errors_total{error}``: errors the database driver raised (SQLAlchemy's
  ``handle_error`` event), by exception class: unreachable databases, locks, bugs.

Each app has a registry of its own (tests build many apps in one process); the process-wide
metrics (fits, JIT, database errors) are registered into each. ``/metrics`` is a read
(``app/auth.py``): Prometheus sends the key as ``authorization: {credentials: ...}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import event

from fitting.compiled import KERNELS

T = TypeVar("T")

FIT_SECONDS = Histogram(
    "losscast_fit_duration_seconds",
    "Seconds each fit took in the compute pool (not counting its wait for the pool).",
    ["task", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640),
    registry=None,
)
DATABASE_ERRORS = Counter(
    "losscast_database_errors",
    "Errors raised by the database driver, by exception class.",
    ["error"],
    registry=None,
)


def timed_fit(fn: Callable[..., T], *args: Any, task: str | None = None) -> T:
    """``fn(*args)``, its duration observed in ``losscast_fit_duration_seconds`` under ``task``
    (default: ``fn``'s name)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        result = fn(*args)
        outcome = "ok"
        return result
    finally:
        task = task or getattr(fn, "__name__", type(fn).__name__)
        FIT_SECONDS.labels(task, outcome).observe(time.perf_counter() - started)


def count_database_errors(engine) -> None:
    """Count every error the driver raises on ``engine`` in ``losscast_database_errors_total``."""

    @event.listens_for(engine, "handle_error")
    def _count(context) -> None:
        DATABASE_ERRORS.labels(type(context.original_exception).__name__).inc()


class JitCollector(Collector):
    """The bounded JIT cache of every kernel (:data:`fitting.compiled.KERNELS`), read at scrape."""

    def collect(self) -> Iterator:
        compiled = CounterMetricFamily(
            "losscast_jit_compilations",
            "Signatures each kernel compiled (or loaded from JAX's persistent cache).",
            labels=["kernel"],
        )
        evicted = CounterMetricFamily(
            "losscast_jit_evictions",
            "Signatures each kernel dropped (least recently used beyond its bound).",
            labels=["kernel"],
        )
        held = GaugeMetricFamily(
            "losscast_jit_signatures", "Signatures each kernel holds now.", labels=["kernel"]
        )
        for name, kernel in sorted(KERNELS.items()):
            compiled.add_metric([name], kernel.compilations)
            evicted.add_metric([name], kernel.evictions)
            held.add_metric([name], kernel.signatures)
        yield from (compiled, evicted, held)


class AppCollector(Collector):
    """One app's compute pool and background refits, read at scrape."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self) -> Iterator:
        compute = getattr(self.app.state, "compute", None)
        refits = getattr(self.app.state, "refits", None)
        if compute is not None:
            stats = compute.fit_limiter.statistics()
            yield GaugeMetricFamily(
                "losscast_fits_running", "Fits running in the compute pool.", stats.borrowed_tokens
            )
            yield GaugeMetricFamily(
                "losscast_fits_waiting", "Fits waiting for the compute pool.", stats.tasks_waiting
            )
        store = getattr(self.app.state, "store", None)
        if store is not None:
            jobs = GaugeMetricFamily(
                "losscast_jobs",
                "Fit jobs by status (queued: the queue's depth).",
                labels=["status"],
            )
            try:
                counts = store.count_jobs()
            except Exception:  # the database is away: losscast_database_errors_total says so
                counts = None
            if counts is not None:
                for status in ("queued", "running", "done", "failed"):
                    jobs.add_metric([status], counts.get(status, 0))
                yield jobs
        if refits is not None:
            yield GaugeMetricFamily(
                "losscast_refits_pending",
                "Runs waiting for a background refit.",
                len(refits.pending),
            )
            done = CounterMetricFamily(
                "losscast_refits", "Background refits, by outcome.", labels=["outcome"]
            )
            for outcome, value in (
                ("queued", refits.queued),  # as fit jobs: losscast_jobs counts how they end
                ("failed", refits.failed),
                ("dropped", refits.dropped),
            ):
                done.add_metric([outcome], value)
            yield done


def install_metrics(app: FastAPI) -> None:
    """``GET /metrics`` on ``app``, with the HTTP metrics and the ones above, in a registry of
    the app's own (``app.state.metrics_registry``)."""
    registry = CollectorRegistry()
    for collector in (FIT_SECONDS, DATABASE_ERRORS, JitCollector(), AppCollector(app)):
        registry.register(collector)
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=False,
        should_group_untemplated=True,  # unknown paths are one "none" handler, not one each
        excluded_handlers=["/metrics"],
        registry=registry,
    )
    instrumentator.instrument(app).expose(app, endpoint="/metrics", include_in_schema=False)
    app.state.metrics_registry = registry
