"""``losscast plot``: PNG or SVG (matplotlib) of a fit, of candidate predictions, of a plan's
cooldown curve, for reports and CI artifacts.

- ``plot fit CSV...``: each run's logged loss and the fitted law's curve at its logged steps,
  and held-out runs (``--held-out``, not fitted) the same way, dashed.
- ``plot predict --schedule ...``: each candidate's predicted curve with its band (from a fit
  with an uncertainty: a fit file written by ``losscast fit --out``, ``--runs`` fitted here, or
  ``--fit-id`` of a service).
- ``plot cooldown --schedule FRAME``: WSD's final loss against the cooldown fraction, per shape.
- ``plot cpt``: a continual pre-training plan's trade-off, every continuation's new- against
  old-domain final loss, with the Pareto front and the best option.

The numbers come from the same application layer as the service (``app/policy.py``,
``app/services/``) or, with ``--url``, from the service itself; this module only draws them.
The format is the output's suffix (``.png``, ``.svg``) unless ``--format`` says. In SVG, text
stays text and each drawn series has an id: ``logged-K``, ``fitted-K``, ``held-out-K``,
``curve-K``, ``band-K``, ``cooldown-SHAPE``, ``options-SHAPE-REPLAY``, ``pareto-front``,
``best``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FORMATS = ("png", "svg")


def add_plot_command(commands, output, source, runs) -> None:
    """The ``plot`` command and its kinds; ``output``, ``source`` and ``runs`` are the parent
    parsers of the other commands (--url, the fitted law, the CSV options)."""
    from losscast_cli import main as cli  # loaded: it is building its parser

    plot = commands.add_parser(
        "plot",
        help="PNG or SVG of a fit, of predictions with bands, of a cooldown or a cpt plan",
        description="Draw a fit (logged vs fitted, held-out runs too), candidate predictions "
        "with their bands, a plan's cooldown curve or a cpt plan's trade-off, as PNG or SVG "
        "(matplotlib).",
    )
    kinds = plot.add_subparsers(dest="plot_kind", required=True, metavar="KIND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True, help="the file to write (.png, .svg)")
    common.add_argument("--format", choices=FORMATS, help="default: the suffix of --out")
    common.add_argument("--title", help="the figure's title")
    common.add_argument("--log-loss", action="store_true", help="a logarithmic loss axis")
    common.add_argument("--dpi", type=int, default=120, help="PNG resolution (default 120)")

    fit = kinds.add_parser(
        "fit",
        parents=[common, output, runs],
        help="logged vs fitted curves of the runs (and held-out runs)",
        description="Fit the CSV files (or use --fit FIT.json, or --fit-id with --url) and draw "
        "each run's logged loss with the fitted curve; --held-out files are predicted, not "
        "fitted.",
    )
    fit.add_argument("csv", nargs="+", type=Path, help="CSV files (header step,lr,loss)")
    fit.add_argument("--schedule", help="the schedule spec of the (single) CSV file")
    fit.add_argument("--held-out", nargs="*", type=Path, default=[], metavar="CSV")
    given = fit.add_mutually_exclusive_group()
    given.add_argument("--fit", type=Path, metavar="FIT.json", help="do not fit: use this fit")
    given.add_argument("--fit-id", help="do not fit: use this stored fit (with --url)")
    fit.set_defaults(handler=_plot_fit)

    predict = kinds.add_parser(
        "predict",
        parents=[common, output, source, runs],
        help="candidate schedules' predicted curves with their bands",
    )
    predict.add_argument("--schedule", action="append", required=True, metavar="SPEC")
    predict.add_argument("--name", action="append", default=[], help="a name per --schedule")
    predict.add_argument("--num-points", type=int, help=cli.NUM_POINTS_HELP)
    predict.add_argument("--level", type=cli._level, help=cli.LEVEL_HELP)
    predict.set_defaults(handler=_plot_predict)

    cooldown = kinds.add_parser(
        "cooldown",
        parents=[common, output, source, runs],
        help="final loss against the cooldown fraction, per shape",
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
    cooldown.set_defaults(handler=_plot_cooldown, kind="cooldown")

    cpt = kinds.add_parser(
        "cpt",
        parents=[common, output, source, runs],
        help="a cpt plan's trade-off: new- vs old-domain final loss of every continuation",
        description="Draw a continual pre-training plan (plan kind cpt): every option's final "
        "loss on the old domain (x) and the new one (y), the Pareto front, the best option and "
        "the ceiling. From --plan PLAN.json (`losscast plan cpt --json`), or asked of the "
        "service (--url, --fit-id and the plan's arguments).",
    )
    cpt.add_argument("--plan", type=Path, metavar="PLAN.json", help="a cpt plan's JSON answer")
    cpt.add_argument("--continues", metavar="RUN_ID:STEP", help="(without --plan) as plan cpt")
    cpt.add_argument("--total-steps", type=int, help="(without --plan) as plan cpt")
    for name in ("--peaks", "--shapes", "--replays"):
        cpt.add_argument(name, help="(without --plan) as plan cpt")
    cpt.add_argument("--num-warmup-steps", type=int, help="(without --plan) as plan cpt")
    cpt.add_argument("--min-lr", type=float, help="(without --plan) as plan cpt")
    cpt.add_argument("--old-ceiling", type=float, help="(without --plan) as plan cpt")
    cpt.set_defaults(handler=_plot_cpt, kind="cpt")


# ---------------------------------------------------------------------------------------------
# The numbers, from the application layer or the service.


def _fit_and_forecasts(args) -> tuple[str, list[dict], list[bool]]:
    """The fit's law and, per run (fitted ones first, then held-out), its forecast body
    (ForecastOut's shape, without a band) under the fit; and whether each run was held out."""
    from losscast_cli import main as cli

    bodies = cli._read_runs(args.csv, args, args.schedule)
    held = cli._read_runs(args.held_out, args) if args.held_out else []
    service = cli._service(args)
    if service is not None:
        run_ids = [service.post("/v1/runs", body)["id"] for body in [*bodies, *held]]
        if args.fit_id:
            fit = service.get(f"/v1/fits/{args.fit_id}")
        elif args.fit:
            raise cli.UsageError("with --url, give a stored fit with --fit-id, not --fit")
        else:
            options = cli._fit_options(args)
            fit = service.post("/v1/fits", {"run_ids": run_ids[: len(bodies)], **options})
        forecasts = [
            service.get(f"/v1/runs/{run_id}/forecast?fit_id={fit['id']}&level=none")
            for run_id in run_ids
        ]
        return fit["law"], forecasts, [False] * len(bodies) + [True] * len(held)
    if args.fit_id:
        raise cli.UsageError("--fit-id needs --url (a fit stored in a service)")
    from app.services.predictions import forecast_out
    from app.storage import unsaved_fit
    from fitting.predict import DEFAULT_NUM_POINTS

    records = cli._local_records(bodies)
    held_records = cli._local_records(held)
    if args.fit:
        stored = _fit_file(args.fit)
        fit = unsaved_fit(stored["law"], stored["result"], {}, stored.get("run_ids", []))
    else:
        cli._configure_jax_cache()
        fit = cli._local_fit(records, cli._fit_options(args))
    forecasts = [
        cli.json_safe_out(forecast_out(record, fit, DEFAULT_NUM_POINTS, None))
        for record in [*records, *held_records]
    ]
    return fit.law, forecasts, [False] * len(records) + [True] * len(held_records)


def _predictions(args) -> dict[str, Any]:
    """POST /v1/predictions' answer for the candidates, with bands when the fit has an
    uncertainty (in-process: the fit file's or the fitted runs' stored uncertainty)."""
    from losscast_cli import main as cli

    if args.name and len(args.name) != len(args.schedule):
        raise cli.UsageError(f"got {len(args.name)} --name for {len(args.schedule)} --schedule")
    candidates = [
        {
            "name": args.name[j] if args.name else f"schedule {j}",
            "schedule": cli._schedule_text(text),
            "num_points": args.num_points,
        }
        for j, text in enumerate(args.schedule)
    ]
    service = cli._service(args)
    if service is not None:
        body = {**cli._model_fields(args, service), "candidates": candidates}
        if args.level is not None:
            body["level"] = None if args.level == "none" else args.level
        return service.post("/v1/predictions", body)
    from pydantic import ValidationError

    from app import schemas
    from app.domain import FitReport, Model
    from app.services import predictions

    result = _fit_result(args)
    try:
        checked = [schemas.Candidate.model_validate(candidate) for candidate in candidates]
    except ValidationError as error:
        raise cli.UsageError(cli._validation_message(error)) from None
    if result is not None:
        model = Model.of_report(FitReport.from_json(result))
    else:  # --params: inline, no band
        fields = cli._model_fields(args, None)
        model = predictions.inline_model(fields["law"], fields["params"], fields.get("warmup"))
    cli._configure_jax_cache()
    prefixes = [f"candidates[{j}]" for j in range(len(candidates))]
    curves, bands = predictions.predict_curves(
        model, checked, prefixes, cli._band_level(args.level)
    )
    return cli.json_safe_out(predictions.prediction_out(model, curves, bands, single=False))


def _fit_result(args) -> dict[str, Any] | None:
    """The FitReport JSON of the fitted law given (a fit file, or the runs fitted here); None
    for inline --params."""
    from losscast_cli import main as cli

    cli._check_one_law_source(args)
    if args.fit_id:
        raise cli.UsageError("--fit-id needs --url (a fit stored in a service)")
    if args.fit:
        return _fit_file(args.fit)["result"]
    if args.runs:
        fit, _ = cli._fit_runs(cli._read_runs(args.runs, args), args, None)
        return fit["result"]
    return None


def _fit_file(path) -> dict[str, Any]:
    """A fit written by ``losscast fit --out`` (its law, result and run ids)."""
    from losscast_cli import main as cli

    stored = cli._json_file(path, "--fit")
    if not isinstance(stored, dict) or not isinstance(stored.get("result"), dict):
        raise cli.UsageError(f"--fit: {path} does not hold a fit (written by --out)")
    return stored


def _cooldown_plan(args) -> dict[str, Any]:
    from losscast_cli import main as cli

    args.tokens_per_step = args.n_params = None
    body = cli._plan_body(args)
    service = cli._service(args)
    body.update(cli._model_fields(args, service))
    if service is not None:
        return service.post("/v1/plans", body)
    cli._configure_jax_cache()
    from pydantic import TypeAdapter, ValidationError

    from app.plan_schemas import PlanRequest
    from app.routers.plans import make_plan

    try:
        request = TypeAdapter(PlanRequest).validate_python(body)
    except ValidationError as error:
        raise cli.UsageError(cli._validation_message(error)) from None
    return json.loads(json.dumps(make_plan(None, request), default=float))


def _cpt_plan(args) -> dict[str, Any]:
    from losscast_cli import main as cli

    if args.plan is not None:
        out = cli._json_file(args.plan, "--plan")
        if not isinstance(out, dict) or out.get("kind") != "cpt":
            raise cli.UsageError(f"--plan: {args.plan} is not the answer of a cpt plan")
        return out
    if args.continues is None or args.total_steps is None:
        raise cli.UsageError("give --plan PLAN.json, or --continues and --total-steps (and --url)")
    service = cli._service(args)
    if service is None:
        raise cli.UsageError("a cpt plan continues a stored run: give --url (or --plan)")
    body = {"kind": "cpt", **cli.cpt_plan_fields(args), **cli._model_fields(args, service)}
    return service.post("/v1/plans", body)


# ---------------------------------------------------------------------------------------------
# Drawing.


def _pyplot():
    from losscast_cli import main as cli

    try:
        import matplotlib
    except ImportError:
        raise cli.UsageError(
            "losscast plot needs matplotlib: pip install 'losscast[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: smaller, searchable
    import matplotlib.pyplot as plt

    return plt


def _format(args) -> str:
    """The output's format, checked before any work is done."""
    from losscast_cli import main as cli

    kind = args.format or args.out.suffix.lstrip(".").lower()
    if kind not in FORMATS:
        raise cli.UsageError(f"--out {args.out}: give a .png or .svg file, or --format png|svg")
    return kind


def _save(figure, args) -> None:
    from losscast_cli import main as cli

    kind = _format(args)
    figure.tight_layout()
    try:
        figure.savefig(args.out, format=kind, dpi=args.dpi, metadata=_metadata(kind))
    except OSError as error:
        raise cli.UsageError(f"--out: cannot write {args.out}: {error.strerror}") from None
    print(f"wrote {args.out}")


def _metadata(kind: str) -> dict[str, str]:
    from app import __version__

    creator = f"losscast {__version__}"
    return {"Creator": creator} if kind == "svg" else {"Software": creator}


def _axes(plt, args, title: str, xlabel: str = "step", ylabel: str = "loss"):
    figure, axes = plt.subplots(figsize=(9, 5.2))
    axes.set_title(args.title or title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if args.log_loss:
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    return figure, axes


def draw_fit(law: str, forecasts: Sequence[Mapping], held_out: Sequence[bool], args):
    plt = _pyplot()
    figure, axes = _axes(plt, args, f"{law}: logged vs fitted")
    for k, (forecast, held) in enumerate(zip(forecasts, held_out, strict=True)):
        color = f"C{k % 10}"
        steps, loss = forecast["points"]["step"], forecast["points"]["loss"]
        name = forecast["curve"]["name"] or forecast["run_id"]
        pred_e = forecast["metrics"].get("pred_e")
        tag = "held out" if held else "fitted"
        axes.plot(
            steps,
            loss,
            ".",
            color=color,
            markersize=3,
            alpha=0.6,
            label=f"{name} logged",
            gid=f"logged-{k}",
        )
        axes.plot(
            steps,
            forecast["predicted_at_logged"],
            "--" if held else "-",
            color=color,
            linewidth=1.4,
            gid=f"{'held-out' if held else 'fitted'}-{k}",
            label=f"{name} {tag} (PredE {pred_e:.2e})" if pred_e is not None else name,
        )
    axes.legend(fontsize=8)
    return figure


def draw_predictions(out: Mapping, args):
    plt = _pyplot()
    level = out.get("level")
    title = f"{out['law']}: predicted loss" + (f", {round(100 * level)}% bands" if level else "")
    figure, axes = _axes(plt, args, title)
    for k, curve in enumerate(out["candidates"]):
        color = f"C{k % 10}"
        final = curve["loss"][-1]
        label = f"{curve['name']}: {final:.4f}"
        axes.plot(curve["steps"], curve["loss"], color=color, label=label, gid=f"curve-{k}")
        if curve.get("lower") and curve.get("upper"):
            axes.fill_between(
                curve["steps"],
                curve["lower"],
                curve["upper"],
                color=color,
                alpha=0.18,
                lw=0,
                gid=f"band-{k}",
            )
    if out.get("interval_note"):
        axes.text(0.01, 0.01, out["interval_note"], transform=axes.transAxes, fontsize=7)
    axes.legend(fontsize=8, title="final loss")
    return figure


def draw_cooldown(out: Mapping, args):
    plt = _pyplot()
    plan = out["result"]
    best = plan["best"]
    title = (
        f"final loss at {plan['total_steps']} steps; best {best['decay_type']} cooldown over "
        f"{best['decay_fraction']:g} ({best['final_loss']:.4f})"
    )
    figure, axes = _axes(plt, args, title, xlabel="cooldown fraction", ylabel="final loss")
    for k, (shape, losses) in enumerate(plan["final_loss"].items()):
        axes.plot(
            plan["fractions"],
            losses,
            "o-",
            color=f"C{k}",
            markersize=3,
            label=shape,
            gid=f"cooldown-{shape}",
        )
    axes.plot([best["decay_fraction"]], [best["final_loss"]], "k*", markersize=12, label="best")
    axes.legend(fontsize=8, title="cooldown shape")
    return figure


def draw_cpt(out: Mapping, args):
    """Every option as a point (old-domain final, new-domain final), one colour per shape and
    one marker per replay share; the Pareto front joined; the best starred; the ceiling."""
    plt = _pyplot()
    plan = out["result"]
    best = plan["best"]
    title = f"continuation of {plan['total_steps']} steps: new- vs old-domain final loss"
    figure, axes = _axes(
        plt, args, title, xlabel="old-domain final loss", ylabel="new-domain final loss"
    )
    shapes = list(dict.fromkeys(o["shape"] for o in plan["options"]))
    replays = list(dict.fromkeys(o["replay"] for o in plan["options"]))
    markers = "osD^v<>phX*"
    for k, shape in enumerate(shapes):
        for j, replay in enumerate(replays):
            chosen = [o for o in plan["options"] if o["shape"] == shape and o["replay"] == replay]
            axes.plot(
                [o["old_final"] for o in chosen],
                [o["new_final"] for o in chosen],
                markers[j % len(markers)],
                color=f"C{k % 10}",
                markersize=5,
                alpha=0.8,
                linestyle="none",
                label=f"{shape}, replay {replay:g}",
                gid=f"options-{shape}-{replay:g}",
            )
    front = plan["pareto_front"]
    axes.plot(
        [o["old_final"] for o in front],
        [o["new_final"] for o in front],
        "k-",
        linewidth=1,
        label="Pareto front",
        gid="pareto-front",
    )
    if best is not None:
        axes.plot(
            [best["old_final"]],
            [best["new_final"]],
            "k*",
            markersize=14,
            label=f"best: {best['shape']} peak {best['peak_lr']:.3g} replay {best['replay']:g}",
            gid="best",
        )
    if plan["old_ceiling"] is not None:
        axes.axvline(plan["old_ceiling"], color="grey", linestyle="--", label="old-domain ceiling")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the points
    return figure


def _plot_cpt(args) -> int:
    _format(args)
    _save(draw_cpt(_cpt_plan(args), args), args)
    return 0


def _plot_fit(args) -> int:
    _format(args)
    law, forecasts, held = _fit_and_forecasts(args)
    _save(draw_fit(law, forecasts, held, args), args)
    return 0


def _plot_predict(args) -> int:
    _format(args)
    _save(draw_predictions(_predictions(args), args), args)
    return 0


def _plot_cooldown(args) -> int:
    _format(args)
    _save(draw_cooldown(_cooldown_plan(args), args), args)
    return 0
