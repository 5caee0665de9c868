"""Imports of other tools' logs (``POST /v1/runs/import``, ``losscast import``): uploaded files
laid out on disk as the tool wrote them, read by :func:`app.io.import_logs`, and each curve
turned into a run body (:class:`~app.schemas.RunCreate`) validated like any posted run.

A curve's learning rate comes from the declared ``schedule`` when one is given (the log's lr,
where it has one at every point, is then compared with it: the same mismatch warnings as
``POST /v1/runs``), else from the log: the lr at every point (interpolated between points, as
for a posted run's ``points.lr``) or, when the log has it at other steps, the lr series
interpolated over every step (``lr_per_step``). A log without any lr and no schedule is a 422.

No HTTP and no SQL here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from app import budgets, schemas
from app.errors import InputError
from app.io import ImportedCurve, Selection, import_logs
from app.services import runs
from app.settings import Settings
from app.storage import NewRun

ZIP_MAGIC = b"PK\x03\x04"
#: A zip may unpack to at most this many times its own size (a zip bomb is refused).
MAX_UNPACK_RATIO = 200


def _safe_name(name: str, index: int) -> PurePosixPath:
    """The upload's file name, kept with at most one directory above it (readers recognise
    files by name, ``*tfevents*``, ``trainer_state.json``, ``metrics.csv``, and name runs after
    their directory: ``checkpoint-24000/trainer_state.json``), without ``..`` or a root."""
    parts = [
        part
        for part in PurePosixPath(name.replace("\\", "/")).parts
        if part not in ("", ".", "..", "/")
    ][-2:]
    return PurePosixPath(*parts) if parts else PurePosixPath(f"upload-{index}")


def _unzip(archive: Path, into: Path, where: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            total = sum(member.file_size for member in members)
            limit = max(archive.stat().st_size, 1) * MAX_UNPACK_RATIO
            if total > limit:
                raise InputError(
                    f"{archive.name}: unpacks to {total:,} bytes, over {MAX_UNPACK_RATIO} times "
                    "its size",
                    where,
                )
            for member in members:
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith("/") or ".." in parts:
                    raise InputError(
                        f"{archive.name}: member {member.filename!r} points outside the archive",
                        where,
                    )
            zipped.extractall(into)
    except zipfile.BadZipFile as error:
        raise InputError(f"{archive.name}: not a readable zip archive: {error}", where) from error


@contextmanager
def laid_out(files: Sequence[tuple[str, bytes]]) -> Iterator[tuple[Path, Path]]:
    """Uploaded ``(file name, content)`` pairs on disk, in a temporary directory removed
    afterwards: ``(the log's path, the temporary directory)``. One file is its path; several
    files are their directory; a zip archive (a log directory, which ``losscast import`` zips)
    is unpacked into a directory named after it."""
    if not files:
        raise InputError("upload at least one file", "files")
    scratch = Path(tempfile.mkdtemp(prefix="losscast-import-"))
    try:
        paths = []
        for index, (name, content) in enumerate(files):
            where = f"files[{index}]"
            if not content:
                raise InputError(f"{name or 'the file'}: empty", where)
            relative = _safe_name(name, index)
            if content.startswith(ZIP_MAGIC):
                archive = scratch / f".archive-{index}.zip"
                archive.write_bytes(content)
                target = scratch / (relative.stem or f"archive-{index}")
                if target.exists():
                    raise InputError(f"two uploads named {relative.name!r}", where)
                _unzip(archive, target, where)
                archive.unlink()
                paths.append(target)
                continue
            path = scratch / relative
            if path.exists():
                raise InputError(f"two uploads named {str(relative)!r}", where)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            paths.append(path)
        if len(paths) == 1:
            yield paths[0], scratch
        elif not any(p.is_dir() for p in paths):
            yield scratch, scratch
        else:
            raise InputError("upload one zip archive, or plain files, not both", "files")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def import_upload(
    files: Sequence[tuple[str, bytes]],
    format: str | None,
    selection: Selection,
    *,
    step: str | None,
    name: str | None,
    group: str | None,
    declared_schedule: bool,
) -> tuple[str, list[ImportedCurve]]:
    """:func:`app.io.import_logs` of uploaded files, its names and messages saying the uploads'
    names, not the temporary directory's."""
    with laid_out(files) as (path, scratch):
        prefix = f"{scratch}{os.sep}"

        def upload_names(text: str) -> str:
            # the temporary directory's path, then its name as a run name's first part
            # (Lightning's "<dir>/version_0"), then alone (a file at the top: "upload")
            return (
                text.replace(prefix, "")
                .replace(str(scratch), "upload")
                .replace(f"{scratch.name}/", "")
                .replace(scratch.name, "upload")
            )

        try:
            found, curves = import_logs(
                path,
                format,
                selection,
                step=step,
                name=name,
                group=group,
                declared_schedule=declared_schedule,
            )
        except InputError as error:
            raise InputError(upload_names(error.message), error.where) from None
    for curve in curves:
        curve.name, curve.origin = upload_names(curve.name), upload_names(curve.origin)
        curve.group = upload_names(curve.group) if curve.group else None
        curve.notes = [upload_names(note) for note in curve.notes]
        curve.metadata["imported_from"] = curve.origin
    return found, curves


def run_bodies(
    curves: Sequence[ImportedCurve],
    *,
    schedule: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> list[schemas.RunCreate]:
    """The ``POST /v1/runs`` body of each curve (see the module docstring for its lr)."""
    bodies = []
    for curve in curves:
        points = {
            "step": curve.steps.tolist(),
            "loss": curve.loss.tolist(),
            "lr": None if curve.point_lr is None else curve.point_lr.tolist(),
        }
        body: dict[str, Any] = {
            "name": curve.name[:256],
            "group": curve.group[:256] if curve.group else None,
            "metadata": {**curve.metadata, **(metadata or {})},
            "points": points,
        }
        if schedule is not None:
            body["schedule"] = schedule
        elif curve.lr_per_step is not None:
            body["lr_per_step"] = curve.lr_per_step.tolist()
        elif curve.point_lr is None:
            raise InputError(
                f"{curve.origin}: no learning rate logged beside {curve.metric!r} (name its "
                "series with lr=..., or declare the run's schedule)",
                "schedule",
            )
        try:
            bodies.append(schemas.RunCreate.model_validate(body))
        except ValidationError as error:
            raise InputError(f"{curve.origin}: {curve.metric}: {error}", "file") from error
    return bodies


def build_runs(
    bodies: Sequence[schemas.RunCreate], settings: Settings | None
) -> list[tuple[NewRun, list[str]]]:
    """Every body validated (and held to the run budgets) before any is stored."""
    built = []
    for body in bodies:
        budgets.check_new_run(settings, body)
        try:
            built.append(runs.build_run(body))
        except InputError as error:
            raise InputError(f"{body.metadata.get('imported_from')}: {error}", "file") from error
    return built
