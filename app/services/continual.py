"""Runs that continue runs, for the continual laws (:data:`fitting.laws.CONTINUAL_LAWS`, the
``cpt`` law): the histories a fit, a prediction and a plan are made of, from the stored runs'
``continues``, ``domain`` and ``replay``.

A continual fit sees base runs (which continue none) and continuations, one curve of one domain
each. The **old** domain is the domain of the continuations' parents (one for the whole fit),
the **new** one the other domain among the fit's runs (exactly one). Each stored run becomes one
history of :mod:`fitting.continual`:

- a base run: its own rates, its 0-based step ``s`` the base's update ``s + 1`` (as today);
- a continuation of parent ``P`` at ``at_step``: ``P``'s rates ``lr[0 .. at_step]`` (the
  checkpoint is ``P``'s after step ``at_step``) then its own, its step ``s`` after ``s`` updates
  of its phase. Its step 0, the checkpoint, is left out of the fit: the parent's curves hold it
  (a branch's first row repeats the base's last losses).

One shift per fit: a continuation's parent must be a base run (the law models one branch from a
pretrained run, not a continuation of a continuation; such runs are stored, not fitted).

No HTTP and no SQL here beyond reading the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app import schemas
from app.errors import InputError, NotFound
from app.services.runs import run_lr
from app.storage import RunRecord, Store
from fitting.continual import continual_run, continual_schedule, history_index
from fitting.errors import InvalidInput
from fitting.fit import Run
from fitting.predict import curve_steps

OLD, NEW = "old", "new"


def is_continuing(record) -> bool:
    return record.continues_run_id is not None


@dataclass(frozen=True)
class Domains:
    """The runs' domain names behind the law's old and new domain."""

    old: str
    new: str

    def role(self, domain: str | None, where: str) -> str:
        """``"old"`` or ``"new"`` for a run's ``domain``; an InputError at ``where`` else."""
        if domain == self.old:
            return OLD
        if domain == self.new:
            return NEW
        raise InputError(
            f"domain {domain!r} is neither the fit's old domain {self.old!r} (the parents') nor "
            f"its new one {self.new!r}",
            where,
        )

    def to_json(self) -> dict[str, str]:
        return {OLD: self.old, NEW: self.new}

    @classmethod
    def from_json(cls, data) -> Domains | None:
        return None if not data else cls(data[OLD], data[NEW])


def with_parents(store: Store, records: Sequence[RunRecord]) -> list[RunRecord]:
    """``records``, then the parents of their continuations that are not among them (a
    continual fit needs the base's curves; the parent's own is one of them)."""
    out = list(records)
    known = {record.id for record in out}
    for record in records:
        if is_continuing(record) and record.continues_run_id not in known:
            try:
                out.append(store.get_run(record.continues_run_id))
            except NotFound:
                raise InputError(
                    f"run {record.id!r} continues run {record.continues_run_id!r}, which is not "
                    "stored any more",
                    "run_ids",
                ) from None
            known.add(record.continues_run_id)
    return out


def fit_domains(records: Sequence[RunRecord]) -> Domains:
    """The old and new domain of a continual fit of ``records`` (parents among them)."""
    by_id = {record.id: record for record in records}
    undeclared = [record.id for record in records if record.domain is None]
    if undeclared:
        raise InputError(
            f"a continual law (cpt) needs each run's domain; run(s) {undeclared} have none",
            "run_ids",
        )
    continuing = [record for record in records if is_continuing(record)]
    if not continuing:
        raise InputError(
            "law cpt fits runs that continue runs (a run with continues) with their parents; "
            "none of these runs continues another",
            "run_ids",
        )
    chained = [r.id for r in continuing if is_continuing(by_id[r.continues_run_id])]
    if chained:
        raise InputError(
            f"run(s) {chained} continue a run that itself continues another: the cpt law models "
            "one branch from a base run",
            "run_ids",
        )
    old = {by_id[record.continues_run_id].domain for record in continuing}
    if len(old) != 1:
        raise InputError(
            f"the continued runs are on several domains {sorted(old)}: a cpt fit has one old "
            "domain (the parents')",
            "run_ids",
        )
    (old_name,) = old
    others = sorted({record.domain for record in records} - old)
    if len(others) != 1:
        raise InputError(
            f"a cpt fit needs curves on exactly one domain besides the parents' {old_name!r}, "
            f"got {others}",
            "run_ids",
        )
    return Domains(old_name, others[0])


def base_rates(parent: RunRecord, at_step: int) -> np.ndarray:
    """The rates of the history up to the checkpoint: the parent's ``lr[0 .. at_step]``."""
    return run_lr(parent)[: int(at_step) + 1]


def history_runs(records: Sequence[RunRecord], domains: Domains) -> list[Run]:
    """One :class:`~fitting.fit.Run` history per record (see the module docstring)."""
    by_id = {record.id: record for record in records}
    runs = []
    for record in records:
        role = domains.role(record.domain, "run_ids")
        try:
            if not is_continuing(record):
                runs.append(
                    continual_run(
                        run_lr(record),
                        (),
                        record.steps + 1,
                        record.loss,
                        domain=role,
                        name=record.id,
                    )  # fmt: skip
                )
                continue
            keep = record.steps > 0
            if not keep.any():
                raise InputError(
                    f"run {record.id!r} has no point after its checkpoint (step 0)", "run_ids"
                )
            parent = by_id[record.continues_run_id]
            runs.append(
                continual_run(
                    base_rates(parent, record.continues_at_step),
                    run_lr(record),
                    record.steps[keep],
                    record.loss[keep],
                    domain=role,
                    replay=record.replay,
                    name=record.id,
                )
            )
        except InputError:
            raise
        except InvalidInput as error:
            raise InputError(str(error), "run_ids") from error
    return runs


