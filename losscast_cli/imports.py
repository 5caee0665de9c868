"""``losscast import PATH...``: other tools' logs (TensorBoard, W&B, Hugging Face, Lightning,
MLflow, CSV/TSV) as losscast runs, read by the same readers as ``POST /v1/runs/import``
(``app/io``).

With ``--url`` each PATH is uploaded to the service (a directory as a zip archive) and the
stored runs' ids are printed; without it, each curve is written as a losscast CSV
(``step,lr,loss``) into ``--out-dir``, ready for ``losscast fit`` / ``forecast``.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

FORMATS = ("tensorboard", "wandb", "hf", "lightning", "mlflow", "table")


def add_import_command(commands) -> None:
    command = commands.add_parser(
        "import",
        help="import TensorBoard, W&B, Hugging Face, Lightning, MLflow or CSV logs",
        description="Read other tools' logs: one run per curve (the training loss, and the "
        "validation loss as a second run of the same group). The series are guessed from the "
        "names the tools write (loss, train/loss, eval_loss, val_loss, learning_rate, lr-AdamW, "
        "...) unless named. The learning rate comes from --schedule, or from the log.",
    )
    command.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a log file or directory, or an MLflow tracking URI (sqlite:///mlflow.db)",
    )
    command.add_argument("--format", choices=FORMATS, help="default: detected")
    command.add_argument("--loss", help="the training loss's series (default: guessed)")
    command.add_argument("--eval-loss", help="the validation loss's series, or none")
    command.add_argument("--lr", help="the learning rate's series, or none")
    command.add_argument("--step", help="a table's step column (default: guessed)")
    command.add_argument("--columns", help="a table's mapping: step=iter,loss=train_loss,lr=lr")
    command.add_argument("--name", help="the run's name (default: the log's)")
    command.add_argument("--group", help="the runs' group (default: the run's name)")
    command.add_argument("--metadata", help="a JSON object added to every run's metadata")
    command.add_argument("--schedule", help="the declared schedule: JSON or type:key=value,...")
    command.add_argument("--url", help="a running losscast service (default: write CSV files)")
    command.add_argument("--timeout", type=float, default=600.0)
    command.add_argument(
        "--out-dir", type=Path, default=Path("."), help="without --url: where the CSVs go"
    )
    command.add_argument("--json", action="store_true", help="print the result as JSON")
    command.set_defaults(handler=run_import)


def _zipped(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # directories too: an empty one can matter (an MLflow run's params/)
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _form(args) -> dict[str, str]:
    fields = {
        "format": args.format,
        "loss": args.loss,
        "eval_loss": args.eval_loss,
        "lr": args.lr,
        "step": args.step,
        "columns": args.columns,
        "name": args.name,
        "group": args.group,
        "metadata": args.metadata,
        "schedule": args.schedule,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _upload(service, path_text: str, args) -> dict:
    from losscast_cli import main as cli

    path = Path(path_text)
    if path_text.startswith("sqlite:///"):
        path = Path(path_text[len("sqlite:///") :])
    if path.is_dir():
        files = [("files", (f"{path.name}.zip", _zipped(path), "application/zip"))]
    elif path.is_file():
        # with its directory: a checkpoint's trainer_state.json is named after its checkpoint
        label = f"{path.resolve().parent.name}/{path.name}"
        files = [("files", (label, path.read_bytes(), "application/octet-stream"))]
    else:
        raise cli.UsageError(f"{path_text}: no such file or directory")
    try:
        response = service.client.post("/v1/runs/import", files=files, data=_form(args))
    except service.httpx.HTTPError as error:
        raise cli.UsageError(f"cannot reach the service at {service.url}: {error}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise cli.UsageError(f"POST /v1/runs/import: {response.status_code} {cli._detail(detail)}")
    return response.json()


def _locally(path_text: str, args) -> dict:
    from app.io import Selection, import_logs, parse_mapping
    from losscast_cli import main as cli

    mapping = parse_mapping(args.columns)
    spec = cli._schedule_text(args.schedule) if args.schedule else None
    format, curves = import_logs(
        path_text,
        args.format,
        Selection(
            loss=args.loss or mapping.get("loss"),
            eval_loss=args.eval_loss or mapping.get("eval_loss"),
            lr=args.lr or mapping.get("lr"),
        ),
        step=args.step or mapping.get("step"),
        name=args.name,
        group=args.group,
        declared_schedule=spec is not None,
    )
    from app.services.imports import build_runs, run_bodies

    metadata = json.loads(args.metadata) if args.metadata else None
    bodies = run_bodies(curves, schedule=spec, metadata=metadata)
    built = build_runs(bodies, None)  # validated as the service would
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for curve, body in zip(curves, bodies, strict=True):
        if curve.point_lr is not None:
            lr = curve.point_lr
        elif curve.lr_per_step is not None:
            lr = curve.lr_per_step[curve.steps]
        else:
            lr = None
        target = args.out_dir / (body.name.replace("/", "__") + ".csv")
        lines = ["step,lr,loss" if lr is not None else "step,loss"]
        for i, (step, loss) in enumerate(zip(curve.steps, curve.loss, strict=True)):
            cells = [str(int(step)), *([repr(float(lr[i]))] if lr is not None else [])]
            lines.append(",".join([*cells, repr(float(loss))]))
        target.write_text("\n".join(lines) + "\n")
        written.append(
            {
                "name": body.name,
                "group": body.group,
                "num_points": int(curve.steps.size),
                "path": str(target),
                "lr": "logged" if lr is not None else "schedule",
                "warnings": built[len(written)][1],
            }
        )
    notes = list(dict.fromkeys(note for curve in curves for note in curve.notes))
    return {"format": format, "runs": written, "notes": notes}


def run_import(args) -> int:
    from losscast_cli import main as cli

    if args.metadata:
        try:
            meta = json.loads(args.metadata)
        except json.JSONDecodeError as error:
            raise cli.UsageError(f"--metadata is not valid JSON: {error}") from None
        if not isinstance(meta, dict):
            raise cli.UsageError("--metadata must be a JSON object")
    service = cli.Service(args.url, args.timeout) if args.url else None
    results = []
    for path_text in args.paths:
        try:
            if service is not None:
                results.append(_upload(service, path_text, args))
            else:
                results.append(_locally(path_text, args))
        except ValueError as error:  # app.errors.InputError: names the file and what is wrong
            raise cli.UsageError(getattr(error, "message", str(error))) from None
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2, default=str))
        return cli.EXIT_OK
    for result in results:
        for run in result["runs"]:
            where = run.get("id") or run.get("path")
            group = f" group {run['group']}" if run.get("group") else ""
            print(f"{where}  {run['name']}  {run['num_points']} points{group} ({result['format']})")
            for warning in run.get("warnings", []):
                print(f"warning: {run['name']}: {warning}", file=sys.stderr)
        for note in result["notes"]:
            print(f"note: {note}", file=sys.stderr)
    return cli.EXIT_OK
