// Run: the logged curve, the forecast of its latest fit with the band to the end of the declared
// schedule, the learning rate under it and the residuals, on one step axis. It polls the forecast
// with its ETag (If-None-Match: a 304 costs the service nothing) and redraws when points arrive.
import { api, ApiError, query } from "./api.js";
import { chart } from "./chart.js";
import { ago, errorBox, fmt, h, link, note, pct, fill } from "./dom.js";

const POLL_MS = 2000;

function summary(run, forecast) {
  const items = [
    ["points", run.num_points],
    ["last step", `${run.last_step} of ${run.total_steps} (${pct((run.last_step + 1) / run.total_steps, 0)})`],
    ["last loss", fmt(run.points.loss[run.points.loss.length - 1])],
  ];
  if (forecast) {
    const curve = forecast.curve;
    const end = curve.loss.length - 1;
    const band = curve.lower ? ` [${fmt(curve.lower[end])}, ${fmt(curve.upper[end])}] at ${pct(forecast.level, 0)}` : "";
    const fresh = forecast.freshness;
    items.push(
      ["forecast final loss", `${fmt(curve.loss[end])}${band} at step ${curve.steps[end]}`],
      ["fit", h("span", {}, h("a", { href: link(`fits/${forecast.fit_id}`) }, `${forecast.law} (${forecast.fit_id})`), ` ${ago(fresh.fitted_at)}`)],
      [
        "freshness",
        h(
          "span",
          {},
          h("span", { class: fresh.current ? "badge ok" : "badge stale" }, fresh.current ? "current" : `saw ${fresh.points_fitted} of ${fresh.points_stored} points`),
          ` refit ${fresh.refit}`,
        ),
      ],
      ["PredE on logged points", fmt(forecast.metrics.pred_e, 3)],
      ["band holds", forecast.coverage === null ? "–" : `${pct(forecast.coverage, 0)} of the logged points`],
    );
  }
  return h(
    "table",
    { class: "card", id: "run-summary" },
    h("tbody", {}, items.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { dataset: { field: k } }, v)))),
  );
}

function curvesOf(run, forecast) {
  const logged = { label: "logged", x: run.points.step, y: run.points.loss, measured: true, color: "#1d2330" };
  if (!forecast) return { loss: [logged], lr: [], residual: [] };
  const c = forecast.curve;
  const level = forecast.level ? `${Math.round(100 * forecast.level)}% band` : "";
  const predicted = { label: "forecast", x: c.steps, y: c.loss, color: "#2f6fdf", dash: [6, 3] };
  if (c.lower && c.upper) Object.assign(predicted, { lower: c.lower, upper: c.upper, label: `forecast, ${level}` });
  const pred = forecast.predicted_at_logged;
  const steps = forecast.points.step;
  const residual = {
    label: "logged / predicted − 1",
    x: steps,
    y: forecast.points.loss.map((v, i) => v / pred[i] - 1),
    measured: true,
    color: "#d9480f",
  };
  if (forecast.lower_at_logged) {
    Object.assign(residual, {
      lower: forecast.lower_at_logged.map((v, i) => v / pred[i] - 1),
      upper: forecast.upper_at_logged.map((v, i) => v / pred[i] - 1),
    });
  }
  const lr = [{ label: "learning rate", x: c.steps, y: c.lr, color: "#2b8a3e" }];
  return { loss: [{ ...logged, x: steps, y: forecast.points.loss }, predicted], lr, residual: [residual] };
}

