"""``losscast``: serve, fit, predict, plan.

Exit status: 0 success; 1 ``--max-final-loss`` was exceeded (the planned run's predicted final
loss is above the limit); 2 an error -- bad arguments or input, a failed request, an unreachable
service -- reported in one line on stderr, never as a traceback (``LOSSCAST_DEBUG=1`` shows it).

Heavy modules (JAX, the app) are imported only by the command that needs them, so ``--help``
and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from losscast_cli.admin import add_admin_commands
from losscast_cli.imports import add_import_command
from losscast_cli.plot import add_plot_command

EXIT_OK = 0
EXIT_ABOVE_LIMIT = 1
EXIT_ERROR = 2

# Defaults left to the service (and fitting/), not restated here: omitted options are not sent.
NUM_POINTS_HELP = "points of each predicted curve (default: the service's)"
LEVEL_HELP = "band level in (0, 1), or 'none' for no band (default: the service's)"

PLAN_KINDS = {
    "compare": "compare",
    "cooldown": "cooldown",
    "steps": "steps_to_target",
    "budget": "budget",
    "optimise": "optimise",
    "cpt": "cpt",
}

EPILOG = """examples (the curves shipped in tests/data/mpl):
  losscast fit tests/data/mpl/400M/{cosine_24000,constant_24000,wsdcon_9}.csv \\
      --schedules tests/data/mpl/schedules.json --out fit.json
  losscast plan steps --fit fit.json --target-loss 2.6156 \\
      --schedule '{"type": "cosine", "peak_lr": 3e-4, "num_warmup_steps": 2160, "min_lr": 3e-5}'
  losscast plan budget --fit fit.json --total-steps 24000 --max-final-loss 2.75 \\
      --schedule cosine:peak_lr=3e-4,num_warmup_steps=2160,min_lr=3e-5
exit status: 0 ok, 1 --max-final-loss exceeded, 2 error."""


class UsageError(Exception):
    """A problem with the arguments or input: one line on stderr, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Arguments.


