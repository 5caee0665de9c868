// Fits: the list, and one fit: its parameters with their uncertainty, per-run metrics, the law
// choice's evidence (each law's cross-validated error), what the runs identify, and each
// fitted run's logged curve against the fitted one.
import { api, query } from "./api.js";
import { chart, COLORS } from "./chart.js";
import { ago, errorBox, fmt, h, link, note, fill } from "./dom.js";

export async function fitsView(main, params) {
  const page = await api(`/v1/fits${query({ run_id: params.get("run"), limit: 100 })}`);
  const rows = page.items.map((fit) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: link(`fits/${fit.id}`) }, fit.id)),
      h("td", {}, fit.law),
      h("td", {}, (fit.runs || []).map((r) => r.name).join(", ") || fit.run_ids.join(", ")),
      h("td", {}, fit.converged ? "yes" : h("span", { class: "badge stale" }, "no")),
      h("td", {}, fit.uncertainty ? "yes" : "–"),
      h("td", { class: "muted" }, ago(fit.created_at)),
      h("td", {}, h("a", { href: link("whatif", { fit: fit.id }) }, "what-if")),
    ),
  );
  fill(main, 
    h("h1", {}, "Fits"),
    rows.length
      ? h("table", { class: "card" }, h("thead", {}, h("tr", {}, ["fit", "law", "runs", "converged", "bands", "made", ""].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No fits yet: open a run and fit it, or POST /v1/fits."),
  );
}

/** The standard deviation of each parameter from the covariance of the fit's coordinates
 *  (GET /v1/laws says each parameter's coordinate: identity, log or log1m). */
function spreads(fit, law) {
  const cov = fit.result.uncertainty && fit.result.uncertainty.covariance;
  if (!cov || !law) return {};
  const out = {};
  law.parameters.forEach((p, i) => {
    const sd = Math.sqrt(Math.max(0, cov[i][i]));
    if (!(sd > 0)) out[p.name] = "held";
    else if (p.coordinate === "log") out[p.name] = `×/÷ ${fmt(Math.exp(sd), 4)} (log sd ${fmt(sd, 3)})`;
    else if (p.coordinate === "log1m") out[p.name] = `1−${p.name} ×/÷ ${fmt(Math.exp(sd), 4)}`;
    else out[p.name] = `± ${fmt(sd, 3)}`;
  });
  return out;
}

function table(headers, rows, attrs = {}) {
  return h("table", { class: "card", ...attrs }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

export async function fitView(main, params, fitId) {
  const id = decodeURIComponent(fitId);
  const [fit, laws] = await Promise.all([api(`/v1/fits/${encodeURIComponent(id)}`), api("/v1/laws")]);
  const law = laws.laws[fit.law];
  const sd = spreads(fit, law);
  const names = Object.fromEntries((fit.runs || []).map((r) => [r.run_id, r.name]));
  const paramRows = Object.entries(fit.params).map(([name, value]) => {
    const doc = law ? (law.parameters.find((p) => p.name === name) || {}).doc : "";
    const bound = fit.result.at_bounds && fit.result.at_bounds.includes(name) ? h("span", { class: "badge stale" }, "at a bound") : null;
    return h("tr", {}, h("td", {}, name, " ", bound), h("td", { class: "num" }, fmt(value, 6)), h("td", {}, sd[name] || "–"), h("td", { class: "muted" }, doc || ""));
  });
  const metricNames = ["r2", "mae", "rmse", "pred_e", "worst_e"];
  const metricRows = Object.entries(fit.metrics).map(([runId, m]) =>
    h("tr", {}, h("td", {}, h("a", { href: link(`runs/${runId}`) }, names[runId] || runId)), metricNames.map((k) => h("td", { class: "num" }, fmt(m[k], 4)))),
  );
  const evidence = [];
  if (fit.selection) {
    evidence.push(
      h("h2", {}, "Law choice (cross-validated PredE, lower is better)"),
      table(
        ["law", "scheme", "held-out PredE", "folds", ""],
        fit.selection.candidates.map((c) =>
          h("tr", {}, h("td", {}, c.law), h("td", {}, c.scheme), h("td", { class: "num" }, fmt(c.pred_e, 4)), h("td", { class: "num" }, Array.isArray(c.folds) ? c.folds.length : c.folds ?? "–"), h("td", {}, c.law === fit.selection.chosen ? h("span", { class: "badge ok" }, "chosen") : "")),
        ),
        { id: "law-choice" },
      ),
      fit.selection.note ? note(fit.selection.note) : null,
    );
  } else if (fit.validation) {
    evidence.push(h("h2", {}, "Validation"), h("p", {}, `${fit.validation.law}, ${fit.validation.scheme}: held-out PredE ${fmt(fit.validation.pred_e, 4)}`));
  }
  const u = fit.uncertainty;
  const curves = h("div", { class: "chart card", id: "fit-chart" }, h("p", { class: "muted" }, "loading the fitted curves…"));
  fill(main, 
    h("h1", {}, `Fit ${fit.id}`, " ", h("span", { class: "muted" }, `${fit.law}, ${ago(fit.created_at)}`)),
    h("p", {}, fit.converged ? h("span", { class: "badge ok" }, "converged") : h("span", { class: "badge stale" }, "did not converge"), ` ${fit.message}`),
    fit.law === "cpt"
      ? h("p", {}, h("a", { href: link("cpt", { fit: fit.id }) }, "Plan a continuation with this fit"))
      : h("p", {}, h("a", { href: link("whatif", { fit: fit.id }) }, "What-if with this fit"), " · ", h("a", { href: link("plan", { fit: fit.id }) }, "Plan with this fit")),
    h(
      "div",
      { class: "row" },
      h(
        "div",
        { class: "grow" },
        h("h2", {}, "Parameters"),
        table(["parameter", "value", "uncertainty (1 sd)", ""], paramRows, { id: "fit-params" }),
        fit.identification ? note(fit.identification.note) : null,
        u
          ? h("p", { class: "muted" }, `bands from: noise ${fmt(u.noise, 3)}, held-out model error ${fmt(u.model_error, 3)}, residual autocorrelation ${fmt(u.autocorrelation, 3)}, ${u.folds} folds${u.other_laws.length ? `, other laws ${u.other_laws.join(", ")}` : ""}`)
          : note(fit.uncertainty_note || "no uncertainty: predictions from this fit carry no band"),
      ),
      h("div", { class: "grow" }, h("h2", {}, "Per-run fit metrics"), table(["run", ...metricNames], metricRows, { id: "fit-metrics" }), ...evidence),
    ),
    h("h2", {}, "Logged vs fitted"),
    curves,
  );
  const list = [];
  const errors = [];
  await Promise.all(
    fit.run_ids.map(async (runId, k) => {
      try {
        const f = await api(`/v1/runs/${encodeURIComponent(runId)}/forecast${query({ fit_id: fit.id, level: "none" })}`);
        const color = COLORS[k % COLORS.length];
        const name = names[runId] || runId;
        list[2 * k] = { label: `${name} logged`, x: f.points.step, y: f.points.loss, measured: true, color };
        list[2 * k + 1] = { label: `${name} fitted`, x: f.points.step, y: f.predicted_at_logged, color, dash: [5, 3], measured: true, markers: false };
      } catch (error) {
        errors.push(errorBox(error, names[runId] || runId));
      }
    }),
  );
  const drawn = list.filter(Boolean);
  if (drawn.length) {
    const holder = h("div", {});
    fill(curves, ...errors, holder);
    chart(holder, drawn, { title: "logged (solid) and fitted (dashed)", name: `${fit.id}-fitted`, height: 380 });
  } else fill(curves, ...errors);
}
