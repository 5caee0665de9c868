"""Fits as jobs: queued in the database by ``POST /v1/fits`` with ``Prefer: respond-async``, run
by workers (``losscast worker``, any number, wherever the database is reachable), polled at
``GET /v1/jobs/{id}``.

The queue is the ``jobs`` table itself (``app/storage.py``), not a queue library: the job, its
lease and the fit it makes then commit in the same database, so "stored once" is one
transaction rather than a protocol between two systems. PostgreSQL hands a job to one worker
with ``SELECT ... FOR UPDATE SKIP LOCKED``; on SQLite (one writer at a time) ``make serve``
runs one local worker inside the server.

- A worker claims the oldest claimable job under a lease of ``lease`` seconds, renewed every
  third of it while the fit runs (a heartbeat thread).
- A worker killed mid-fit (``kill -9``) stops renewing; once the lease has expired (by the
  clock of the worker that looks: keep the machines' clocks in sync, NTP), another worker
  claims the job again (its ``attempts`` counts the claims; after ``max_attempts`` it
  fails as ``worker_lost``).
- The fit and the job's ``done`` commit together, and only while the job is still the
  worker's: a worker that lost its lease (paused past it) stores nothing, so a fit is never
  stored twice.
- A fit that fails on its input (``InvalidInput``, a run deleted meanwhile) fails the job with
  the error body's item (``loc``, ``msg``, ``type``); it is not retried. One that meets an
  unreachable database is left as it is, to be retried when its lease has run out.
- While it fits, a worker records the stage its fit is in (the job's ``progress``,
  :data:`app.policy.FIT_STAGES`), only while the job is its own.
- A synchronous fit that outlasts its request's time limit (:class:`SyncFit`) becomes a job
  that is running already, in the web process that fits it, under the same lease rules.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app import schemas
from app.errors import Conflict, InputError, NotFound, database_unavailable, location
from app.metrics import timed_fit
from app.services.fits import check_fit_request, new_fit
from app.storage import FitRecord, JobRecord, NewFit, Store
from fitting.errors import InvalidInput

logger = logging.getLogger("losscast.jobs")

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
#: The ``Retry-After`` of a 202: seconds a client waits before it polls the job.
POLL_AFTER_SECONDS = 2


def submit_fit(store: Store, body: schemas.FitCreate) -> JobRecord:
    """Queue a fit of ``body``, after the checks that need no fit (404 and 422 now, not as a
    failed job)."""
    check_fit_request(store, body)
    return store.enqueue_job("fit", body.model_dump(mode="json"))


def job_out(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "fit_id": job.fit_id,
        "result": f"/v1/fits/{job.fit_id}" if job.fit_id else None,
        "error": job.error,
        "progress": job.progress,
    }


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _error_item(error: Exception) -> dict[str, Any]:
    if isinstance(error, InputError):
        return {"loc": location(error.where), "msg": error.message, "type": error.kind}
    return {"loc": [], "msg": str(error), "type": getattr(error, "kind", "invalid_input")}


class Worker:
    """Claims jobs from ``store`` and runs them, one at a time (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        name: str | None = None,
        *,
        lease: float = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ):
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got lease={lease}")
        self.store = store
        self.name = name or worker_name()
        self.lease = lease
        self.max_attempts = max_attempts

    def claim(self) -> JobRecord | None:
        return self.store.claim_job(self.name, self.lease, self.max_attempts)

    def run_one(self) -> JobRecord | None:
        """Claim a job and run it; the job as it ended (None: nothing to do)."""
        job = self.claim()
        if job is None:
            return None
        self.process(job)
        return self.store.get_job(job.id)

    def process(self, job: JobRecord) -> FitRecord | None:
        """Run the claimed ``job`` to its end: the stored fit, or None (failed, or lost to
        another worker)."""
        release = self.hold_lease(job.id)
        try:
            body = schemas.FitCreate.model_validate(job.request)
            report = functools.partial(self.report_progress, job.id)
            outcome: NewFit | Exception = timed_fit(new_fit, self.store, body, report)
        except Exception as error:
            outcome = error
        finally:
            release()
        return self.settle(job, outcome)

    def report_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Record the stage the fit of ``job_id`` is at (the fit goes on if it cannot be)."""
        try:
            self.store.report_progress(job_id, self.name, progress)
        except Exception:  # the database is away: the next stage, or the end, says more
            logger.warning("job %s: progress %s not recorded", job_id, progress)

    def hold_lease(self, job_id: str) -> Callable[[], None]:
        """Renew the lease on ``job_id`` every third of it, in a thread, until the function
        returned is called."""
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job_id, stop), name=f"lease-{job_id}", daemon=True
        )
        heartbeat.start()

        def release() -> None:
            stop.set()
            heartbeat.join()

        return release

    def settle(self, job: JobRecord, outcome: NewFit | Exception) -> FitRecord | None:
        """End ``job`` (this worker's, running) with its fit, stored, or with the error its fit
        raised; the stored fit, or None."""
        if isinstance(outcome, (InvalidInput, NotFound, Conflict)):
            self.store.fail_job(job.id, self.name, _error_item(outcome))
            logger.info("job %s failed on its input: %s", job.id, outcome)
            return None
        if isinstance(outcome, Exception):
            if database_unavailable(outcome):  # not the job's fault: its lease runs out, and retry
                logger.warning(
                    "job %s: database unavailable, left to be retried: %s", job.id, outcome
                )
                return None
            logger.error("job %s: unexpected error", job.id, exc_info=outcome)  # a bug: say so
            item = {
                "loc": [],
                "msg": f"internal error: {type(outcome).__name__}",
                "type": "internal_error",
            }
            self.store.fail_job(job.id, self.name, item)
            return None
        stored = self.store.complete_job(job.id, self.name, outcome)
        if stored is None:
            logger.warning("job %s was taken over by another worker; its fit is not stored", job.id)
        else:
            took = (datetime.now(UTC) - (job.started_at or job.created_at)).total_seconds()
            logger.info("job %s done in %.1f s: fit %s", job.id, took, stored.id)
        return stored

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                if not self.store.renew_lease(job_id, self.name, self.lease):
                    logger.warning("job %s: lease lost (another worker has it)", job_id)
                    return
            except Exception:  # the database is away: try again at the next beat
                logger.warning("job %s: lease not renewed (database unavailable)", job_id)

    def run_forever(self, poll: float = 1.0, stop: threading.Event | None = None) -> None:
        """Run jobs until ``stop`` is set, polling every ``poll`` seconds while none is queued."""
        stop = stop or threading.Event()
        logger.info("worker %s polling every %.1f s (lease %.0f s)", self.name, poll, self.lease)
        while not stop.is_set():
            try:
                ran = self.run_one()
            except Exception:  # the database is away: wait and poll again
                logger.exception("worker %s: cannot reach the queue", self.name)
                ran = None
            if ran is None:
                stop.wait(poll)


class SyncFit:
    """A fit on the request path (``POST /v1/fits`` without ``Prefer: respond-async``) that
    becomes a job when it outlasts the request's time limit (``LOSSCAST_SYNC_FIT_SECONDS``).

    :meth:`run` fits in the compute pool's fit thread. If the request gives up waiting first,
    :meth:`hand_over` records the fit as a job that is already running, under this process's
    lease (``worker``), and the client is answered 202 with it. The fit goes on where it runs;
    its end then stores it with the job (:meth:`Worker.settle`), exactly as a worker would. If
    this process dies first, the lease runs out and a worker fits the job again. One lock
    decides, once, which of the two ways the fit is stored: by the request (no job) or by the
    job.
    """

    def __init__(self, worker: Worker, body: schemas.FitCreate):
        self.worker = worker
        self.body = body
        self._lock = threading.Lock()
        self._finished = False
        self._started_at: datetime | None = None
        self._job: JobRecord | None = None
        self._release: Callable[[], None] = lambda: None
        self._progress: dict[str, Any] | None = None  # the latest stage, for a hand-over

    def run(self) -> FitRecord | None:
        """Fit and store; the fit, or None if it was handed over (its job stored it). Before a
        hand-over, what the fit raises is raised (the request answers it)."""
        self._started_at = datetime.now(UTC)
        store = self.worker.store
        try:
            outcome: NewFit | Exception = timed_fit(
                new_fit, store, self.body, self._report_progress, task="fit_runs"
            )
        except Exception as error:
            outcome = error
        with self._lock:
            self._finished = True
            job = self._job
            if job is None:
                if isinstance(outcome, Exception):
                    raise outcome
                return store.create_fit(outcome)
        self._release()
        self.worker.settle(job, outcome)
        return None

    def _report_progress(self, progress: dict[str, Any]) -> None:
        with self._lock:
            self._progress = progress
            job = self._job
        if job is not None:
            self.worker.report_progress(job.id, progress)

    def hand_over(self) -> JobRecord | None:
        """The job the fit now ends as (running, under this process's lease), or None when the
        fit has ended meanwhile (the request answers it as usual)."""
        with self._lock:
            if self._finished:
                return None
            worker = self.worker
            request = self.body.model_dump(mode="json")
            self._job = worker.store.start_job(
                "fit",
                request,
                worker.name,
                worker.lease,
                started_at=self._started_at,
                progress=self._progress,
            )
            self._release = worker.hold_lease(self._job.id)
            return self._job


async def run_local_worker(worker: Worker, fit_limiter, poll: float) -> None:
    """The server's own worker (the embedded SQLite default): jobs run in a thread under the
    compute pool's fit limiter, so they take turns with synchronous fits. On shutdown a running
    fit is abandoned; its lease expires and the job runs again at the next start."""
    import anyio

    while True:
        try:
            job = await anyio.to_thread.run_sync(worker.claim)
        except Exception:
            logger.exception("local worker: cannot reach the queue")
            job = None
        if job is None:
            await anyio.sleep(poll)
            continue
        await anyio.to_thread.run_sync(
            worker.process, job, limiter=fit_limiter, abandon_on_cancel=True
        )