def _schedule_text(text: str) -> dict[str, Any]:
    """A spec given as JSON, as a path to a JSON file, or in the compact query form
    ``type:key=value,...`` (the one ``GET /v1/fits/{id}/curve`` accepts)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            spec = json.loads(stripped)
        except ValueError as error:
            raise UsageError(f"--schedule is not valid JSON: {error}") from None
    elif Path(stripped).is_file():
        spec = _json_file(Path(stripped), "--schedule")
    elif ":" in stripped:
        from app.queries import parse_compact_schedule

        try:
            spec = parse_compact_schedule(stripped)
        except ValueError as error:
            raise UsageError(f"--schedule {text!r}: {error}") from None
    else:
        raise UsageError(
            f"--schedule {text!r} is neither JSON, a JSON file, nor type:key=value,... (e.g. "
            "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5)"
        )
    if not isinstance(spec, dict):
        raise UsageError(f"--schedule must be a JSON object, got {type(spec).__name__}")
    return spec


def _json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"{what}: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"{what}: {path} is not valid JSON: {error}") from None


def _json_or_file(text: str, what: str) -> Any:
    if Path(text).is_file():
        return _json_file(Path(text), what)
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"{what} is neither a JSON file nor valid JSON: {error}") from None


def _fixed(items: Sequence[str]) -> dict[str, float]:
    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"--fixed expects NAME=VALUE, got {item!r}")
    return fixed


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{what} expects comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losscast",
        description="Loss-curve prediction and budget planning from fitted LR scaling laws.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service (uvicorn app.main:app)")
    serve.add_argument("--host", help="default: $HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $PORT or 8000")
    serve.add_argument("--database-url", help="default: $DATABASE_URL or a SQLite file in ./var")
    serve.add_argument("--no-warmup", action="store_true", help="skip the JIT warm-up")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=_serve)
    add_import_command(commands)  # import: other tools' logs
    add_admin_commands(commands)  # db, keys

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the response as JSON")
    output.add_argument("--url", help="a running losscast service (default: work in-process)")
    output.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the service (default 600)"
    )

    runs = argparse.ArgumentParser(add_help=False)
    runs.add_argument(
        "--schedules",
        metavar="MAP.json",
        help="JSON object: CSV file name, stem or path -> schedule spec",
    )
    runs.add_argument("--law", default=None, help="law to fit or use (default lr_annealing)")
    runs.add_argument(
        "--warmup",
        choices=["include", "exclude"],
        default=None,
        help="how the warmup ramp enters the annealing terms (default include)",
    )
    runs.add_argument("--min-step", type=int, default=0, help="skip logged points before it")
    runs.add_argument(
        "--fixed",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a parameter at a value (repeatable)",
    )

    scale = argparse.ArgumentParser(add_help=False)
    scale.add_argument("--tokens-per-step", type=float, help="tokens per step (for tokens)")
    scale.add_argument("--n-params", type=float, help="model size (for FLOPs = 6 N tokens)")

    fit = commands.add_parser(
        "fit",
        parents=[output, runs, scale],
        help="fit a law to logged runs (CSV files)",
        description="Fit a law to CSV files with columns step,lr,loss (lr optional). Each run's "
        "per-step learning rate comes from its schedule spec (--schedule for one file, "
        "--schedules for several) or, without one, is interpolated from its lr column.",
    )
    fit.add_argument("csv", nargs="+", type=Path, help="CSV files (header step,lr,loss)")
    fit.add_argument("--schedule", help="the schedule spec of the (single) CSV file")
    fit.add_argument("--out", type=Path, help="also write the fit as JSON (for --fit FILE)")
    fit.set_defaults(handler=_fit)

    source = argparse.ArgumentParser(add_help=False)
    group = source.add_argument_group("the fitted law (exactly one)")
    group.add_argument(
        "--fit",
        type=Path,
        metavar="FIT.json",
        help="a fit written by `losscast fit --out` (or a GET /v1/fits/{id} body)",
    )
    group.add_argument("--fit-id", help="a fit stored in the service (with --url)")
    group.add_argument("--params", metavar="JSON", help="law parameters inline (with --law)")
    group.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="fit these CSV files first (with --schedules)",
    )

    predict = commands.add_parser(
        "predict", parents=[output, source, runs], help="predict loss curves for schedules"
    )
    predict.add_argument(
        "--schedule",
        action="append",
        required=True,
        metavar="SPEC",
        help="a schedule: JSON, a JSON file, or type:key=value,... (repeatable)",
    )
    predict.add_argument("--name", action="append", default=[], help="a name per --schedule")
    predict.add_argument("--num-points", type=int, help=NUM_POINTS_HELP)
    predict.set_defaults(handler=_predict)

    forecast = commands.add_parser(
        "forecast",
        parents=[output, runs],
        help="where a running job will land: its forecast with a band",
        description="Fit a running job (a CSV of the points logged so far, with its whole "
        "declared schedule) alone or with complete runs of the same model (--history), and "
        "print where it will land, the prediction band, and what the fit could not learn from "
        "the data (the identifiability note).",
    )
    forecast.add_argument("csv", type=Path, help="the job's CSV (header step,lr,loss)")
    forecast.add_argument("--schedule", help="the job's whole declared schedule spec")
    forecast.add_argument(
        "--history",
        nargs="*",
        type=Path,
        default=[],
        metavar="CSV",
        help="complete runs of the same model, data and optimiser (with --schedules)",
    )
    forecast.add_argument("--level", type=_level, help=LEVEL_HELP)
    forecast.add_argument("--num-points", type=int, help=NUM_POINTS_HELP)
    forecast.set_defaults(handler=_forecast)

    plan = commands.add_parser(
        "plan",
        help="plan a training budget (compare, cooldown, steps, budget, optimise)",
        description="Plan a training budget under a fitted law. With --max-final-loss X the "
        "exit status is 1 when the planned run's predicted final loss is above X.",
    )
    kinds = plan.add_subparsers(dest="kind", required=True, metavar="KIND")
    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument(
        "--max-final-loss",
        type=float,
        metavar="X",
        help="exit 1 if the planned run's predicted final loss is above X",
    )
    parents = [output, source, runs, scale, gate]

    compare = kinds.add_parser("compare", parents=parents, help="rank candidate schedules")
    compare.add_argument("--schedule", action="append", required=True, metavar="SPEC")
    compare.add_argument("--name", action="append", default=[], help="a name per --schedule")
    compare.add_argument("--num-points", type=int, help=NUM_POINTS_HELP)

    cooldown = kinds.add_parser(
        "cooldown", parents=parents, help="best WSD cooldown fraction and shape at a fixed length"
    )
    cooldown.add_argument(
        "--schedule",
        required=True,
        metavar="SPEC",
        help="the frame: peak_lr, total_steps, num_warmup_steps, min_lr",
    )
    cooldown.add_argument("--fractions", help="comma-separated (default 0,0.02,...,0.5)")
    cooldown.add_argument("--decay-types", help="comma-separated (default linear,cosine,1-sqrt)")
    cooldown.add_argument("--tolerance", type=float, help="loss margin of 'near optimal'")

    steps = kinds.add_parser(
        "steps",
        aliases=["steps-to-target"],
        parents=parents,
        help="fewest steps of a schedule family that reach a target loss",
    )
    steps.add_argument(
        "--schedule", required=True, metavar="SPEC", help="the family (its total_steps is varied)"
    )
    steps.add_argument("--target-loss", type=float, required=True)
    steps.add_argument("--min-steps", type=int)
    steps.add_argument("--max-steps", type=int)

    budget = kinds.add_parser(
        "budget", parents=parents, help="the final loss a budget buys with a schedule family"
    )
    budget.add_argument(
        "--schedule",
        required=True,
        metavar="SPEC",
        help="the family (its total_steps is replaced by the budget)",
    )
    amount = budget.add_mutually_exclusive_group(required=True)
    amount.add_argument("--total-steps", type=int)
    amount.add_argument("--tokens", type=float)
    amount.add_argument("--flops", type=float)
    budget.add_argument("--num-points", type=int, help=NUM_POINTS_HELP)

    optimise = kinds.add_parser(
        "optimise",
        aliases=["optimize"],
        parents=parents,
        help="the monotone schedule that minimises the final loss",
    )
    optimise.add_argument(
        "--schedule",
        required=True,
        metavar="SPEC",
        help="the frame: peak_lr, total_steps, num_warmup_steps, min_lr",
    )
    optimise.add_argument("--num-knots", type=int)
    optimise.add_argument("--max-iterations", type=int)
    add_cpt_plan_arguments(
        kinds.add_parser(
            "cpt",
            parents=parents,
            help="continual pre-training: re-warm peak x decay shape x replay, new vs old domain",
            description="Under a fit of the cpt law (with --url: --fit-id, or --fit of a fit "
            "the service made), every continuation of --total-steps steps from a stored run's "
            "step: its final loss on the new and the old domain, the Pareto front, and the best "
            "new-domain loss within --old-ceiling.",
        )
    )
    plan.set_defaults(handler=_plan)
    add_plot_command(commands, output, source, runs)  # plot: PNG/SVG of fits, predictions, plans
    return parser


# ---------------------------------------------------------------------------------------------
# Where requests go: a running service, or the same code in this process.


class Service:
    """The HTTP API at ``url`` (httpx), with the API key in ``$LOSSCAST_API_KEY`` if set."""

    def __init__(self, url: str, timeout: float):
        import httpx

        self.httpx = httpx
        key = os.environ.get("LOSSCAST_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)
        self.url = url

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, json=body)
        except self.httpx.HTTPError as error:
            raise UsageError(f"cannot reach the service at {self.url}: {error}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise UsageError(f"{method} {path}: {response.status_code} {_detail(detail)}")
        if response.status_code == 202 and "location" in response.headers:
            return self._job_result(path, response)
        return response.json()

    def _job_result(self, path: str, accepted) -> dict[str, Any]:
        """What a 202's job made (a fit past the service's time limit goes on as a job),
        polled at its ``Location`` every ``Retry-After`` seconds."""
        import time

        location, wait = accepted.headers["location"], float(accepted.headers.get("retry-after", 1))
        while True:
            time.sleep(wait)
            job = self._call("GET", location, None)
            if job["status"] == "done":
                return self._call("GET", job["result"], None)
            if job["status"] == "failed":
                error = job.get("error") or {}
                raise UsageError(f"POST {path}: the job {job['id']} failed: {error.get('msg')}")


def _detail(detail: Any) -> str:
    """The service's error items (app.schemas.ErrorOut) as ``where: what; ...``."""
    if not isinstance(detail, list):
        return str(detail)
    parts = []
    for item in detail:
        where = ".".join(str(p) for p in item.get("loc", [])[1:])  # loc[0]: body, query, ...
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return "; ".join(parts)


