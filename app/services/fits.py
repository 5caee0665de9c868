"""The fits' application service: which runs a fit sees (``with_group``), the fit itself (the
policy of :mod:`app.policy`, stored with a snapshot of what it saw), and a fit's JSON for
``/v1/fits``.

No HTTP and no SQL here: routers and jobs call these (``new_fit`` through the compute pool's
fit limiter, ``app.jobs``), the store keeps what they return. The stored fit is a
:class:`~app.domain.FitReport`'s JSON, read back only through
:meth:`~app.domain.FitReport.from_json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from app import schemas
from app.domain import FitReport
from app.errors import InputError
from app.http_cache import digest
from app.policy import fit_report, law_named
from app.services import continual
from app.services.runs import run_lr
from app.storage import FitRecord, FitRunSnapshot, NewFit, RunRecord, Store
from fitting.fit import Run
from fitting.laws import CONTINUAL_LAWS, is_continual


def fit_run_ids(store: Store, run_ids: Sequence[str], with_group: bool) -> list[str]:
    """``run_ids``, then (``with_group``) the other runs of their groups, newest first, up to
    :data:`~app.schemas.MAX_FIT_RUNS` runs in all."""
    chosen = list(run_ids)
    if not with_group:
        return chosen
    groups = []
    for record in store.get_runs(chosen):
        if record.group is not None and record.group not in groups:
            groups.append(record.group)
    for group in groups:
        for run_id in store.group_run_ids(group, schemas.MAX_FIT_RUNS):
            if len(chosen) >= schemas.MAX_FIT_RUNS:
                return chosen
            if run_id not in chosen:
                chosen.append(run_id)
    return chosen


def check_fit_request(store: Store, body: schemas.FitCreate) -> None:
    """What :func:`new_fit` would refuse at once (a law not registered, a run twice, a run not
    stored), checked before a fit is queued as a job."""
    if body.law != schemas.AUTO:
        law_named(body.law)
    if len(set(body.run_ids)) != len(body.run_ids):
        raise InputError(f"each run may appear once, got {body.run_ids}", "run_ids")
    store.get_runs(body.run_ids)


def new_fit(
    store: Store,
    body: schemas.FitCreate,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> NewFit:
    """Fit ``body.law`` (or choose one, ``auto``) to the runs as they are now, cross-validate it
    for its prediction intervals unless ``body.intervals`` is false: the fit with what it saw,
    not stored yet (the request or the job that asked for it stores it, ``app.jobs``). It runs
    in the caller's thread, which holds the fit limiter in a web process. ``progress`` is told
    each stage of the fit as it starts (:func:`app.policy.fit_report`)."""
    if body.law != schemas.AUTO:
        law_named(body.law)
    if len(set(body.run_ids)) != len(body.run_ids):
        raise InputError(f"each run may appear once, got {body.run_ids}", "run_ids")
    records = store.get_runs(fit_run_ids(store, body.run_ids, body.with_group))
    runs, options = fitted_runs(store, records, body)
    if options:
        records = options.pop("records")
    snapshots = []
    for record in records:
        lr = run_lr(record)
        snapshots.append(
            FitRunSnapshot(
                run_id=record.id,
                name=record.name,
                version=record.version,
                lr_source=record.lr_source,
                total_steps=int(lr.size),
                lr_sha256=digest(np.ascontiguousarray(lr, "<f8").tobytes()),
                points_sha256=digest(
                    np.ascontiguousarray(record.steps, "<i8").tobytes(),
                    np.ascontiguousarray(record.loss, "<f8").tobytes(),
                ),
                steps=record.steps,
                loss=record.loss,
            )
        )
    # With the group's runs added, the fit is for the runs asked for (they come first).
    targets = None
    if not options and len(records) > len(body.run_ids):
        targets = list(range(len(body.run_ids)))
    report = fit_report(runs, body, progress=progress, targets=targets, **options)
    report = replace(report, points_fitted={record.id: record.num_points for record in records})
    if report.selection is not None and options:
        note = (
            "runs that continue runs: auto compares the continual laws "
            f"{[law.name for law in options['laws']]} (the schedule laws read one schedule per "
            "run and one domain, not a history across a branch on two domains), cross-validated "
            "leaving one group (a phase's curves) out at a time"
        )
        earlier = report.selection.get("note")
        selection = {**report.selection, "note": f"{note}; {earlier}" if earlier else note}
        report = replace(report, selection=selection)
    stored = report.to_json()
    return NewFit(
        law=report.law,
        params=stored["params"],
        converged=report.converged,
        result=stored,
        options=body.model_dump(exclude={"run_ids"}),
        runs=snapshots,
    )


def fitted_runs(
    store: Store, records: Sequence[RunRecord], body: schemas.FitCreate
) -> tuple[list[Run], dict[str, Any]]:
    """The fitter's runs of ``records`` and the policy's options for them. A continual law
    (``cpt``, or ``auto`` over runs among which one continues another) fits their histories
    (:mod:`app.services.continual`), with the parents added, its candidate laws, the groups of
    its cross-validation and the fit's domains; the schedule laws fit each run's own schedule,
    and refuse runs that continue runs."""
    continuing = [record.id for record in records if continual.is_continuing(record)]
    if is_continual(body.law) or (body.law == schemas.AUTO and continuing):
        records = continual.with_parents(store, records)
        domains = continual.fit_domains(records)
        runs = continual.history_runs(records, domains)
        return runs, {
            "records": records,
            "laws": list(CONTINUAL_LAWS.values()),
            "groups": continual.groups_of(records),
            "domains": domains.to_json(),
        }
    if continuing:
        raise InputError(
            f"run(s) {continuing} continue other runs: law {body.law!r} reads one schedule per "
            "run; fit them with law 'cpt' (or 'auto')",
            "law",
        )
    return [Run(run_lr(record), record.steps, record.loss, record.id) for record in records], {}


def fit_out(fit: FitRecord) -> dict[str, Any]:
    runs = None
    if fit.runs is not None:
        runs = [
            {
                "run_id": s.run_id,
                "name": s.name,
                "version": s.version,
                "num_points": int(s.steps.size),
                "last_step": int(s.steps[-1]),
                "lr_source": s.lr_source,
                "total_steps": s.total_steps,
                "lr_sha256": s.lr_sha256,
                "points_sha256": s.points_sha256,
            }
            for s in fit.runs
        ]
    report = FitReport.from_json(fit.result)
    return {
        "id": fit.id,
        "law": fit.law,
        "params": fit.params,
        "converged": fit.converged,
        "message": report.message,
        "metrics": report.metrics,
        "warmup": report.warmup,
        "min_step": report.min_step,
        "run_ids": fit.run_ids,
        "runs": runs,
        "selection": report.selection,
        "validation": report.validation,
        "uncertainty": report.uncertainty_summary(),
        "uncertainty_note": report.band_uncertainty()[1],
        "identification": report.identification or None,
        "domains": report.domains,
        "result": report.to_json(),
        "created_at": fit.created_at,
    }