def groups_of(records: Sequence[RunRecord]) -> list[str | None]:
    """The cross-validation's group of each run: a continuation's ``group`` (a phase's curves
    on several domains share one), else the run itself; None for a base run, which is never
    held out (the issue's protocol: fit the base and the other branches, predict a branch). A
    fold without the base's curves has nothing to tell its hidden curve from the shift: on
    tinycpt it predicted the base's Python curve at PredE 8,097 and made the bands [0.5, 8.3]
    for a final loss of 2.04."""
    return [(record.group or record.id) if is_continuing(record) else None for record in records]


@dataclass(frozen=True)
class Branch:
    """A candidate continuation (or base-phase curve) as the law reads it: the history array,
    the base's length and the curve's own rates."""

    history: np.ndarray
    base_length: int
    lr: np.ndarray
    continuing: bool
    checkpoint_lr: float  # the parent's rate at the branch (the curve's rate at its step 0)

    def indices(self, steps: np.ndarray) -> np.ndarray:
        """History indices of the curve's own steps (the law's ``steps``)."""
        if self.continuing:
            return 2 * history_index(self.base_length, steps, continuation=True) + 1
        return 2 * np.asarray(steps, dtype=np.int64) + 1

    def rates_at(self, steps: np.ndarray) -> np.ndarray:
        """The rate of each step: a base curve's ``lr[s]``; a continuation's update ``s`` (its
        ``lr[s - 1]``), and at the checkpoint the parent's rate at the branch."""
        if not self.continuing:
            return self.lr[steps]
        return np.r_[self.checkpoint_lr, self.lr][steps]

    def grid(self, num_points: int) -> np.ndarray:
        """A predicted curve's steps: a continuation's ``num_points`` evenly from its checkpoint
        (0, where the re-warm's rise starts) to ``T``; a base curve's as for a schedule."""
        if not self.continuing:
            return curve_steps(self.lr, num_points)
        return np.unique(np.round(np.linspace(0, self.last_step, num_points)).astype(np.int64))

    @property
    def last_step(self) -> int:
        """The curve's last step: ``T`` for a continuation of ``T`` updates, else ``T - 1``."""
        return int(self.lr.size) if self.continuing else int(self.lr.size) - 1


def branch(
    store: Store,
    domains: Domains,
    lr: np.ndarray,
    domain: str | None,
    continues,
    replay: float,
    where: str,
) -> Branch:
    """The history of a candidate curve on ``domain`` of the rates ``lr``: continuing stored run
    ``continues.run_id`` at ``continues.at_step`` with ``replay``, or (no ``continues``) a base
    run's curve. ``where`` locates the candidate in the request for errors."""
    prefix = f"{where}." if where else ""
    if domain is None:
        raise InputError(
            f"a cpt prediction needs the domain of the curve: {domains.old!r} (old) or "
            f"{domains.new!r} (new)",
            f"{prefix}domain",
        )
    role = domains.role(domain, f"{prefix}domain")
    try:
        if continues is None:
            if replay:
                raise InputError("replay needs continues", f"{prefix}replay")
            history = continual_schedule(lr, (), domain=role)
            return Branch(history, int(lr.size), lr, False, float(lr[-1]))
        try:
            parent = store.get_run(continues.run_id)
        except NotFound:
            raise InputError(
                f"no run {continues.run_id!r} to continue", f"{prefix}continues.run_id"
            ) from None
        if is_continuing(parent):
            raise InputError(
                f"run {parent.id!r} continues another run: the cpt law continues a base run",
                f"{prefix}continues.run_id",
            )
        if parent.domain != domains.old:
            raise InputError(
                f"run {parent.id!r} is on domain {parent.domain!r}, not the fit's old domain "
                f"{domains.old!r}",
                f"{prefix}continues.run_id",
            )
        if continues.at_step >= parent.total_steps:
            raise InputError(
                f"at_step must lie within the parent's schedule [0, {parent.total_steps - 1}], "
                f"got at_step={continues.at_step}",
                f"{prefix}continues.at_step",
            )
        base = base_rates(parent, continues.at_step)
        history = continual_schedule(base, lr, domain=role, replay=replay)
        return Branch(history, int(base.size), lr, True, float(base[-1]))
    except InputError:
        raise
    except InvalidInput as error:
        raise InputError(str(error), where or None) from error


def run_branch(store: Store, domains: Domains, record: RunRecord) -> Branch:
    """The history of stored run ``record`` on its own domain, as :func:`branch` makes a
    candidate's: its own rates, continuing its parent at its ``at_step`` with its ``replay``, or
    (continuing none) a base run's curve. What a forecast of the run predicts; a run the fit's
    domains or its one shift cannot hold is an InputError at ``fit_id``."""
    continues = None
    if is_continuing(record):
        continues = schemas.Continues(
            run_id=record.continues_run_id, at_step=record.continues_at_step
        )
    try:
        return branch(store, domains, run_lr(record), record.domain, continues, record.replay, "")
    except InputError as error:
        raise InputError(
            f"run {record.id!r} is not a curve this cpt fit predicts: {error.message}", "fit_id"
        ) from None