def _validation_message(error) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
    )


def _configure_jax_cache() -> None:
    """The persistent compilation cache, so a repeated command does not compile again:
    ``$LOSSCAST_JAX_CACHE_DIR`` (empty: off), default ``~/.cache/losscast/jax``."""
    directory = os.environ.get("LOSSCAST_JAX_CACHE_DIR")
    if directory is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        directory = str(Path(base) / "losscast" / "jax")
    if not directory:
        return
    import jax

    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


# ---------------------------------------------------------------------------------------------
# Runs from CSV files.


def _spec_for(path: Path, args, single: dict | None, mapping: Mapping[str, Any]) -> dict | None:
    for key in (str(path), path.name, path.stem):
        if key in mapping:
            spec = mapping[key]
            if not isinstance(spec, dict):
                raise UsageError(f"--schedules: the entry for {key!r} must be a JSON object")
            return spec
    return single


def _read_runs(paths: Sequence[Path], args, single_spec: str | None = None) -> list[dict]:
    """``POST /v1/runs`` bodies for the CSV files."""
    from app.io import read_points

    mapping = _json_file(Path(args.schedules), "--schedules") if args.schedules else {}
    if not isinstance(mapping, dict):
        raise UsageError("--schedules must hold a JSON object: file name -> schedule spec")
    single = _schedule_text(single_spec) if single_spec else None
    if single is not None and len(paths) > 1:
        raise UsageError("--schedule names one file's schedule; use --schedules for several")
    names = [p.stem for p in paths]
    bodies = []
    for path, name in zip(paths, names, strict=True):
        try:
            content = path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
        try:
            points = read_points(content, "csv")
        except ValueError as error:
            raise UsageError(f"{path}: {error}") from None
        spec = _spec_for(path, args, single, mapping)
        if spec is None:
            if points.lr is None:
                raise UsageError(
                    f"{path}: no schedule given (--schedule/--schedules) and no lr column"
                )
            print(
                f"note: {path}: no schedule given; the learning rate is interpolated from "
                "its lr column",
                file=sys.stderr,
            )
        metadata = {
            key: value
            for key, value in (
                ("tokens_per_step", getattr(args, "tokens_per_step", None)),
                ("n_params", getattr(args, "n_params", None)),
            )
            if value is not None
        }
        name = name if names.count(name) == 1 else str(path)
        body = {"name": name, "metadata": metadata, "points": points.model_dump(), "schedule": spec}
        bodies.append(body)
    return bodies


