"""A client for training loops: log a run's points to a losscast service without ever slowing
or breaking the loop, and read its forecast.

::

    from losscast.client import Client

    client = Client("http://127.0.0.1:8000")  # api_key=... when the service asks for one
    run = client.run("gpt-400M-cosine", group="400M", schedule={
        "type": "cosine", "peak_lr": 3e-4, "total_steps": 24000, "num_warmup_steps": 2160})
    for step in range(24000):
        loss = train_step()
        run.log(step, loss, lr=scheduler.get_last_lr()[0])
    run.close()  # flushes; so does leaving `with client.run(...) as run:`, or exiting
    client.fit([run.id], law="auto")
    print(run.forecast()["curve"]["loss"][-1])

What :meth:`Run.log` promises: it never blocks on the network and never raises. It puts the
point on a bounded in-memory queue (``queue_size`` points; a full queue drops the point and
counts it in :attr:`Run.stats`) and returns. A background thread takes what is queued every
``flush_interval`` seconds (or as soon as ``batch_size`` points wait), creates the run with its
first points (``POST /v1/runs``), and appends the rest (``POST /v1/runs/{id}/points``) in
batches. A batch that fails because the service cannot be reached, is restarting, or answers
5xx/408/429 is sent again with exponential backoff (0.05 s doubling to 2 s, jittered), for as
long as it takes, and the points logged meanwhile wait in the queue behind it. Re-sending is
safe: the service skips a step already stored with the same loss, so a batch whose answer was
lost is not stored twice; a run whose creation answer was lost is found again by a session id
kept in its metadata (``losscast_client_session``) instead of being created twice. A batch the
service refuses (409: a step already logged with another loss; 422: a point the service cannot
store, e.g. past the declared schedule's end) is split in halves and sent again until the
refused points are alone; those are dropped and counted as ``rejected``, with the service's
message in ``last_error`` (a declared schedule the service refuses is dropped instead, and
the logged lr used). ``close()`` (or leaving a ``with`` block, or the interpreter's exit)
sends what is still queued, waiting at most ``close_timeout`` seconds; what could not be sent
by then is counted as ``dropped``.

Reopening: ``client.run(name)`` appends to the newest run of that name when there is one
(``reopen=True``, the default), so a job restarted from a checkpoint continues its run; the
steps it logs again up to the stored last step are skipped (``skipped``), not sent as conflicts.

The learning rate: a run created with ``schedule`` (or ``lr_per_step``) takes its per-step rate
from it; the ``lr`` given to ``log`` is then compared with it when the run is created (the
service's warnings). Without either, every point needs its ``lr`` (the service interpolates
between them); a point logged without one is skipped. Give ``lr`` on every call or on none.

Other metrics: ``run.log(step, loss, eval_loss=2.31)`` sends ``eval_loss`` to a second run,
``<name>/eval_loss``, of the same group (set ``group`` to fit them together), with the same
schedule (or the last ``lr`` logged). ``loss=None`` logs only the others.

Distributed training: only one process should log. A run is disabled (``log`` does nothing) in
every process whose rank is not 0: the ``RANK`` environment variable (torchrun, accelerate,
DeepSpeed, Lightning set it), else ``LOCAL_RANK``, else ``torch.distributed.get_rank()`` when
torch is imported and its process group initialised. ``enabled=True``/``False`` overrides this.

This module imports only httpx: neither the service (``app``) nor JAX.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger("losscast.client")

#: Metadata key of the client session that created a run (found again after a lost answer).
SESSION_KEY = "losscast_client_session"
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
#: Backoff between retries of a failed batch: first wait, largest wait (seconds).
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0


class LosscastError(RuntimeError):
    """A read call (forecast, prediction, fit) that the service refused or could not answer."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def process_rank() -> int:
    """This process's rank under a distributed launcher (0 when there is none)."""
    for variable in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(variable)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    torch = sys.modules.get("torch")
    distributed = getattr(torch, "distributed", None) if torch is not None else None
    try:
        if distributed is not None and distributed.is_available() and distributed.is_initialized():
            return int(distributed.get_rank())
    except Exception:  # noqa: BLE001 -- a half-initialised backend: treat as single process
        return 0
    return 0