export async function runView(main, params, runId) {
  const id = decodeURIComponent(runId);
  const run = await api(`/v1/runs/${encodeURIComponent(id)}`);
  const head = h("div", {});
  const messages = h("div", {});
  const jobBox = h("div", { id: "fit-job" });
  const lossBox = h("div", { class: "chart card", id: "run-chart" });
  const lrBox = h("div", { class: "chart card", id: "lr-chart" });
  const residualBox = h("div", { class: "chart card", id: "residual-chart" });
  const side = h("div", {});
  fill(main, 
    h("h1", {}, run.name, " ", h("span", { class: "muted" }, run.group ? `group ${run.group}` : "")),
    head,
    jobBox,
    messages,
    h("div", { class: "row" }, h("div", { class: "grow" }, lossBox, lrBox, residualBox), h("div", { style: "flex: 0 1 360px" }, side)),
  );
  const group = new Set();
  let charts = null;
  let etag = null;
  let current = { run, forecast: null };
  let stopped = false;
  let fitting = false; // a fit asked from this page is running: keep its messages up

  function draw() {
    const { run: r, forecast: f } = current;
    const curves = curvesOf(r, f);
    const first = Math.min(r.points.step[0], f ? f.curve.steps[0] : Infinity);
    const xExtent = [first, r.total_steps - 1];
    fill(side, 
      summary(r, f),
      f && f.identification ? note(f.identification.note) : null,
      f && f.interval_note ? note(f.interval_note) : null,
      f && f.law === "cpt"
        ? h("p", {}, h("a", { href: link("cpt", { fit: f.fit_id }) }, "Plan a continuation with this fit"))
        : [
            f ? h("p", {}, h("a", { href: link("whatif", { fit: f.fit_id }) }, "What if this fit ran another schedule?")) : null,
            h("p", {}, h("a", { href: link("plan", { fit: f ? f.fit_id : "" }) }, "Plan a budget")),
          ],
    );
    if (!charts) {
      charts = {
        loss: chart(lossBox, curves.loss, { title: "loss", name: `${r.name}-loss`, group, xExtent, syncKey: "run", height: 360 }),
        lr: chart(lrBox, curves.lr, { title: "learning rate (from the end of warmup)", yLabel: "lr", name: `${r.name}-lr`, group, xExtent, syncKey: "run", height: 140 }),
        residual: chart(residualBox, curves.residual, { title: "residuals (relative)", yLabel: "residual", name: `${r.name}-residuals`, group, xExtent, syncKey: "run", height: 160 }),
      };
    } else {
      charts.loss.update(curves.loss);
      charts.lr.update(curves.lr);
      charts.residual.update(curves.residual);
    }
    lossBox.dataset.numPoints = String(r.points.step.length);
    // When the charts were drawn, in ms since the navigation began (the first paint's measure).
    if (!lossBox.dataset.drawnMs) lossBox.dataset.drawnMs = String(Math.round(performance.now()));
  }

  async function fitNow(withGroup, law) {
    fitting = true;
    fill(jobBox);
    fill(messages, h("p", { class: "muted" }, `fitting ${law}… (seconds; law auto fits every law)`));
    try {
      const answer = await api("/v1/fits", { method: "POST", body: { run_ids: [id], law, with_group: withGroup }, full: true });
      if (answer.status === 202) {
        fill(messages);
        const job = await followJob(answer);
        if (job.status !== "done") return;
      }
      etag = null;
      fill(messages);
      await poll();
    } catch (error) {
      fill(messages, errorBox(error, "fit"));
    } finally {
      fitting = false;
    }
  }

  /** A fit past the service's time limit for a fit in the request (LOSSCAST_SYNC_FIT_SECONDS)
   *  was answered 202 with its job: say so, and poll the job (at its Retry-After) until it ends,
   *  showing its stage; answers the job as it ended (or as it was when the page was left). */
  async function followJob(accepted) {
    const where = accepted.headers.get("location") || `/v1/jobs/${encodeURIComponent(accepted.data.id)}`;
    const wait = 1000 * (Number(accepted.headers.get("retry-after")) || 2);
    let job = accepted.data;
    showJob(job);
    while (!stopped && job.status !== "done" && job.status !== "failed") {
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (stopped) break;
      job = await api(where);
      showJob(job);
    }
    return job;
  }

  function showJob(job) {
    const p = job.progress;
    const stage = p ? `stage ${p.stage}, step ${p.step} of ${p.steps}` : job.status === "queued" ? "waiting for a worker" : "starting";
    const ended = job.status === "done" || job.status === "failed";
    const lead = h("span", {}, `The fit took longer than the service fits in a request, so it ${ended ? "went" : "goes"} on as background job `, h("code", {}, job.id), ". ");
    let state;
    if (job.status === "done") state = h("span", {}, h("span", { class: "badge ok" }, "done"), ` (${stage}): `, h("a", { href: link(`fits/${job.fit_id}`) }, `fit ${job.fit_id}`));
    else if (job.status === "failed") state = h("span", {}, h("span", { class: "badge stale" }, "failed"), ` (${stage})`);
    else state = h("span", {}, h("span", { class: "badge" }, job.status), ` ${stage}`, p ? h("progress", { value: p.step, max: p.steps, "aria-label": "fit progress" }) : null, " (polling the job)");
    jobBox.dataset.job = job.id;
    jobBox.dataset.status = job.status;
    jobBox.dataset.progress = p ? JSON.stringify(p) : "";
    fill(jobBox, note(h("span", {}, lead, state)), job.status === "failed" ? errorBox(new Error(job.error ? job.error.msg : "no reason given"), `job ${job.id}`) : null);
  }

  async function poll() {
    try {
      const answer = await api(`/v1/runs/${encodeURIComponent(id)}/forecast${query({ fit_id: params.get("fit") })}`, { etag: etag || "" });
      if (!answer.notModified) {
        etag = answer.etag;
        const forecast = answer.data;
        current = { run: { ...current.run, points: forecast.points, num_points: forecast.points.step.length, last_step: forecast.points.step.at(-1) }, forecast };
        fill(messages);
        draw();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && !current.forecast) {
        // No fit yet: show the logged points, offer a fit, and keep polling the run itself.
        const latest = await api(`/v1/runs/${encodeURIComponent(id)}`).catch(() => current.run);
        const changed = latest.version !== current.run.version || !charts;
        current = { run: latest, forecast: null };
        if (changed) draw();
        if (!fitting && !messages.querySelector("button")) {
          const laws = await api("/v1/laws").catch(() => ({ laws: {} }));
          const law = h("select", { "aria-label": "law to fit" }, ["auto", ...Object.keys(laws.laws)].map((name) => h("option", { value: name }, name)));
          fill(
            messages,
            note(`${error.message}`),
            h(
              "div",
              { class: "toolbar" },
              h("label", {}, "law", law),
              h("button", { type: "button", class: "primary", onclick: () => fitNow(false, law.value) }, "Fit this run"),
              run.group ? h("button", { type: "button", onclick: () => fitNow(true, law.value) }, "Fit with its group") : null,
            ),
          );
        }
      } else {
        fill(messages, errorBox(error, "forecast"));
        if (!charts) draw();
      }
    }
  }

  await poll();
  const loop = async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!stopped && !document.hidden) await poll();
    }
  };
  loop();
  return () => {
    stopped = true;
    if (charts) Object.values(charts).forEach((c) => c.destroy());
  };
}