def _fit_options(args) -> dict[str, Any]:
    options: dict[str, Any] = {"law": args.law or "lr_annealing", "min_step": args.min_step}
    if args.warmup:
        options["warmup"] = args.warmup
    if args.fixed:
        options["fixed"] = _fixed(args.fixed)
    return options


def _fit_runs(bodies: list[dict], args, service: Service | None) -> tuple[dict, dict[str, str]]:
    """Fit the runs; returns the fit (FitOut's shape) and run key -> name."""
    options = _fit_options(args)
    if service is not None:
        run_ids = [service.post("/v1/runs", body)["id"] for body in bodies]
        out = service.post("/v1/fits", {"run_ids": run_ids, **options})
        return out, {run_id: body["name"] for run_id, body in zip(run_ids, bodies, strict=True)}

    from app.services.fits import fit_out

    fit = _local_fit(_local_records(bodies), options)
    return json_safe_out(fit_out(fit)), {}


def json_safe_out(out: dict) -> dict:
    from app.domain import json_safe

    return json.loads(json.dumps(json_safe(out), default=str))


def _local_records(bodies: list[dict]) -> list:
    """The runs of ``bodies`` as the service would store them (validated the same way), kept in
    memory: their ids are their names."""
    from pydantic import ValidationError

    from app import schemas
    from app.services.runs import build_run
    from app.storage import unsaved_run

    records = []
    for body in bodies:
        try:
            new, _ = build_run(schemas.RunCreate(**body))
        except ValidationError as error:
            raise UsageError(_validation_message(error)) from None
        records.append(unsaved_run(new, body["name"]))
    return records


