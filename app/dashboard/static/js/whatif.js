// What-if: pick a fit, add candidate schedules (a form per family, a pasted spec or per-step
// rates), see their predicted curves with bands overlaid (POST /v1/predictions), their final
// losses ranked and their differences to a chosen baseline. The candidates live in the URL.
import { api, query } from "./api.js";
import { chart, COLORS } from "./chart.js";
import { ago, errorBox, fill, fmt, h, link, note, pct } from "./dom.js";
import { describe, scheduleEditor } from "./schedules.js";

function candidatesOf(params) {
  try {
    const parsed = JSON.parse(params.get("c") || "[]");
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

export async function fitPicker(params, page) {
  const fits = await api(`/v1/fits${query({ limit: 100 })}`);
  const chosen = params.get("fit") || (fits.items[0] && fits.items[0].id) || "";
  const select = h(
    "select",
    { id: "fit-select", "aria-label": "fit" },
    fits.items.map((fit) =>
      h("option", { value: fit.id, selected: fit.id === chosen }, `${fit.law} on ${fit.run_ids.length} run(s), ${ago(fit.created_at)} (${fit.id})`),
    ),
  );
  if (chosen && !fits.items.some((f) => f.id === chosen)) select.prepend(h("option", { value: chosen, selected: true }, chosen));
  select.addEventListener("change", () => {
    location.hash = link(page, { ...Object.fromEntries(params.entries()), fit: select.value });
  });
  return { select, chosen, empty: !fits.items.length };
}

/** The schedule of the fit's first run, to prefill the forms with (empty when it has none). */
export async function baseSpec(fitId) {
  try {
    const fit = await api(`/v1/fits/${encodeURIComponent(fitId)}`);
    const run = await api(`/v1/runs/${encodeURIComponent(fit.run_ids[0])}`);
    return run.schedule || {};
  } catch {
    return {};
  }
}

export async function whatifView(main, params) {
  const { select, chosen, empty } = await fitPicker(params, "whatif");
  if (empty) {
    fill(main, h("h1", {}, "What-if"), note("No fits yet: fit some runs first (open a run, or POST /v1/fits)."));
    return;
  }
  const candidates = candidatesOf(params);
  const baseline = Math.min(Number(params.get("base") || 0), Math.max(0, candidates.length - 1));
  const messages = h("div", { id: "whatif-messages" });
  const go = (next, base = baseline) => {
    location.hash = link("whatif", { fit: chosen, c: next.length ? JSON.stringify(next) : "", base: next.length ? base : "" });
  };
  const editor = await scheduleEditor({
    base: await baseSpec(chosen),
    onAdd: (candidate) => go([...candidates, { ...candidate, name: candidate.name || `candidate ${candidates.length + 1}` }]),
    onError: (error) => fill(messages, errorBox(error)),
  });
  const chartBox = h("div", { class: "chart card", id: "whatif-chart" });
  const ranking = h("div", { id: "whatif-ranking" });
  fill(main, 
    h("h1", {}, "What-if"),
    h("div", { class: "toolbar" }, h("label", {}, "fit", select), h("a", { href: link(`fits/${chosen}`) }, "about this fit")),
    h("div", { class: "row" }, h("div", { class: "grow" }, messages, chartBox, ranking), h("div", { style: "flex: 0 1 520px" }, h("h2", {}, "Add a candidate schedule"), editor)),
  );
  if (!candidates.length) {
    fill(chartBox, h("p", { class: "muted" }, "Add a candidate schedule to see its predicted curve."));
    return;
  }
  let answer;
  try {
    answer = await api("/v1/predictions", { method: "POST", body: { fit_id: chosen, candidates } });
  } catch (error) {
    fill(messages, errorBox(error, "prediction"));
    fill(chartBox, h("p", { class: "muted" }, "No curve: fix or remove the candidate the message names."));
    fill(ranking, candidateList(candidates, baseline, go, null));
    return;
  }
  if (answer.interval_note) fill(messages, note(answer.interval_note));
  const curves = answer.candidates.map((c, k) => {
    const curve = { label: c.name || `candidate ${k + 1}`, x: c.steps, y: c.loss, color: COLORS[k % COLORS.length] };
    if (c.lower && c.upper) Object.assign(curve, { lower: c.lower, upper: c.upper });
    return curve;
  });
  chart(chartBox, curves, { title: `predicted loss${answer.level ? `, ${Math.round(100 * answer.level)}% bands` : ""}`, name: "whatif", height: 420 });
  fill(ranking, candidateList(candidates, baseline, go, answer));
}

function candidateList(candidates, baseline, go, answer) {
  const finals = answer ? answer.candidates.map((c) => c.loss[c.loss.length - 1]) : candidates.map(() => null);
  const order = candidates.map((_, k) => k).sort((a, b) => (finals[a] ?? Infinity) - (finals[b] ?? Infinity));
  const base = finals[baseline];
  const rows = order.map((k, rank) => {
    const c = answer ? answer.candidates[k] : null;
    const end = c ? c.loss.length - 1 : 0;
    const diff = finals[k] !== null && base !== null ? finals[k] - base : null;
    return h(
      "tr",
      { dataset: { candidate: String(k), final: finals[k] === null ? "" : String(finals[k]) } },
      h("td", { class: "num" }, answer ? rank + 1 : "–"),
      h("td", {}, h("span", { style: `color: ${COLORS[k % COLORS.length]}` }, "■ "), candidates[k].name || `candidate ${k + 1}`),
      h("td", { class: "num" }, fmt(finals[k])),
      h("td", { class: "num" }, c && c.lower ? `[${fmt(c.lower[end])}, ${fmt(c.upper[end])}]` : "–"),
      h("td", { class: "num" }, k === baseline ? "baseline" : diff === null ? "–" : `${diff >= 0 ? "+" : ""}${fmt(diff, 4)} (${pct(diff / base, 2)})`),
      h("td", { class: "num" }, c ? c.total_steps : "–"),
      h("td", {}, h("code", {}, describe(candidates[k]).slice(0, 120))),
      h(
        "td",
        {},
        h("label", { class: "check" }, h("input", { type: "radio", name: "baseline", checked: k === baseline, onchange: () => go(candidates, k), "aria-label": `baseline ${candidates[k].name}` }), "baseline"),
        " ",
        h("button", { type: "button", onclick: () => go(candidates.filter((_, j) => j !== k), k < baseline ? baseline - 1 : k === baseline ? 0 : baseline), "aria-label": `remove ${candidates[k].name}` }, "remove"),
      ),
    );
  });
  return h(
    "table",
    { class: "card" },
    h("thead", {}, h("tr", {}, ["rank", "candidate", "final loss", "band", "vs baseline", "steps", "schedule", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}
