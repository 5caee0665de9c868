// Charts on uPlot (vendored under /static/vendor/uplot, MIT): curves of a few thousand to tens of
// thousands of points with bands, linear or log axes, cursor readouts, drag-to-zoom on steps with
// the loss range following the data in view, and CSV / PNG downloads of what is drawn.
import { fmt, h, fill } from "./dom.js";

const uPlot = window.uPlot;

export const COLORS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

function alpha(color, a) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

/** Values of `ys` (on ascending `xs`) at each of `grid` (ascending): linear between the known
 *  points, null outside them. */
export function interpolate(xs, ys, grid) {
  const out = new Array(grid.length).fill(null);
  if (!xs.length) return out;
  let j = 0;
  for (let i = 0; i < grid.length; i++) {
    const x = grid[i];
    if (x < xs[0] || x > xs[xs.length - 1]) continue;
    while (j < xs.length - 2 && xs[j + 1] < x) j++;
    if (xs[j] === x) out[i] = ys[j];
    else if (xs[j + 1] === x) out[i] = ys[j + 1];
    else {
      const t = (x - xs[j]) / (xs[j + 1] - xs[j]);
      out[i] = ys[j] + t * (ys[j + 1] - ys[j]);
    }
  }
  return out;
}

/** Exactly the values of `ys` at the steps of `grid` it has, null elsewhere. */
function place(xs, ys, grid) {
  const out = new Array(grid.length).fill(null);
  let j = 0;
  for (let i = 0; i < grid.length && j < xs.length; i++) {
    if (grid[i] === xs[j]) out[i] = ys[j++];
  }
  return out;
}

/** uPlot's aligned data from curves on steps of their own: their union of steps, each curve on it
 *  (measured curves only at their own steps, predicted ones interpolated within their range). */
export function align(curves, { logX = false } = {}) {
  const steps = new Set();
  for (const curve of curves) for (const x of curve.x) if (!logX || x > 0) steps.add(x);
  const grid = Float64Array.from(steps).sort();
  const columns = [Array.from(grid)];
  const meta = [];
  for (const curve of curves) {
    const on = curve.measured ? place : interpolate;
    const pairs = [["", curve.y]];
    if (curve.lower && curve.upper) pairs.push([" upper", curve.upper], [" lower", curve.lower]);
    for (const [suffix, ys] of pairs) {
      columns.push(on(curve.x, ys, columns[0]));
      meta.push({ curve, suffix });
    }
  }
  return { columns, meta };
}

function niceLogSplits(min, max, count = 6) {
  const out = [];
  const a = Math.log(min);
  const b = Math.log(max);
  for (let i = 0; i <= count; i++) out.push(Number(Math.exp(a + ((b - a) * i) / count).toPrecision(3)));
  return out;
}

function yRange(log) {
  return (u, min, max) => {
    if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
    if (log) {
      const pad = Math.max((Math.log(max) - Math.log(min)) * 0.04, 1e-4);
      return [Math.exp(Math.log(min) - pad), Math.exp(Math.log(max) + pad)];
    }
    const pad = Math.max((max - min) * 0.04, Math.abs(max) * 1e-4, 1e-12);
    return [min - pad, max + pad];
  };
}

