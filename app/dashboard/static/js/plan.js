// Plan: under a fit, the best WSD cooldown (the whole final-loss-vs-fraction curve per shape),
// the steps to a target loss, what a budget buys, and the optimised schedule against cosine and
// the best WSD (POST /v1/plans). The plan's inputs live in the URL.
import { api } from "./api.js";
import { chart, COLORS } from "./chart.js";
import { errorBox, fmt, h, link, note, fill } from "./dom.js";
import { baseSpec, fitPicker } from "./whatif.js";

const KINDS = {
  cooldown: "best cooldown",
  steps_to_target: "steps to a target loss",
  budget: "what a budget buys",
  optimise: "optimised schedule",
};

function inputsFor(kind, params) {
  const field = (name, label, placeholder) => h("label", {}, label, h("input", { name, value: params.get(name) || "", placeholder }));
  if (kind === "cooldown") return [field("fractions", "cooldown fractions (comma-separated; empty: default grid)", "0.1,0.2,0.3")];
  if (kind === "steps_to_target") return [field("target", "target loss", "3.3")];
  if (kind === "budget") return [field("steps", "total steps", "48000"), field("tokens", "or tokens", "2.5e10")];
  return [];
}

function request(kind, fitId, frame, params) {
  const body = { kind, fit_id: fitId, schedule: frame };
  if (kind === "cooldown" && params.get("fractions")) body.fractions = params.get("fractions").split(",").map(Number);
  if (kind === "steps_to_target") body.target_loss = Number(params.get("target"));
  if (kind === "budget") {
    if (params.get("tokens")) body.tokens = Number(params.get("tokens"));
    else body.total_steps = Number(params.get("steps") || frame.total_steps);
  }
  return body;
}

/** A schedule spec: in full when short, else folded (an optimised schedule has many knots). */
function specCell(spec) {
  const text = JSON.stringify(spec);
  if (text.length <= 200) return h("code", { class: "spec" }, text);
  return h("details", {}, h("summary", {}, `${spec.type} schedule (${text.length} characters of JSON)`), h("code", { class: "spec" }, text));
}

function planned(out) {
  const p = out.planned;
  const cost = p.cost || {};
  return h(
    "table",
    { class: "card", id: "plan-planned" },
    h(
      "tbody",
      {},
      [
        ["planned run", p.name],
        ["total steps", p.total_steps ?? "not reached"],
        ["predicted final loss", fmt(p.final_loss)],
        ["tokens", fmt(cost.tokens)],
        ["FLOPs", fmt(cost.flops)],
        ["schedule", specCell(p.spec)],
        ["computed in", `${fmt(out.seconds, 3)} s`],
      ].map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))),
    ),
  );
}

function show(kind, out, box) {
  const r = out.result;
  const holder = h("div", { class: "chart card", id: "plan-chart" });
  const parts = [planned(out), holder];
  if (kind === "cooldown") {
    const curves = Object.entries(r.final_loss).map(([shape, losses], k) => ({ label: `${shape} cooldown`, x: r.fractions, y: losses, measured: true, color: COLORS[k] }));
    fill(box, ...parts, ...(r.notes || []).map(note));
    chart(holder, curves, { title: `final loss at ${r.total_steps} steps by cooldown fraction; best ${r.best.decay_type} over ${r.best.decay_fraction}`, xLabel: "cooldown fraction", name: "cooldown", height: 360 });
    const near = Object.entries(r.near_optimal).map(([shape, [lo, hi]]) => `${shape}: ${lo}–${hi}`);
    box.append(h("p", { class: "muted" }, `within ${fmt(r.tolerance)} of each shape's best: ${near.join("; ")}`));
  } else if (kind === "steps_to_target") {
    fill(box, ...parts, h("p", {}, r.message));
    chart(holder, [{ label: "final loss", x: r.grid.total_steps, y: r.grid.final_loss, measured: true }, { label: "target", x: [r.grid.total_steps[0], r.grid.total_steps.at(-1)], y: [r.target_loss, r.target_loss], color: "#d9480f", dash: [4, 4] }], {
      title: "final loss by length of the schedule",
      xLabel: "total steps",
      name: "steps-to-target",
      height: 340,
    });
  } else if (kind === "budget") {
    const curve = { label: r.name, x: r.steps, y: r.loss };
    if (r.interval) Object.assign(curve, { lower: r.interval.lower, upper: r.interval.upper });
    fill(box, ...parts);
    chart(holder, [curve], { title: `predicted loss of ${r.name}`, name: "budget", height: 340 });
  } else {
    const rows = [
      ["optimised", r.final_loss, 0],
      ["best WSD", r.baselines.best_wsd.final_loss, -r.gap_to_best_wsd],
      ["cosine", r.baselines.cosine.final_loss, -r.gap_to_cosine],
    ].map(([n, v, gap]) => h("tr", {}, h("td", {}, n), h("td", { class: "num" }, fmt(v)), h("td", { class: "num" }, gap ? `+${fmt(gap, 4)}` : "")));
    fill(box, 
      ...parts,
      h("table", { class: "card" }, h("thead", {}, h("tr", {}, ["schedule", "final loss", "vs optimised"].map((t) => h("th", {}, t)))), h("tbody", {}, rows)),
      ...(r.constraints || []).map((c) => note(c.note)),
    );
    chart(holder, [{ label: "optimised rate (knots)", x: r.knot_steps, y: r.knot_lr, measured: true, color: "#2b8a3e" }], { title: "the optimised schedule", yLabel: "lr", name: "optimised", height: 260 });
  }
}

export async function planView(main, params) {
  const { select, chosen, empty } = await fitPicker(params, "plan");
  if (empty) {
    fill(main, h("h1", {}, "Plan"), note("No fits yet: fit some runs first (open a run, or POST /v1/fits)."));
    return;
  }
  const kind = KINDS[params.get("kind")] ? params.get("kind") : "cooldown";
  let frameText = params.get("frame");
  if (!frameText) frameText = JSON.stringify(await baseSpec(chosen));
  const frame = h("textarea", { name: "frame", "aria-label": "schedule frame (JSON)" }, frameText);
  const kindSelect = h("select", { name: "kind", "aria-label": "plan kind" }, Object.entries(KINDS).map(([k, label]) => h("option", { value: k, selected: k === kind }, label)));
  const extra = h("div", { class: "fields" }, inputsFor(kind, params));
  kindSelect.addEventListener("change", () => fill(extra, ...inputsFor(kindSelect.value, new URLSearchParams())));
  const form = h(
    "form",
    { class: "card", "aria-label": "plan" },
    h("div", { class: "toolbar" }, h("label", {}, "fit", select), h("label", {}, "plan", kindSelect)),
    h("label", { style: "display: flex" }, "the schedule (its peak, length, warmup and floor frame the plan)", frame),
    extra,
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Plan")),
  );
  const box = h("div", { id: "plan-result" });
  fill(main, h("h1", {}, "Plan"), form, box);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    location.hash = link("plan", { ...values, fit: chosen });
  });
  if (!params.get("kind")) return;
  let spec;
  try {
    spec = JSON.parse(frameText);
  } catch (error) {
    fill(box, errorBox(error, "the schedule is not JSON"));
    return;
  }
  fill(box, h("p", { class: "muted" }, "planning…"));
  try {
    const out = await api("/v1/plans", { method: "POST", body: request(kind, chosen, spec, params) });
    show(kind, out, box);
  } catch (error) {
    fill(box, errorBox(error, "plan"));
  }
}
