// Continual pre-training: under a fit of the continual law (cpt), the trade-off of continuing a
// base run for a budget of steps (POST /v1/plans, kind cpt): every re-warm peak x decay shape x
// replay share as its new- against its old-domain final loss, the Pareto front of the two, the
// best option within an optional ceiling on the old domain, and a table of the front. The
// plan's inputs live in the URL.
import { api, query } from "./api.js";
import { chart, COLORS } from "./chart.js";
import { ago, errorBox, fill, fmt, h, link, note } from "./dom.js";

const FRONT_COLOR = "#1d2330";
const CHOSEN_COLOR = "#c2255c";

/** The run a cpt fit's branches continue (the most common parent) and their branch step and
 *  length, to prefill the form with: what the fit was made on. */
function defaultsOf(fit, runs) {
  const byId = new Map(runs.map((run) => [run.id, run]));
  const counts = new Map();
  for (const id of fit.run_ids) {
    const run = byId.get(id);
    if (!run || !run.continues) continue;
    const key = `${run.continues.run_id}:${run.continues.at_step}`;
    const seen = counts.get(key) || { ...run.continues, steps: run.total_steps, count: 0 };
    seen.count += 1;
    counts.set(key, seen);
  }
  const best = [...counts.values()].sort((a, b) => b.count - a.count)[0];
  return best ? { run: best.run_id, at: best.at_step, steps: best.steps } : {};
}

function numbers(text) {
  if (!text) return undefined;
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map(Number);
}

function request(fitId, params) {
  const body = {
    kind: "cpt",
    fit_id: fitId,
    continues: { run_id: params.get("run"), at_step: Number(params.get("at")) },
    total_steps: Number(params.get("steps")),
  };
  if (params.get("ceiling")) body.old_ceiling = Number(params.get("ceiling"));
  if (params.get("peaks")) body.peaks = numbers(params.get("peaks"));
  if (params.get("replays")) body.replays = numbers(params.get("replays"));
  return body;
}

/** An option's place in the grid (peak, shape, replay): what tells two options apart. */
const key = (o) => `${o.peak_lr}|${o.shape}|${o.replay}`;

/** Options as a scatter's curve: ascending new-domain final, one point per value (options with
 *  the same predicted finals, such as every shape at a peak equal to the floor, are one point). */
function scatter(label, options, extra) {
  const sorted = [...options].sort((a, b) => a.new_final - b.new_final);
  const points = sorted.filter((o, i) => i === 0 || o.new_final !== sorted[i - 1].new_final);
  return { label, x: points.map((o) => o.new_final), y: points.map((o) => o.old_final), measured: true, line: false, ...extra };
}

/** The option the plan chose: its best, or (no option within the ceiling) the planned one, the
 *  option that forgets least. */
function chosenOf(out) {
  const r = out.result;
  if (r.best) return r.best;
  const spec = JSON.stringify(out.planned.spec);
  return r.options.find((o) => o.new_final === out.planned.final_loss && JSON.stringify(o.spec) === spec) || null;
}