def _message(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"{response.status_code} {response.text[:500]}"
    if isinstance(detail, list):
        parts = []
        for item in detail:
            where = ".".join(str(p) for p in item.get("loc", [])[1:])
            parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return f"{response.status_code} " + "; ".join(parts)
    return f"{response.status_code} {detail}"


def _refuses(response: httpx.Response, field_name: str) -> bool:
    """Whether an error answer names ``body.<field_name>`` as what is wrong."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return False
    return isinstance(detail, list) and any(
        list(item.get("loc", []))[:2] == ["body", field_name] for item in detail
    )


class Client:
    """The losscast service at ``url`` (``http://host:8000``), with an API key if it needs one
    (sent as ``Authorization: Bearer <key>``; default ``$LOSSCAST_API_KEY``). ``timeout`` bounds
    each of a run's appends (a slow one is retried), ``read_timeout`` the read calls (a fit that
    compiles its kernels takes minutes)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        read_timeout: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("LOSSCAST_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._options = {"base_url": self.url, "headers": headers, "timeout": timeout}
        self._transport = transport
        self._http = httpx.Client(transport=transport, **{**self._options, "timeout": read_timeout})

    def http(self) -> httpx.Client:
        """A new HTTP connection pool to the service (each run's sender has its own)."""
        return httpx.Client(transport=self._transport, **self._options)

    def run(
        self,
        name: str,
        *,
        schedule: Mapping[str, Any] | None = None,
        lr_per_step: Sequence[float] | None = None,
        group: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        reopen: bool = True,
        enabled: bool | None = None,
        queue_size: int = 200_000,
        batch_size: int = 1000,
        max_batch: int = 5000,
        flush_interval: float = 0.5,
        close_timeout: float = 30.0,
    ) -> Run:
        """A run to log to, created on the service with its first points (or, with ``reopen``,
        the newest stored run of this ``name``). Returns at once: nothing is sent here."""
        return Run(
            self,
            name,
            schedule=dict(schedule) if schedule is not None else None,
            lr_per_step=list(lr_per_step) if lr_per_step is not None else None,
            group=group,
            metadata=dict(metadata or {}),
            reopen=reopen,
            enabled=(process_rank() == 0) if enabled is None else enabled,
            queue_size=queue_size,
            batch_size=batch_size,
            max_batch=max_batch,
            flush_interval=flush_interval,
            close_timeout=close_timeout,
        )

    # -- read calls: they wait for the answer and raise LosscastError when there is none ------

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise LosscastError(f"{method} {path}: cannot reach {self.url}: {error}") from error
        if response.status_code >= 400:
            raise LosscastError(f"{method} {path}: {_message(response)}", response.status_code)
        return response.json() if response.content else None

    def forecast(
        self, run_id: str, *, level: float | None = 0.9, fit_id: str | None = None, num_points=300
    ) -> dict[str, Any]:
        """``GET /v1/runs/{id}/forecast``: the run's points, its latest fit's prediction for its
        own schedule with the ``level`` band, and how current that fit is."""
        params = {"level": "none" if level is None else str(level), "num_points": num_points}
        if fit_id:
            params["fit_id"] = fit_id
        return self.request("GET", f"/v1/runs/{run_id}/forecast", params=params)

    def fit(
        self, run_ids: Sequence[str], *, law: str = "auto", with_group: bool = False, **options
    ):
        """``POST /v1/fits`` of these runs (``with_group``: with their groups' other runs). A fit
        that outlasts the service's time limit is answered 202 with a job: this polls it and
        returns the fit once the job is done (:class:`LosscastError` if it failed)."""
        body = {"run_ids": list(run_ids), "law": law, "with_group": with_group, **options}
        answer = self.request("POST", "/v1/fits", json=body)
        while answer.get("kind") == "fit" and answer.get("status") in ("queued", "running"):
            time.sleep(1.0)
            answer = self.request("GET", f"/v1/jobs/{answer['id']}")
            if answer["status"] == "failed":
                error = answer.get("error") or {}
                raise LosscastError(f"fit job {answer['id']} failed: {error.get('msg')}")
            if answer["status"] == "done":
                return self.request("GET", answer["result"])
        return answer

    def latest_fit(self, run_id: str) -> dict[str, Any] | None:
        page = self.request("GET", "/v1/fits", params={"run_id": run_id, "limit": 1})
        return page["items"][0] if page["items"] else None

    def predict(
        self,
        schedule: Mapping[str, Any],
        *,
        run_id: str | None = None,
        fit_id: str | None = None,
        num_points: int = 300,
        level: float | None = 0.9,
    ) -> dict[str, Any]:
        """``POST /v1/predictions``: the loss curve of a candidate ``schedule`` under a fit
        (``fit_id``, or the latest fit of ``run_id``), with its band."""
        if fit_id is None:
            if run_id is None:
                raise LosscastError("predict needs fit_id or run_id")
            fit = self.latest_fit(run_id)
            if fit is None:
                raise LosscastError(f"run {run_id!r} has no fit yet (Client.fit first)", 404)
            fit_id = fit["id"]
        body = {"fit_id": fit_id, "schedule": dict(schedule), "num_points": num_points}
        body["level"] = level
        return self.request("POST", "/v1/predictions", json=body)

    def close(self) -> None:
        self._http.close()


@dataclass
class _Series:
    """One stored run being fed: the main loss (``key`` None) or another metric."""

    key: str | None
    name: str
    run_id: str | None = None
    last_step: int = -1
    has_lr: bool | None = None
    maybe_created: bool = False
    #: Stored points up to last_step were sent by this session (its creation's lost answer).
    ours: bool = False
    #: The most points of the next request: halved after a refused batch until the refused
    #: point is alone (one bad point does not cost its batch), doubled back after a success.
    limit: int = 1 << 30
    pending: list[tuple[int, float, float | None]] = field(default_factory=list)


class _Transient(Exception):
    pass


class _Fatal(Exception):
    pass


class Run:
    """A run being logged to (see the module docstring); made by :meth:`Client.run`."""

    def __init__(self, client: Client, name: str, *, enabled: bool, **options):
        self.client = client
        self.name = name
        self.enabled = enabled
        self._schedule = options["schedule"]
        self._lr_per_step = options["lr_per_step"]
        self._group = options["group"]
        self._session = uuid.uuid4().hex
        self._metadata = {**options["metadata"], SESSION_KEY: self._session}
        self._reopen = options["reopen"]
        self._queue_size = options["queue_size"]
        self._batch_size = options["batch_size"]
        self._max_batch = options["max_batch"]
        self._flush_interval = options["flush_interval"]
        self._close_timeout = options["close_timeout"]
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._closing = False
        self._deadline = math.inf
        self._series: dict[str | None, _Series] = {}
        self._last_lr: float | None = None
        self.queued = 0  # points put on the queue by log()
        self.sent = 0  # points the service acknowledged (stored, or already stored)
        self.rejected = 0  # points of batches the service refused (409, 422)
        self.skipped = 0  # points not sent: NaN loss, no lr, step already stored (reopened)
        self._dropped_full = 0  # the queue was full (counted by log(), the loop's thread)
        self._dropped_unsent = 0  # still unsent when sending stopped (the sender's thread)
        self.retries = 0
        self.last_error: str | None = None
        self._settled = 0
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._send_loop, name=f"losscast:{name}")
            self._thread.daemon = True
            self._thread.start()
            _open_runs.add(self)

    # -- the training loop's side --------------------------------------------------------------

    def log(self, step: int, loss: float | None, lr: float | None = None, **extra: float) -> None:
        """Queue the loss (and other metrics) logged at ``step``; never blocks, never raises."""
        if not self.enabled or self._closing:
            return
        try:
            step = int(step)
            if lr is not None:
                lr = float(lr)
            queue = self._queue
            if loss is not None:
                if len(queue) >= self._queue_size:
                    self._dropped_full += 1
                else:
                    queue.append((None, step, float(loss), lr))
                    self.queued += 1
            for key, value in extra.items():
                if value is None:
                    continue
                if len(queue) >= self._queue_size:
                    self._dropped_full += 1
                    continue
                queue.append((key, step, float(value), lr))
                self.queued += 1
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception as error:  # noqa: BLE001 -- the training loop must never see it
            self.skipped += 1
            self.last_error = f"log({step!r}, {loss!r}): {error}"

    @property
    def id(self) -> str | None:
        """The stored run's id, once it is created (or found)."""
        series = self._series.get(None)
        return series.run_id if series else None

    @property
    def ids(self) -> dict[str, str | None]:
        """Every stored run this run feeds: its name -> id (the main run and other metrics')."""
        return {series.name: series.run_id for series in list(self._series.values())}

    @property
    def dropped(self) -> int:
        """Points lost: logged while the queue was full, or still unsent when sending stopped."""
        return self._dropped_full + self._dropped_unsent

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "sent": self.sent,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "waiting": len(self._queue) + sum(len(s.pending) for s in self._series.values()),
            "retries": self.retries,
            "last_error": self.last_error,
        }

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point queued so far is settled (sent, refused or skipped), at most
        ``timeout`` seconds; True if it is."""
        if self._thread is None:
            return True
        target = self.queued
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        self._wake.set()
        while self._settled < target and self._thread.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
            self._wake.set()
        return self._settled >= target

    def close(self, timeout: float | None = None) -> dict[str, Any]:
        """Send what is queued (at most ``timeout``, default ``close_timeout``, seconds), stop
        the sender, and return :attr:`stats`."""
        if self._thread is not None and not self._closing:
            wait = self._close_timeout if timeout is None else timeout
            self._deadline = time.monotonic() + wait
            self._closing = True
            self._wake.set()
            self._thread.join(wait + 5)
            _open_runs.discard(self)
        return self.stats

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- read calls of this run -------------------------------------------------------------------

    def forecast(self, **options) -> dict[str, Any]:
        """:meth:`Client.forecast` of this run (after :meth:`flush`, so it has the points)."""
        if self.id is None:
            raise LosscastError(f"run {self.name!r} is not stored yet (flush first)")
        return self.client.forecast(self.id, **options)

    def predict(self, schedule: Mapping[str, Any], **options) -> dict[str, Any]:
        """:meth:`Client.predict` of a candidate schedule under this run's latest fit."""
        if self.id is None and "fit_id" not in options:
            raise LosscastError(f"run {self.name!r} is not stored yet (flush first)")
        return self.client.predict(schedule, run_id=self.id, **options)

    # -- the sender thread ----------------------------------------------------------------------

    def _send_loop(self) -> None:
        http = self.client.http()
        backoff = 0.0
        try:
            while True:
                if backoff:
                    time.sleep(backoff)
                elif not (self._closing or len(self._queue) >= self._batch_size):
                    self._wake.wait(self._flush_interval)
                    self._wake.clear()
                self._take()
                try:
                    self._send_pending(http)
                    backoff = 0.0
                except _Transient:
                    self.retries += 1
                    backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, backoff * 2))
                    backoff *= random.uniform(0.5, 1.0)
                except _Fatal:
                    self._abandon()
                    return
                if self._closing:
                    if not self._queue and not any(s.pending for s in self._series.values()):
                        return
                    if time.monotonic() > self._deadline:
                        self._abandon()
                        return
        except Exception as error:  # noqa: BLE001 -- a bug here must not end the training job
            self.last_error = f"sender stopped: {type(error).__name__}: {error}"
            logger.exception("losscast client: the sender of run %r stopped", self.name)
            self._abandon()
        finally:
            http.close()

    def _abandon(self) -> None:
        lost = len(self._queue) + sum(len(s.pending) for s in self._series.values())
        self._queue.clear()
        for series in self._series.values():
            series.pending.clear()
        self._dropped_unsent += lost
        self._settled += lost
        self._closing = True
        if lost:
            logger.warning(
                "losscast client: %d points of run %r were not sent (%s)",
                lost,
                self.name,
                self.last_error,
            )

    def _take(self) -> None:
        """Move what is queued into each series' pending points (the sender's own lists), up
        to two batches: during an outage the rest waits in the queue, whose bound holds."""
        queue = self._queue
        room = 2 * self._max_batch - sum(len(s.pending) for s in self._series.values())
        for _ in range(min(len(queue), max(room, 0))):
            key, step, value, lr = queue.popleft()
            if key is None and lr is not None:
                self._last_lr = lr
            series = self._series.get(key)
            if series is None:
                name = self.name if key is None else f"{self.name}/{key}"
                series = self._series[key] = _Series(key, name)
            if not math.isfinite(value) or value <= 0:
                self.skipped += 1
                self._settled += 1
                continue
            series.pending.append((step, value, lr if lr is not None else self._last_lr))

    def _send_pending(self, http: httpx.Client) -> None:
        for series in list(self._series.values()):
            while series.pending:
                self._send_batch(http, series)

    def _declared(self) -> bool:
        return self._schedule is not None or self._lr_per_step is not None

    def _send_batch(self, http: httpx.Client, series: _Series) -> None:
        if series.run_id is None and (self._reopen or series.maybe_created):
            self._find(http, series)
        # Points the service already has: this session's, whose answer was lost (sent), or a
        # reopened run's, logged again by a job resumed from a checkpoint (skipped).
        before = len(series.pending)
        series.pending = [p for p in series.pending if p[0] > series.last_step]
        if series.ours:
            self.sent += before - len(series.pending)
            self._settled += before - len(series.pending)
            before = len(series.pending)
        if series.has_lr is None:
            first_lr = series.pending[0][2] if series.pending else None
            series.has_lr = first_lr is not None
        if series.has_lr:
            series.pending = [p for p in series.pending if p[2] is not None]
        elif not self._declared():
            self.last_error = (
                f"run {series.name!r}: no schedule declared and no lr logged: give "
                "Client.run(schedule=...) or log(..., lr=...)"
            )
            series.pending.clear()
        skipped = before - len(series.pending)
        self.skipped += skipped
        self._settled += skipped
        if not series.pending:
            return
        batch = series.pending[: min(self._max_batch, series.limit)]
        points: dict[str, Any] = {"step": [p[0] for p in batch], "loss": [p[1] for p in batch]}
        if series.has_lr:
            points["lr"] = [p[2] for p in batch]
        if series.run_id is None:
            body: dict[str, Any] = {"name": series.name, "metadata": self._metadata}
            if self._group:
                body["group"] = self._group
            if self._schedule is not None:
                body["schedule"] = self._schedule
            elif self._lr_per_step is not None:
                body["lr_per_step"] = self._lr_per_step
            if series.key is not None:
                body["metadata"] = {**self._metadata, "metric": series.key, "of_run": self.name}
            body["points"] = points
            response = self._post(http, "/v1/runs", body, series)
        else:
            response = self._post(http, f"/v1/runs/{series.run_id}/points", points, series)
        if response is None and len(batch) > 1:  # refused: find the point it refuses
            series.limit = len(batch) // 2
            return
        del series.pending[: len(batch)]
        self._settled += len(batch)
        if response is None:  # this point is refused: counted, message kept
            self.rejected += 1
            logger.warning(
                "losscast client: run %r: step %d refused: %s",
                series.name,
                batch[0][0],
                self.last_error,
            )
            return
        series.limit = min(2 * series.limit, 1 << 30)
        out = response.json()
        series.run_id = out["id"]
        series.last_step = int(out["last_step"])
        self.sent += len(batch)
        for warning in out.get("warnings", []):
            logger.warning("losscast: run %r: %s", series.name, warning)

    def _post(self, http: httpx.Client, path: str, body, series: _Series) -> httpx.Response | None:
        """The service's answer; ``None`` for a refused batch; raises :class:`_Transient` for
        one to send again, :class:`_Fatal` when nothing more can be sent."""
        try:
            response = http.post(path, json=body)
        except httpx.TransportError as error:
            # The request may have reached the service: a run may have been created.
            series.maybe_created = series.run_id is None
            self.last_error = f"POST {path}: {type(error).__name__}: {error}"
            raise _Transient from error
        status = response.status_code
        if status < 400:
            return response
        self.last_error = f"POST {path}: {_message(response)}"
        if status in TRANSIENT_STATUS:
            series.maybe_created = series.maybe_created or series.run_id is None
            raise _Transient
        if status == 422 and series.run_id is None and self._schedule is not None:
            if _refuses(response, "schedule"):
                # A declared schedule the service cannot build: the logged lr is the rate.
                logger.warning("losscast client: run %r: %s; the schedule is dropped", self.name,
                               self.last_error)  # fmt: skip
                self._schedule = None
                raise _Transient
        if status in (401, 403) or (status == 404 and series.run_id is not None):
            logger.error("losscast client: run %r: %s; sending stops", self.name, self.last_error)
            raise _Fatal
        return None

    def _find(self, http: httpx.Client, series: _Series) -> None:
        """Adopt the stored run: the one this session created (after a lost answer), or with
        ``reopen`` the newest one of this name."""
        params: dict[str, Any] = {"name": series.name, "limit": 1}
        if not self._reopen:
            params["metadata"] = f"{SESSION_KEY}={self._session}"
        try:
            response = http.get("/v1/runs", params=params)
        except httpx.TransportError as error:
            self.last_error = f"GET /v1/runs: {type(error).__name__}: {error}"
            raise _Transient from error
        if response.status_code in TRANSIENT_STATUS:
            self.last_error = f"GET /v1/runs: {_message(response)}"
            raise _Transient
        if response.status_code in (401, 403):
            self.last_error = f"GET /v1/runs: {_message(response)}"
            raise _Fatal
        items = response.json().get("items", []) if response.status_code == 200 else []
        series.maybe_created = False
        if not items:
            return
        found = items[0]
        series.run_id, series.last_step = found["id"], int(found["last_step"])
        series.ours = found.get("metadata", {}).get(SESSION_KEY) == self._session
        if series.has_lr is None:
            detail = http.get(f"/v1/runs/{found['id']}")
            if detail.status_code == 200:
                series.has_lr = detail.json()["points"].get("lr") is not None


#: Runs still open, closed (flushed) at interpreter exit; weak, so a dropped run is not kept.
_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _close_open_runs() -> None:
    for run in list(_open_runs):
        try:
            run.close()
        except Exception:  # noqa: BLE001 -- exiting anyway
            pass
