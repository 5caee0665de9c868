"""Human-readable tables of the API's responses (fits, predictions, plans). Plain text, fixed
columns, no colour: a CI log reads them as well as a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CURVE_ROWS = 10  # rows of a predicted curve shown in a table


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns left-aligned to the widest cell; numbers as given (format them first)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}"
    return str(value)


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _cost(cost: Mapping[str, Any] | None) -> str:
    if not cost or cost.get("tokens") is None:
        return ""
    text = f", {_sci(cost['tokens'])} tokens"
    if cost.get("flops") is not None:
        text += f", {_sci(cost['flops'])} FLOPs"
    return text


def _model_line(out: Mapping[str, Any]) -> str:
    where = f"fit {out['fit_id']}" if out.get("fit_id") else "inline parameters"
    params = ", ".join(f"{k}={v:.4g}" for k, v in out["params"].items())
    return f"law {out['law']} ({where}; warmup {out['warmup']}): {params}"


def _curve_rows(steps: Sequence[int], loss: Sequence[float], lr: Sequence[float] | None):
    count = len(steps)
    picks = sorted({round(i * (count - 1) / (CURVE_ROWS - 1)) for i in range(CURVE_ROWS)})
    picks = [i for i in picks if 0 <= i < count]
    return [[steps[i], loss[i], _sci(lr[i]) if lr else "-"] for i in picks]


# ---------------------------------------------------------------------------------------------


def render_fit(out: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    state = "converged" if out["converged"] else "DID NOT CONVERGE"
    lines = [f"law {out['law']} fitted to {len(out['metrics'])} run(s): {state} ({out['message']})"]
    if out.get("id"):
        lines.append(f"fit id: {out['id']}")
    lines.append(f"warmup treatment: {out['warmup']}")
    bounds = out.get("result", {}).get("bounds", {})
    at_bounds = set(out.get("result", {}).get("at_bounds", []))
    rows = []
    for name, value in out["params"].items():
        low_high = bounds.get(name)
        note = (
            "held"
            if low_high and low_high[0] == low_high[1]
            else ("at bound" if name in at_bounds else "")
        )
        rows.append([name, f"{value:.6g}", note])
    lines += ["", table(["parameter", "value", ""], rows), ""]
    metric_rows = [
        [names.get(run, run), m.get("r2"), m.get("mae"), m.get("pred_e"), m.get("worst_e")]
        for run, m in out["metrics"].items()
    ]
    lines.append(table(["run", "r2", "mae", "pred_e", "worst_e"], metric_rows))
    return "\n".join(lines)


def render_prediction(out: Mapping[str, Any]) -> str:
    lines = [_model_line(out), ""]
    lines.append(
        table(
            ["schedule", "steps", "final loss"],
            [
                [c["name"] or f"candidate {j}", c["total_steps"], c["loss"][-1]]
                for j, c in enumerate(out["candidates"])
            ],
        )
    )
    for j, curve in enumerate(out["candidates"]):
        lines += ["", f"{curve['name'] or f'candidate {j}'}:"]
        lines.append(
            table(
                ["step", "loss", "lr"], _curve_rows(curve["steps"], curve["loss"], curve.get("lr"))
            )
        )
    return "\n".join(lines)


def render_plan(out: Mapping[str, Any]) -> str:
    body = _PLAN_RENDERERS[out["kind"]](out["result"])
    planned = out["planned"]
    steps = planned["total_steps"]
    summary = (
        f"planned run: {planned['name']}: "
        + (f"{steps} steps, " if steps is not None else "")
        + f"predicted final loss {planned['final_loss']:.5f}{_cost(planned['cost'])}"
    )
    return "\n".join([_model_line(out), "", body, "", summary])


def _compare(result: Mapping[str, Any]) -> str:
    rows = []
    for forecast in result["ranking"]:
        band = forecast.get("interval")
        interval = f"[{band['final'][0]:.4f}, {band['final'][1]:.4f}]" if band else "-"
        rows.append(
            [
                forecast["rank"],
                forecast["name"],
                forecast["total_steps"],
                forecast["final_loss"],
                f"{forecast['gap_to_best']:+.5f}",
                interval,
                _sci(forecast["cost"].get("tokens")),
            ]
        )
    return table(["rank", "schedule", "steps", "final loss", "gap", "interval", "tokens"], rows)


def _cooldown(result: Mapping[str, Any]) -> str:
    shapes = list(result["final_loss"])
    rows = [
        [f"{f:.2f}", *[result["final_loss"][s][i] for s in shapes]]
        for i, f in enumerate(result["fractions"])
    ]
    best = result["best"]
    lines = [
        f"WSD at {result['total_steps']} steps: predicted final loss by cooldown fraction",
        table(["fraction", *shapes], rows),
        "",
        f"best: {best['decay_type']} cooldown over {best['decay_fraction']:g} of the steps "
        f"({best['num_decay_steps']} steps): final loss {best['final_loss']:.5f}",
        f"within {result['tolerance']:g} of each shape's best: "
        + ", ".join(f"{s} {lo:g}-{hi:g}" for s, (lo, hi) in result["near_optimal"].items()),
    ]
    lines += [f"note: {note}" for note in result["notes"]]
    if result["skipped_fractions"]:
        lines.append(f"skipped (overlap the warmup): {result['skipped_fractions']}")
    return "\n".join(lines)


def _steps(result: Mapping[str, Any]) -> str:
    family = {k: v for k, v in result["spec"].items() if k != "total_steps"}
    lines = [f"family: {family}", f"target final loss: {result['target_loss']:g}"]
    if result["reached"]:
        lines.append(
            f"fewest steps: {result['total_steps']} (final loss {result['final_loss']:.5f}"
            f"{_cost(result['cost'])})"
        )
    else:
        lines.append(f"NOT REACHED: {result['message']}")
    grid = result["grid"]
    rows = sorted(zip(grid["total_steps"], grid["final_loss"], strict=True))
    every = max(1, -(-len(rows) // 12))
    shown = rows[::every] + ([rows[-1]] if (len(rows) - 1) % every else [])
    lines += [
        "",
        f"search grid ({len(rows)} lengths, every {every}):",
        table(["steps", "final loss"], shown),
    ]
    if not result["monotone"]:
        lines.append(
            "note: the final loss is not monotone in the length over this grid; the "
            "answer is the first crossing"
        )
    lines.append(f"{result['evaluations']} schedules evaluated; {result['message']}")
    return "\n".join(lines)


def _budget(result: Mapping[str, Any]) -> str:
    band = result.get("interval")
    lines = [
        f"{result['name']}: final loss {result['final_loss']:.5f}"
        + (f" [{band['final'][0]:.4f}, {band['final'][1]:.4f}]" if band else "")
        + _cost(result["cost"]),
        "",
    ]
    lines.append(
        table(["step", "loss", "lr"], _curve_rows(result["steps"], result["loss"], result["lr"]))
    )
    return "\n".join(lines)


def _optimise(result: Mapping[str, Any]) -> str:
    best_wsd = result["baselines"]["best_wsd"]["spec"]
    rows = [
        ["optimised", result["final_loss"], "+0.00000"],
        [
            f"best WSD ({best_wsd['decay_type']}, {best_wsd['decay_fraction']:g})",
            result["baselines"]["best_wsd"]["final_loss"],
            f"{-result['gap_to_best_wsd']:+.5f}",
        ],
        ["cosine", result["baselines"]["cosine"]["final_loss"], f"{-result['gap_to_cosine']:+.5f}"],
    ]
    state = "converged" if result["converged"] else "DID NOT CONVERGE"
    lines = [
        table(["schedule", "final loss", "worse by"], rows),
        "",
        f"optimiser: {state} ({result['message']}), {result['iterations']} iterations, "
        f"{result['optimiser_seconds']:.2f} s ({result['seconds']:.2f} s with the baselines)",
    ]
    lines += [f"on a constraint: {c['note']}" for c in result["constraints"]]
    steps, rates = result["knot_steps"], result["knot_lr"]
    below = [s for s, r in zip(steps, rates, strict=True) if r < rates[0]]
    floor = min(rates)
    if below:
        on_floor = next(s for s, r in zip(steps, rates, strict=True) if r == floor)
        lines.append(
            f"shape: at the peak until step {steps[steps.index(below[0]) - 1]}, "
            f"then down to {floor:.3g} by step {on_floor}"
        )
    knots = list(zip(result["knot_steps"], result["knot_lr"], strict=True))
    picks = sorted({round(i * (len(knots) - 1) / 16) for i in range(17)})
    lines += [
        "",
        "knots (every few):",
        table(["step", "lr"], [[knots[i][0], _sci(knots[i][1])] for i in picks]),
    ]
    return "\n".join(lines)


def _continuation(result: Mapping[str, Any]) -> str:
    """A cpt plan: the Pareto front of new- vs old-domain final loss, and the best option."""

    def row(o):
        mark = "*" if result["best"] and o == result["best"] else ""
        return [f"{o['peak_lr']:.3g}", o["shape"], f"{o['replay']:g}", o["new_final"],
                o["old_final"], mark]  # fmt: skip

    ceiling = result["old_ceiling"]
    lines = [
        f"continuation of {result['total_steps']} steps (re-warm over "
        f"{result['num_warmup_steps']}, floor {result['min_lr']:.3g}): {len(result['options'])} "
        "options; the Pareto front of new- vs old-domain final loss"
        + (f", old-domain ceiling {ceiling:g}" if ceiling is not None else ""),
        table(
            ["peak", "shape", "replay", "new final", "old final", "best"],
            [row(o) for o in result["pareto_front"]],
        ),
    ]
    best = result["best"]
    if best is not None and not best["pareto"]:
        lines.append(f"best (not on the front): {row(best)}")
    if result["note"]:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


_PLAN_RENDERERS = {
    "compare": _compare,
    "cooldown": _cooldown,
    "steps_to_target": _steps,
    "budget": _budget,
    "optimise": _optimise,
    "cpt": _continuation,
}


def render_forecast(out: Mapping[str, Any]) -> str:
    """Where the job lands: the final predicted loss with its band, the fit's runs, the
    identifiability note and how current the fit is."""
    curve = out["curve"]
    final = curve["loss"][-1]
    lines = [f"forecast of {curve['name']} by {out['law']}"]
    if curve["lower"] is not None:
        lower, upper = curve["lower"][-1], curve["upper"][-1]
        half = (upper - lower) / 2 / final
        lines.append(
            f"final loss at step {curve['steps'][-1]}: {final:.5f}  "
            f"({out['level']:.0%} band {lower:.5f} .. {upper:.5f}, +-{half:.2%})"
        )
    else:
        lines.append(f"final loss at step {curve['steps'][-1]}: {final:.5f}  (no band)")
        if out.get("interval_note"):
            lines.append(f"  {out['interval_note']}")
    runs = out.get("fit_run_ids") or []
    lines.append(f"fitted on {len(runs)} run(s): {', '.join(map(str, runs))}")
    identification = out.get("identification")
    if identification:
        lines.append(f"note: {identification['note']}")
    freshness = out.get("freshness")
    if freshness:
        lines.append(
            f"points fitted {freshness['points_fitted']} of {freshness['points_stored']} stored"
            f" (refit {freshness['refit']})"
        )
    return "\n".join(lines)