def _local_fit(records: list, options: Mapping[str, Any]):
    """The fit the service would make of these runs (:func:`app.policy.fit_report`), unsaved."""
    _configure_jax_cache()
    from pydantic import ValidationError

    from app import schemas
    from app.policy import fit_report
    from app.services.runs import run_lr
    from app.storage import unsaved_fit
    from fitting.fit import Run
    from fitting.laws import CONTINUAL_LAWS

    try:
        request = schemas.FitCreate(run_ids=[r.id for r in records], **options)
    except ValidationError as error:
        raise UsageError(_validation_message(error)) from None
    if request.law in CONTINUAL_LAWS:  # a CSV here is a fresh run: no parent, no domain
        raise UsageError(
            f"law {request.law!r} fits runs that continue stored runs: post them to a service "
            "(--url) with continues and domain"
        )
    runs = [Run(run_lr(r), r.steps, r.loss, r.id) for r in records]
    report = fit_report(runs, request)
    options = request.model_dump(exclude={"run_ids"})
    return unsaved_fit(report.law, report.to_json(), options, request.run_ids)


def _check_one_law_source(args) -> None:
    """Exactly one of --fit, --fit-id, --params and --runs gives the fitted law."""
    given = [name for name in ("fit", "fit_id", "params", "runs") if getattr(args, name)]
    if len(given) != 1:
        raise UsageError(
            "give the fitted law by exactly one of --fit FILE, --fit-id ID (with --url), "
            f"--law NAME --params JSON, or --runs CSV...; got {given or 'none'}"
        )


def _band_level(level: float | str | None) -> float | None:
    """The band level of a command run in process: ``--level`` as :func:`_level` parsed it,
    the service's default when not given, None (no band) for ``none``."""
    from fitting.intervals import DEFAULT_LEVEL

    return {None: DEFAULT_LEVEL, "none": None}.get(level, level)


def _model_fields(args, service: Service | None) -> dict[str, Any]:
    """The fitted law of a predict/plan request, from exactly one source."""
    _check_one_law_source(args)
    if args.fit_id:
        if service is None:
            raise UsageError("--fit-id needs --url (a fit stored in a service)")
        return {"fit_id": args.fit_id}
    if args.fit:
        stored = _json_file(args.fit, "--fit")
        if not isinstance(stored, dict) or not {"law", "params"} <= set(stored):
            raise UsageError(f"--fit: {args.fit} does not hold a fit (law and params)")
        fields = {"law": stored["law"], "params": stored["params"]}
        fields["warmup"] = stored.get("warmup") or "include"
        return fields
    if args.params:
        if not args.law:
            raise UsageError("--params needs --law")
        return {
            "law": args.law,
            "params": _json_or_file(args.params, "--params"),
            **({"warmup": args.warmup} if args.warmup else {}),
        }
    fit, _ = _fit_runs(_read_runs(args.runs, args), args, service)
    if service is not None:
        return {"fit_id": fit["id"]}
    return {"law": fit["law"], "params": fit["params"], "warmup": fit["warmup"]}


# ---------------------------------------------------------------------------------------------
# Commands.


def _emit(out: Any, args, render) -> None:
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(render(out))


def _service(args) -> Service | None:
    return Service(args.url, args.timeout) if args.url else None


def _serve(args) -> int:
    if args.no_warmup:
        os.environ["LOSSCAST_WARMUP"] = "0"
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    if args.host:  # the app checks the address it serves (no keys: loopback only)
        os.environ["HOST"] = args.host
    import uvicorn

    from app.settings import Settings

    settings = Settings.from_env()
    uvicorn.run(
        "app.main:app",
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=args.log_level,
    )
    return EXIT_OK


def _fit(args) -> int:
    from losscast_cli.render import render_fit

    service = _service(args)
    fit, names = _fit_runs(_read_runs(args.csv, args, args.schedule), args, service)
    if args.tokens_per_step is not None:
        fit["tokens_per_step"] = args.tokens_per_step
    if args.n_params is not None:
        fit["n_params"] = args.n_params
    if args.out:
        try:
            args.out.write_text(json.dumps(fit, indent=2))
        except OSError as error:
            raise UsageError(f"--out: cannot write {args.out}: {error.strerror}") from None
    _emit(fit, args, lambda out: render_fit(out, names))
    return EXIT_OK


