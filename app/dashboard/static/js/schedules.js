// Schedule inputs: a form for every schedule family, built from the service's own vocabulary
// (GET /v1/schedules: each family's parameters, required ones and defaults), or a pasted JSON
// spec, or a pasted per-step array of rates.
import { api } from "./api.js";
import { h } from "./dom.js";

let vocabulary = null;

export async function scheduleTypes() {
  if (!vocabulary) vocabulary = await api("/v1/schedules");
  return vocabulary;
}

function parseValue(text) {
  const value = text.trim();
  if (value === "") return undefined;
  if (value === "true" || value === "false") return value === "true";
  if (/^[-+0-9.eE]+$/.test(value) && Number.isFinite(Number(value))) return Number(value);
  if (value.startsWith("[")) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

/** The per-step rates in `text`: a JSON array or numbers separated by commas or white space. */
export function parseRates(text) {
  const trimmed = text.trim();
  const values = trimmed.startsWith("[") ? JSON.parse(trimmed) : trimmed.split(/[\s,]+/).filter(Boolean).map(Number);
  if (!Array.isArray(values) || !values.length || values.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
    throw new Error("per-step rates: give a JSON array or numbers separated by commas or spaces");
  }
  return values;
}

/**
 * A schedule editor: a family select and its fields (prefilled from `base`, a spec), a JSON
 * spec box and a per-step box. `onAdd({name, schedule} | {name, lr_per_step})` gets the
 * candidate; a bad input is reported by `onError`.
 */
export async function scheduleEditor({ base = {}, onAdd, onError, submitLabel = "Add candidate" }) {
  const types = await scheduleTypes();
  const family = h("select", { name: "type", "aria-label": "schedule family" }, Object.keys(types).map((t) => h("option", { value: t, selected: t === (base.type || "wsd") }, t)));
  const fields = h("div", { class: "fields" });
  const name = h("input", { name: "name", placeholder: "name (optional)", "aria-label": "candidate name" });
  const summary = h("p", { class: "muted" });
  const prefill = { ...base };
  if (!("decay_fraction" in prefill) && !("num_decay_steps" in prefill)) prefill.decay_fraction = 0.2;

  function showFields() {
    const info = types[family.value];
    summary.textContent = info.summary;
    fields.replaceChildren(
      ...info.parameters.map((p) => {
        const given = prefill[p];
        const shown = given === undefined || given === null ? "" : Array.isArray(given) ? JSON.stringify(given) : String(given);
        const fallback = info.defaults[p];
        const placeholder = info.required.includes(p) ? "required" : fallback === null || fallback === undefined ? "" : `default ${fallback}`;
        return h("label", {}, p, h("input", { name: p, value: shown, placeholder, dataset: { param: p } }));
      }),
    );
  }
  family.addEventListener("change", showFields);
  showFields();

  const fromForm = h("form", { class: "card", "aria-label": "schedule from a family" });
  fromForm.append(
    h("div", { class: "toolbar" }, h("label", {}, "family", family), h("label", {}, "name", name)),
    summary,
    fields,
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, submitLabel)),
  );
  fromForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const spec = { type: family.value };
    for (const input of fields.querySelectorAll("input")) {
      const value = parseValue(input.value);
      if (value !== undefined) spec[input.dataset.param] = value;
    }
    onAdd({ name: name.value.trim() || undefined, schedule: spec });
  });

  const pasted = h("textarea", { "aria-label": "a JSON schedule spec or per-step rates", placeholder: '{"type": "cosine", "peak_lr": 3e-4, "total_steps": 24000, "num_warmup_steps": 2160, "min_lr": 3e-5}  — or per-step rates: [0.0003, 0.0003, …]' });
  const pastedName = h("input", { placeholder: "name (optional)", "aria-label": "pasted candidate name" });
  const fromText = h("form", { class: "card", "aria-label": "schedule pasted" });
  fromText.append(
    h("div", { class: "muted" }, "or paste a spec (JSON) or a per-step array of rates"),
    pasted,
    h("div", { class: "toolbar" }, pastedName, h("button", { type: "submit" }, submitLabel)),
  );
  fromText.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = pasted.value.trim();
    const label = pastedName.value.trim() || undefined;
    try {
      if (text.startsWith("{")) onAdd({ name: label, schedule: JSON.parse(text) });
      else onAdd({ name: label, lr_per_step: parseRates(text) });
    } catch (error) {
      onError(error);
    }
  });
  return h("div", {}, fromForm, fromText);
}

/** A short description of a candidate's schedule. */
export function describe(candidate) {
  if (candidate.lr_per_step) return `per-step rates (${candidate.lr_per_step.length} steps)`;
  const { type, ...rest } = candidate.schedule;
  return `${type}: ${Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")}`;
}
