"""Background refits of live runs, so that a forecast without ``fit_id`` stays current.

Appending points to a run (``POST /v1/runs/{id}/points``) schedules a refit of it; the request
returns at once. A refit is

- **debounced**: it waits until the run has been quiet for ``delay`` seconds, but never more
  than ``max_wait`` seconds after the first append it answers, so a job that logs every few
  seconds is still refitted regularly;
- **deduplicated**: a run has at most one pending refit, whatever the number of appends;
- **bounded**: at most ``max_pending`` runs wait (a new one beyond that is dropped and logged;
  its next append asks again);
- **never on the request path, nor in the web process**: one asyncio task takes due refits and
  queues each as a fit job (:mod:`app.jobs`), which the workers run like any other: the server's
  own worker on the embedded SQLite default, ``losscast worker`` processes on PostgreSQL. So the
  refits of several replicas spread over the workers and take turns with users' fits there.

Which runs: those in a ``group`` and those that have been fitted before (someone asked for a
forecast of them). A run with neither would be fitted alone with default options for nobody:
it is not refitted, and its forecast says ``refit: off``. A refit repeats the run's latest fit
with the same options and ``with_group`` (so a fit of a job with its group stays one), or,
without an earlier fit, fits ``auto`` with its group.

A run's refit state (the forecast's ``freshness.refit``) is ``pending`` while its appends are
being debounced or its job waits in the queue, ``running`` while a worker fits it, then
``idle``. The debounce is per replica: two replicas that both take appends of one run may queue
a refit each (two fits, one wasted), never none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from app import schemas
from app.jobs import submit_fit
from app.storage import RunRecord, Store

logger = logging.getLogger("losscast")

POLL_SECONDS = 1.0  # how often the task looks for due refits when none is due sooner


@dataclass
class _Pending:
    first: float  # monotonic time of the first append this refit answers
    last: float  # of the latest


class Refits:
    """The queue of pending refits and the task that runs them (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        refit: Callable[[Store, str], str],
        *,
        enabled: bool,
        delay: float,
        max_wait: float,
        max_pending: int,
    ):
        self.store = store
        self.refit = refit
        self.enabled = enabled
        self.delay = delay
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.pending: dict[str, _Pending] = {}
        self.jobs: dict[str, str] = {}  # run id -> its latest refit job's id
        self.queued = 0
        self.failed = 0
        self.dropped = 0
        self._lock = threading.Lock()  # appends schedule from the request threads

    def wanted(self, run: RunRecord) -> bool:
        """Whether appends to ``run`` (as the append left it) schedule refits: it is in a group,
        or was fitted."""
        if not self.enabled:
            return False
        return run.group is not None or self.store.latest_fit_for_run(run.id) is not None

    def schedule(self, run_id: str) -> None:
        """Ask for a refit of ``run_id`` (after its appends go quiet); cheap, never blocks."""
        now = time.monotonic()
        with self._lock:
            if run_id in self.pending:
                self.pending[run_id].last = now
                return
            if len(self.pending) >= self.max_pending:
                self.dropped += 1
                logger.warning("refit of %s dropped: %d pending already", run_id, self.max_pending)
                return
            self.pending[run_id] = _Pending(now, now)

    def state(self, run_id: str) -> str:
        """``pending``, ``running``, ``idle`` or ``off`` (for the forecast's freshness)."""
        if run_id in self.pending:
            return "pending"
        job_id = self.jobs.get(run_id)
        job = self.store.get_job(job_id) if job_id is not None else None
        if job is not None and job.status in ("queued", "running"):
            return "pending" if job.status == "queued" else "running"
        with self._lock:
            if self.jobs.get(run_id) == job_id:
                self.jobs.pop(run_id, None)
        return "idle" if self.enabled else "off"

    def _due(self, entry: _Pending, now: float) -> float:
        return min(entry.last + self.delay, entry.first + self.max_wait) - now

    async def run_forever(self) -> None:
        """Queue due refits as fit jobs, one at a time, until cancelled."""
        while True:
            now = time.monotonic()
            with self._lock:
                waits = {run_id: self._due(entry, now) for run_id, entry in self.pending.items()}
                due = [run_id for run_id, wait in waits.items() if wait <= 0]
                run_id = min(due, key=lambda r: self.pending[r].first) if due else None
                if run_id is not None:
                    del self.pending[run_id]
            if run_id is None:
                await anyio.sleep(min([POLL_SECONDS, *waits.values()]))
                continue
            try:
                job_id = await anyio.to_thread.run_sync(self.refit, self.store, run_id)
            except Exception:  # the last fit stays in place; the next append retries
                self.failed += 1
                logger.exception("background refit of %s could not be queued", run_id)
                continue
            with self._lock:
                self.jobs[run_id] = job_id
            self.queued += 1

    def stats(self) -> dict[str, int]:
        return {
            "pending": len(self.pending),
            "queued": self.queued,
            "failed": self.failed,
            "dropped": self.dropped,
        }


def refit_body(store: Store, run_id: str) -> schemas.FitCreate:
    """The fit a refit of ``run_id`` repeats: its latest fit's options and ``with_group``, with
    the run first; without one, ``auto`` with its group."""
    latest = store.latest_fit_for_run(run_id)
    if latest is None:
        return schemas.FitCreate(run_ids=[run_id], law=schemas.AUTO, with_group=True)
    options = {k: v for k, v in latest.options.items() if k in schemas.FitCreate.model_fields}
    options.pop("run_ids", None)
    others = [] if options.get("with_group") else [r for r in latest.run_ids if r != run_id]
    return schemas.FitCreate(run_ids=[run_id, *others], **options)


def refit_run(store: Store, run_id: str) -> str:
    """Queue the refit of ``run_id`` that :func:`refit_body` says, as a fit job; its id."""
    return submit_fit(store, refit_body(store, run_id)).id