def _predict(args) -> int:
    from losscast_cli.render import render_prediction

    if args.name and len(args.name) != len(args.schedule):
        raise UsageError(f"got {len(args.name)} --name for {len(args.schedule)} --schedule")
    service = _service(args)
    candidates = [
        {
            "name": args.name[j] if args.name else f"schedule {j}",
            "schedule": _schedule_text(text),
            "num_points": args.num_points,
        }
        for j, text in enumerate(args.schedule)
    ]
    body = {**_model_fields(args, service), "candidates": candidates}
    if service is not None:
        out = service.post("/v1/predictions", body)
    else:
        _configure_jax_cache()
        from pydantic import ValidationError

        from app import schemas
        from app.services.predictions import predict

        try:
            request = schemas.PredictionRequest.model_validate(body)
        except ValidationError as error:
            raise UsageError(_validation_message(error)) from None
        out = predict(None, request)
    _emit(out, args, render_prediction)
    return EXIT_OK


def _level(text: str) -> float | str:
    """``--level``: a number in (0, 1), or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    try:
        level = float(text)
    except ValueError:
        level = float("nan")
    if not 0 < level < 1:
        raise argparse.ArgumentTypeError(f"a number in (0, 1) or 'none', got {text!r}")
    return level


def _forecast(args) -> int:
    from losscast_cli.render import render_forecast

    bodies = _read_runs([args.csv, *args.history], args, None if args.history else args.schedule)
    if args.history and args.schedule:
        raise UsageError("with --history, give every file's schedule with --schedules")
    options = {**_fit_options(args), "law": args.law or "auto"}
    service = _service(args)
    if service is not None:
        group = f"cli-{os.getpid()}-{bodies[0]['name']}" if args.history else None
        run_ids = [service.post("/v1/runs", {**body, "group": group})["id"] for body in bodies]
        fit = service.post(
            "/v1/fits", {"run_ids": [run_ids[0]], "with_group": bool(group), **options}
        )
        query = {"fit_id": fit["id"], "num_points": args.num_points, "level": args.level}
        given = {name: value for name, value in query.items() if value is not None}
        out = service.get(f"/v1/runs/{run_ids[0]}/forecast?{urllib.parse.urlencode(given)}")
    else:
        from app.services.predictions import forecast_out
        from fitting.predict import DEFAULT_NUM_POINTS

        records = _local_records(bodies)
        fit = _local_fit(records, options)
        num_points = DEFAULT_NUM_POINTS if args.num_points is None else args.num_points
        out = json_safe_out(forecast_out(records[0], fit, num_points, _band_level(args.level)))
    _emit(out, args, render_forecast)
    return EXIT_OK


def _plan_body(args) -> dict[str, Any]:
    kind = (
        PLAN_KINDS.get(args.kind)
        or {"steps-to-target": "steps_to_target", "optimize": "optimise"}[args.kind]
    )
    body: dict[str, Any] = {"kind": kind}
    if args.tokens_per_step is not None:
        body["tokens_per_step"] = args.tokens_per_step
    if args.n_params is not None:
        body["n_params"] = args.n_params
    if kind == "compare":
        if args.name and len(args.name) != len(args.schedule):
            raise UsageError(f"got {len(args.name)} --name for {len(args.schedule)} --schedule")
        body["candidates"] = [
            {"name": args.name[j] if args.name else None, "schedule": _schedule_text(text)}
            for j, text in enumerate(args.schedule)
        ]
        if args.num_points is not None:
            body["num_points"] = args.num_points
        return body
    if kind == "cpt":
        return {**body, **cpt_plan_fields(args)}
    body["schedule"] = _schedule_text(args.schedule)
    if kind == "cooldown":
        if args.fractions:
            body["fractions"] = _floats(args.fractions, "--fractions")
        if args.decay_types:
            body["decay_types"] = [t.strip() for t in args.decay_types.split(",") if t.strip()]
        if args.tolerance is not None:
            body["tolerance"] = args.tolerance
    elif kind == "steps_to_target":
        body["target_loss"] = args.target_loss
        for name in ("min_steps", "max_steps"):
            if getattr(args, name) is not None:
                body[name] = getattr(args, name)
    elif kind == "budget":
        for name in ("total_steps", "tokens", "flops"):
            if getattr(args, name) is not None:
                body[name] = getattr(args, name)
        if args.num_points is not None:
            body["num_points"] = args.num_points
    elif kind == "optimise":
        for name in ("num_knots", "max_iterations"):
            if getattr(args, name) is not None:
                body[name] = getattr(args, name)
    return body


def add_cpt_plan_arguments(parser) -> None:
    """The arguments of a cpt plan (``plan cpt`` and ``plot cpt``)."""
    parser.add_argument(
        "--continues",
        required=True,
        metavar="RUN_ID:STEP",
        help="the stored run to continue and its step at the branch",
    )
    parser.add_argument("--total-steps", type=int, required=True, help="the continuation's steps")
    parser.add_argument("--peaks", help="comma-separated re-warm peaks (default 5, log-spaced)")
    parser.add_argument("--shapes", help="comma-separated: cosine,linear,wsd,constant (default)")
    parser.add_argument("--replays", help="comma-separated replay shares (default 0,0.05,0.1,0.25)")
    parser.add_argument("--num-warmup-steps", type=int, help="the re-warm (default 5%% of steps)")
    parser.add_argument("--min-lr", type=float, help="the floor (default the rate at the branch)")
    parser.add_argument("--old-ceiling", type=float, help="most the old domain's final may be")


def cpt_plan_fields(args) -> dict[str, Any]:
    """The cpt plan's request fields from :func:`add_cpt_plan_arguments`' arguments."""
    run_id, sep, step = args.continues.rpartition(":")
    if not sep or not run_id or not step.isdigit():
        raise UsageError(f"--continues expects RUN_ID:STEP, got {args.continues!r}")
    body: dict[str, Any] = {
        "continues": {"run_id": run_id, "at_step": int(step)},
        "total_steps": args.total_steps,
    }
    if args.peaks:
        body["peaks"] = _floats(args.peaks, "--peaks")
    if args.replays:
        body["replays"] = _floats(args.replays, "--replays")
    if args.shapes:
        body["shapes"] = [t.strip() for t in args.shapes.split(",") if t.strip()]
    for name in ("num_warmup_steps", "min_lr", "old_ceiling"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    return body


def _plan(args) -> int:
    from losscast_cli.render import render_plan

    body = _plan_body(args)
    service = _service(args)
    model = _model_fields(args, service)
    if args.fit and "tokens_per_step" not in body:  # the fit file may say what a step costs
        stored = _json_file(args.fit, "--fit")
        for name in ("tokens_per_step", "n_params"):
            if stored.get(name) is not None and name not in body:
                body[name] = stored[name]
    body.update(model)
    if service is not None:
        out = service.post("/v1/plans", body)
    else:
        _configure_jax_cache()
        from pydantic import TypeAdapter, ValidationError

        from app.plan_schemas import PlanRequest
        from app.routers.plans import make_plan

        try:
            request = TypeAdapter(PlanRequest).validate_python(body)
        except ValidationError as error:
            raise UsageError(_validation_message(error)) from None
        out = make_plan(None, request)
        out = json.loads(json.dumps(out, default=float))  # the wire's JSON types
    _emit(out, args, render_plan)
    return _gate(out, args.max_final_loss)


def _gate(out: Mapping[str, Any], limit: float | None) -> int:
    if limit is None:
        return EXIT_OK
    final = out["planned"]["final_loss"]
    if final is None or final > limit:
        print(
            f"losscast: the planned run's predicted final loss {final:.5f} is above "
            f"--max-final-loss {limit:g}",
            file=sys.stderr,
        )
        return EXIT_ABOVE_LIMIT
    print(
        f"losscast: the planned run's predicted final loss {final:.5f} is within "
        f"--max-final-loss {limit:g}",
        file=sys.stderr,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with the usage on a syntax error
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"losscast: error: {error}", file=sys.stderr)
    except ValueError as error:  # from fitting/ or the service layer: says what is wrong
        print(f"losscast: error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 -- a CI gate must get a status, not a trace
        if os.environ.get("LOSSCAST_DEBUG"):
            raise
        print(
            f"losscast: internal error: {type(error).__name__}: {error} "
            "(LOSSCAST_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