function download(name, blob) {
  const link = h("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/**
 * A chart of `curves` in `container`: each {label, x, y, color?, measured?, dash?, lower?, upper?,
 * width?, line?, pointSize?}; a band is drawn between lower and upper; `line: false` draws the
 * points alone (a scatter: x ascending, one point per x). Options: title, yLabel, xLabel, xName
 * (the x axis in the toolbar's words, default "step"), xDigits (the cursor's x readout in
 * significant digits; default a whole step), height, logX, logY, xExtent ([min, max] of the x
 * axis at rest), group (a Set: charts whose step axes zoom together), toolbar (false: none),
 * name (file names of the downloads).
 */
export function chart(container, curves, options = {}) {
  const state = {
    logX: options.logX ?? false,
    logY: options.logY ?? false,
    curves,
    plot: null,
  };
  const group = options.group;
  const name = options.name || "chart";
  const holder = h("div", { class: "plot" });
  const toggle = (label, key, title) => {
    const button = h("button", { type: "button", "aria-pressed": String(state[key]), title }, label);
    button.addEventListener("click", () => {
      state[key] = !state[key];
      button.setAttribute("aria-pressed", String(state[key]));
      build();
    });
    return button;
  };
  const tools = h(
    "div",
    { class: "toolbar", role: "toolbar", "aria-label": `${options.title || name} tools` },
    toggle(`log ${options.xName || "step"}`, "logX", `logarithmic ${options.xName || "step"} axis`),
    toggle("log loss", "logY", `logarithmic ${options.yLabel || "loss"} axis`),
    h("button", { type: "button", onclick: () => zoomTail(0.2), title: "the last 20% of the steps; the loss range follows" }, "tail 20%"),
    h("button", { type: "button", onclick: () => zoomTail(1), title: "all steps (or double-click the chart)" }, "reset zoom"),
    h("button", { type: "button", onclick: () => downloadCsv() }, "CSV"),
    h("button", { type: "button", onclick: () => downloadPng() }, "PNG"),
  );
  fill(container, 
    ...(options.title ? [h("div", { class: "title" }, options.title)] : []),
    ...(options.toolbar === false ? [] : [tools]),
    holder,
  );

  function extent() {
    if (options.xExtent) return options.xExtent;
    let lo = Infinity;
    let hi = -Infinity;
    for (const curve of state.curves) {
      for (const x of curve.x) {
        if (state.logX && x <= 0) continue;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
    }
    return Number.isFinite(lo) ? [lo, hi] : [0, 1];
  }

  function zoomTail(share) {
    const [lo, hi] = extent();
    const from = share >= 1 ? lo : hi - share * (hi - lo);
    state.plot.setScale("x", { min: from, max: hi });
  }

  function build() {
    const { columns, meta } = align(state.curves, { logX: state.logX });
    const xValue = options.xDigits ? (u, v) => fmt(v, options.xDigits) : (u, v) => (v === null ? "–" : Math.round(v));
    const series = [{ label: options.xLabel || "step", value: xValue }];
    const bands = [];
    meta.forEach(({ curve, suffix }, k) => {
      const color = curve.color || COLORS[k % COLORS.length];
      const isBand = suffix !== "";
      const sparse = curve.x.length <= 400;
      const scatter = curve.line === false;
      series.push({
        label: isBand ? `${curve.label}${suffix}` : curve.label,
        stroke: isBand ? alpha(color, 0.5) : color,
        width: isBand ? 1 : curve.width || (curve.measured ? 1.25 : 2),
        dash: curve.dash,
        spanGaps: true,
        ...(scatter ? { paths: () => null } : {}),
        points: { show: !isBand && (scatter || (curve.measured && sparse && curve.markers !== false)), size: curve.pointSize || (scatter ? 6 : 4), fill: color },
        value: (u, v) => fmt(v),
      });
      if (suffix === " upper") bands.push({ series: [k + 1, k + 2], fill: alpha(color, 0.22) });
    });
    const [lo, hi] = extent();
    const width = Math.max(320, holder.clientWidth || container.clientWidth || 800);
    const opts = {
      width,
      height: options.height || 320,
      series,
      bands,
      legend: { live: true },
      cursor: { drag: { x: true, y: false }, sync: options.syncKey ? { key: options.syncKey } : undefined },
      scales: {
        // uPlot ranges x with this at rest (min, max: the data's ends) and on every zoom (the
        // zoom's ends): at rest, the shared extent, so that charts of one page align.
        x: {
          time: false,
          distr: state.logX ? 3 : 1,
          range: (u, min, max) => (min === columns[0][0] && max === columns[0].at(-1) ? [lo, hi] : [min, max]),
        },
        y: { distr: state.logY ? 3 : 1, range: yRange(state.logY) },
      },
      axes: [
        { label: options.xLabel || "step" },
        {
          label: options.yLabel || "loss",
          size: 64,
          space: (options.height || 320) < 200 ? 18 : 30,
          values: (u, splits) => splits.map((v) => fmt(v, 4)),
          splits: state.logY ? (u, i, min, max) => niceLogSplits(min, max) : undefined,
        },
      ],
      hooks: {
        setScale: [
          (u, key) => {
            // What is in view, for people reading the DOM (and the tests): x and y ranges.
            const { x, y } = u.scales;
            container.dataset.view = JSON.stringify([x.min, x.max, y.min, y.max]);
            if (key !== "x" || !group || group.syncing) return;
            group.syncing = true;
            for (const other of group) {
              if (other !== api && other.plot) other.plot.setScale("x", { min: u.scales.x.min, max: u.scales.x.max });
            }
            group.syncing = false;
          },
        ],
      },
    };
    if (state.plot) state.plot.destroy();
    state.plot = new uPlot(opts, columns, holder);
    state.columns = columns;
    container.dataset.axes = `${state.logX ? "log" : "linear"} step, ${state.logY ? "log" : "linear"} ${options.yLabel || "loss"}`;
    container.dataset.series = JSON.stringify(
      series.slice(1).map((s, k) => ({ label: s.label, points: columns[k + 1].filter((v) => v !== null).length })),
    );
  }

  function downloadCsv() {
    const labels = state.plot.series.map((s) => s.label);
    const rows = [labels.map((l) => `"${String(l).replaceAll('"', '""')}"`).join(",")];
    const columns = state.columns;
    for (let i = 0; i < columns[0].length; i++) rows.push(columns.map((c) => (c[i] === null ? "" : c[i])).join(","));
    download(`${name}.csv`, new Blob([`${rows.join("\n")}\n`], { type: "text/csv" }));
  }

  function downloadPng() {
    const source = state.plot.ctx.canvas;
    const canvas = document.createElement("canvas");
    const titleHeight = 28 * devicePixelRatio;
    canvas.width = source.width;
    canvas.height = source.height + titleHeight;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#1d2330";
    ctx.font = `${14 * devicePixelRatio}px system-ui, sans-serif`;
    const legend = state.plot.series.slice(1).map((s) => s.label).filter((l) => !/ (upper|lower)$/.test(l));
    ctx.fillText(`${options.title || name}: ${legend.join(", ")}`, 8 * devicePixelRatio, 19 * devicePixelRatio);
    ctx.drawImage(source, 0, titleHeight);
    canvas.toBlob((blob) => download(`${name}.png`, blob), "image/png");
  }

  const onResize = () => {
    if (state.plot && holder.isConnected) state.plot.setSize({ width: Math.max(320, holder.clientWidth), height: options.height || 320 });
  };
  window.addEventListener("resize", onResize);

  const api = {
    get plot() {
      return state.plot;
    },
    update(next) {
      const zoomed = state.plot && state.plot.scales.x.min > extent()[0] + 1e-9;
      const view = zoomed ? { min: state.plot.scales.x.min, max: state.plot.scales.x.max } : null;
      state.curves = next;
      build();
      if (view) state.plot.setScale("x", view);
    },
    destroy() {
      window.removeEventListener("resize", onResize);
      if (group) group.delete(api);
      if (state.plot) state.plot.destroy();
    },
  };
  build();
  if (group) group.add(api);
  return api;
}

/** A sparkline of a logged curve on a small canvas (the last 95% of its steps, so the first
 *  steps' high loss does not flatten the rest). */
export function sparkline(steps, loss, { width = 140, height = 32, color = COLORS[0] } = {}) {
  const canvas = h("canvas", { class: "spark", width: width * devicePixelRatio, height: height * devicePixelRatio, role: "img" });
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const n = steps.length;
  if (n < 2) return canvas;
  const start = Math.floor(n * 0.05);
  const xs = steps.slice(start);
  const ys = loss.slice(start);
  const every = Math.max(1, Math.floor(xs.length / width));
  let lo = Infinity;
  let hi = -Infinity;
  for (const y of ys) {
    if (y < lo) lo = y;
    if (y > hi) hi = y;
  }
  const ctx = canvas.getContext("2d");
  ctx.scale(devicePixelRatio, devicePixelRatio);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.25;
  ctx.beginPath();
  const x0 = xs[0];
  const span = xs[xs.length - 1] - x0 || 1;
  for (let i = 0; i < xs.length; i += every) {
    const x = ((xs[i] - x0) / span) * (width - 2) + 1;
    const y = height - 2 - ((ys[i] - lo) / (hi - lo || 1)) * (height - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.stroke();
  canvas.setAttribute("aria-label", `loss from ${fmt(ys[0], 4)} to ${fmt(ys[ys.length - 1], 4)}`);
  return canvas;
}
