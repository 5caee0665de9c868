// Small DOM helpers: elements from a tag, attributes and children; messages; number formats.
import { ApiError } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An error box for an API error (its message and request id) or any other error. */
export function errorBox(error, what = "") {
  const prefix = what ? `${what}: ` : "";
  if (error instanceof ApiError) {
    const id = error.requestId ? ` (request ${error.requestId})` : "";
    const status = error.status ? `HTTP ${error.status}: ` : "";
    return h("div", { class: "error", role: "alert" }, `${prefix}${status}${error.message}${id}`);
  }
  return h("div", { class: "error", role: "alert" }, `${prefix}${error.message || error}`);
}

export function note(text) {
  return h("div", { class: "note" }, text);
}

export function fmt(value, digits = 5) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e6)) {
    return value.toExponential(Math.max(2, digits - 2));
  }
  return Number(value.toPrecision(digits)).toString();
}

export function pct(value, digits = 2) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(digits)}%`;
}

export function ago(when) {
  const seconds = (Date.now() - new Date(when).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** The hash of a view with its parameters (empty ones left out). */
export function link(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

/** Replace `element`'s children with `children`, leaving out null, undefined and false. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}
