// Runs: search by name, group and metadata; each with a sparkline, its points, its progress
// through its declared schedule, its latest fit and how current that fit is.
import { api, query } from "./api.js";
import { sparkline } from "./chart.js";
import { ago, errorBox, fmt, h, link, fill } from "./dom.js";

const PAGE = 50;

function searchForm(params) {
  const field = (name, label, placeholder) =>
    h("label", {}, label, h("input", { name, value: params.get(name) || "", placeholder }));
  const form = h(
    "form",
    { class: "inline", role: "search" },
    field("q", "name contains", "cosine"),
    field("group", "group", "25M-llama"),
    field("meta", "metadata key=value (comma-separated)", "model_size=\"25M\""),
    h("label", {}, "\u00a0", h("button", { type: "submit", class: "primary" }, "Search")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = link("runs", Object.fromEntries(data.entries()));
  });
  return form;
}

async function fillRow(run, cells) {
  try {
    const [full, fits] = await Promise.all([
      api(`/v1/runs/${encodeURIComponent(run.id)}`),
      api(`/v1/fits${query({ run_id: run.id, limit: 1 })}`),
    ]);
    fill(cells.spark, sparkline(full.points.step, full.points.loss));
    cells.last.textContent = fmt(full.points.loss[full.points.loss.length - 1], 5);
    const fit = fits.items[0];
    if (!fit) {
      fill(cells.fit, h("span", { class: "badge" }, "no fit yet"));
      return;
    }
    const snapshot = (fit.runs || []).find((r) => r.run_id === run.id);
    const fitted = (fit.result.points_fitted || {})[run.id] ?? (snapshot ? snapshot.num_points : null);
    const behind = fitted === null ? null : run.num_points - fitted;
    const badge =
      behind === 0
        ? h("span", { class: "badge ok" }, "current")
        : h("span", { class: "badge stale" }, behind === null ? "?" : `${behind} points behind`);
    fill(cells.fit, 
      h("a", { href: link(`fits/${fit.id}`) }, fit.law),
      " ",
      badge,
      h("span", { class: "muted" }, ` ${ago(fit.created_at)}`),
    );
  } catch (error) {
    fill(cells.fit, errorBox(error));
  }
}

export async function runsView(main, params) {
  const meta = (params.get("meta") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const list = h("div", {}, h("p", { class: "muted" }, "loading…"));
  fill(main, h("h1", {}, "Runs"), searchForm(params), list);
  let page;
  try {
    page = await api(
      `/v1/runs${query({ name_contains: params.get("q"), group: params.get("group"), metadata: meta, limit: PAGE, offset: params.get("offset") })}`,
    );
  } catch (error) {
    fill(list, errorBox(error, "runs"));
    return;
  }
  if (!page.items.length) {
    fill(list, h("p", { class: "muted" }, "No runs match. POST /v1/runs (or losscast fit) to add some."));
    return;
  }
  const rows = [];
  const body = h("tbody");
  for (const run of page.items) {
    const cells = { spark: h("td"), last: h("td", { class: "num" }), fit: h("td") };
    const progress = (run.last_step + 1) / run.total_steps;
    body.append(
      h(
        "tr",
        { dataset: { runId: run.id } },
        h("td", {}, h("a", { href: link(`runs/${run.id}`) }, run.name)),
        h("td", {}, run.group || h("span", { class: "muted" }, "–")),
        h("td", {}, h("code", {}, JSON.stringify(run.metadata))),
        cells.spark,
        h("td", { class: "num" }, run.num_points),
        h("td", { class: "num" }, `${run.last_step} / ${run.total_steps} (${Math.round(100 * progress)}%)`),
        cells.last,
        cells.fit,
        h("td", { class: "muted" }, ago(run.updated_at)),
      ),
    );
    rows.push([run, cells]);
  }
  const more =
    page.next_offset !== null
      ? h("a", { href: link("runs", { q: params.get("q"), group: params.get("group"), meta: params.get("meta"), offset: page.next_offset }) }, "next page")
      : null;
  fill(list, 
    h("p", { class: "muted" }, `${page.total} run(s)`),
    h(
      "table",
      { class: "card" },
      h(
        "thead",
        {},
        h("tr", {}, ["name", "group", "metadata", "loss", "points", "last step / schedule", "last loss", "latest fit", "updated"].map((t) => h("th", {}, t))),
      ),
      body,
    ),
    more,
  );
  // Four at a time: a page of runs must not flood the service.
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const [run, cells] = rows[next++];
      await fillRow(run, cells);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}