function frontTable(r, chosen) {
  const rows = r.pareto_front.map((o) =>
    h(
      "tr",
      { dataset: { chosen: String(Boolean(chosen) && key(o) === key(chosen)) } },
      h("td", { class: "num" }, fmt(o.peak_lr, 3)),
      h("td", {}, o.shape),
      h("td", { class: "num" }, fmt(o.replay, 3)),
      h("td", { class: "num" }, fmt(o.new_final)),
      h("td", { class: "num" }, fmt(o.old_final)),
      h("td", {}, r.old_ceiling === null ? "–" : o.feasible ? "yes" : h("span", { class: "badge stale" }, "no")),
      h("td", {}, chosen && key(o) === key(chosen) ? h("span", { class: "badge ok" }, "chosen") : ""),
    ),
  );
  return h(
    "table",
    { class: "card", id: "cpt-front" },
    h("thead", {}, h("tr", {}, ["peak lr", "shape", "replay", "new-domain final", "old-domain final", "within ceiling", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

function show(out, box) {
  const r = out.result;
  const chosen = chosenOf(out);
  const shapes = [...new Set(r.options.map((o) => o.shape))];
  const curves = shapes.map((shape, k) => scatter(`${shape} options`, r.options.filter((o) => o.shape === shape), { color: COLORS[k % COLORS.length] }));
  const front = scatter("Pareto front", r.pareto_front, { color: FRONT_COLOR, line: true, width: 1.5, dash: [4, 3], pointSize: 8 });
  curves.push(front);
  if (chosen) curves.push(scatter(r.best ? "chosen" : "planned (least forgetting)", [chosen], { color: CHOSEN_COLOR, pointSize: 14 }));
  const xs = r.options.map((o) => o.new_final);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const pad = Math.max((hi - lo) * 0.05, Math.abs(hi) * 1e-4);
  if (r.old_ceiling !== null) curves.push({ label: `old-domain ceiling ${fmt(r.old_ceiling)}`, x: [lo - pad, hi + pad], y: [r.old_ceiling, r.old_ceiling], color: "#868e96", dash: [6, 4] });
  const holder = h("div", { class: "chart card", id: "cpt-chart" });
  const summary = h(
    "table",
    { class: "card", id: "cpt-chosen" },
    h(
      "tbody",
      {},
      [
        ["planned", out.planned.name],
        ["peak lr", chosen ? fmt(chosen.peak_lr, 4) : "–"],
        ["shape", chosen ? chosen.shape : "–"],
        ["replay", chosen ? fmt(chosen.replay, 3) : "–"],
        ["new-domain final", chosen ? fmt(chosen.new_final) : "–"],
        ["old-domain final", chosen ? fmt(chosen.old_final) : "–"],
        ["options", `${r.options.length} (${r.pareto_front.length} on the Pareto front)`],
        ["re-warm", `${r.num_warmup_steps} steps, floor ${fmt(r.min_lr, 3)}, ${r.total_steps} steps in all`],
        ["computed in", `${fmt(out.seconds, 3)} s`],
      ].map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { dataset: { field: k } }, v))),
    ),
  );
  fill(box, r.note ? note(r.note) : null, h("div", { class: "row" }, h("div", { class: "grow" }, holder), h("div", { style: "flex: 0 1 380px" }, summary)), h("h2", {}, "The Pareto front (lowest new-domain final first)"), frontTable(r, chosen));
  chart(holder, curves, {
    title: "each continuation's predicted final loss: new domain against old domain (lower left is better)",
    xLabel: "new-domain final loss",
    xName: "new loss",
    xDigits: 5,
    yLabel: "old-domain final loss",
    xExtent: [lo - pad, hi + pad],
    name: "cpt-tradeoff",
    height: 420,
  });
}

export async function cptView(main, params) {
  const [fits, runs] = await Promise.all([api(`/v1/fits${query({ law: "cpt", limit: 100 })}`), api(`/v1/runs${query({ limit: 1000 })}`)]);
  if (!fits.items.length) {
    fill(main, h("h1", {}, "Continual pre-training"), note("No fits of law cpt yet: fit runs that continue runs (their base and branches, on both domains) with law cpt (POST /v1/fits)."));
    return;
  }
  const chosenFit = params.get("fit") || fits.items[0].id;
  const fit = fits.items.find((f) => f.id === chosenFit) || (await api(`/v1/fits/${encodeURIComponent(chosenFit)}`));
  const defaults = defaultsOf(fit, runs.items);
  const value = (name, fallback) => params.get(name) ?? (fallback === undefined ? "" : String(fallback));
  const fitSelect = h(
    "select",
    { name: "fit", "aria-label": "cpt fit" },
    fits.items.map((f) => h("option", { value: f.id, selected: f.id === fit.id }, `${f.run_ids.length} runs, ${ago(f.created_at)} (${f.id})`)),
  );
  if (!fits.items.some((f) => f.id === fit.id)) fitSelect.prepend(h("option", { value: fit.id, selected: true }, fit.id));
  fitSelect.addEventListener("change", () => {
    location.hash = link("cpt", { fit: fitSelect.value });
  });
  const baseId = value("run", defaults.run);
  const runSelect = h(
    "select",
    { name: "run", "aria-label": "base run" },
    runs.items.map((run) => h("option", { value: run.id, selected: run.id === baseId }, `${run.name}${run.domain ? ` (${run.domain})` : ""}, last step ${run.last_step}`)),
  );
  const atStep = h("input", { name: "at", value: value("at", defaults.at), "aria-label": "branch step" });
  runSelect.addEventListener("change", () => {
    const run = runs.items.find((one) => one.id === runSelect.value);
    if (run) atStep.value = String(run.total_steps - 1);
  });
  const field = (name, label, fallback, placeholder) => h("label", {}, label, h("input", { name, value: value(name, fallback), placeholder }));
  const form = h(
    "form",
    { class: "card", "aria-label": "cpt plan" },
    h("div", { class: "toolbar" }, h("label", {}, "fit of law cpt", fitSelect), h("label", {}, "base run to continue", runSelect), h("label", {}, "at its step", atStep)),
    h(
      "div",
      { class: "fields" },
      field("steps", "continuation steps (budget)", defaults.steps, "1000"),
      field("ceiling", "old-domain ceiling (optional)", undefined, "none"),
      field("peaks", "re-warm peaks (comma-separated; empty: 5 from the branch rate to the base's peak)", undefined, "3e-4,1e-3,3e-3"),
      field("replays", "replay shares (empty: 0, 0.05, 0.1, 0.25)", undefined, "0,0.1,0.25"),
    ),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Plan the continuation")),
  );
  const box = h("div", { id: "cpt-result" });
  fill(main, h("h1", {}, "Continual pre-training"), form, box);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    location.hash = link("cpt", { ...values, go: "1" });
  });
  if (!params.get("go")) return;
  fill(box, h("p", { class: "muted" }, "planning…"));
  try {
    const out = await api("/v1/plans", { method: "POST", body: request(fit.id, params) });
    show(out, box);
  } catch (error) {
    fill(box, errorBox(error, "plan"));
  }
}
