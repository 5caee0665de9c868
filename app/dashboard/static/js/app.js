// The dashboard's router: views deep-linked by the URL's hash (#/runs, #/runs/ID, #/fits/ID,
// #/whatif?fit=ID, #/plan?fit=ID, #/cpt?fit=ID), so links can be shared and the back button works.
import { apiKey, setApiKey } from "./api.js";
import { cptView } from "./cpt.js";
import { errorBox, fill, h } from "./dom.js";
import { fitView, fitsView } from "./fit.js";
import { planView } from "./plan.js";
import { runView } from "./run.js";
import { runsView } from "./runs.js";
import { whatifView } from "./whatif.js";

const ROUTES = [
  [/^runs$/, runsView, "runs"],
  [/^runs\/([^/]+)$/, runView, "runs"],
  [/^fits$/, fitsView, "fits"],
  [/^fits\/([^/]+)$/, fitView, "fits"],
  [/^whatif$/, whatifView, "whatif"],
  [/^plan$/, planView, "plan"],
  [/^cpt$/, cptView, "cpt"],
];

let cleanup = null;

export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  return { path: decodeURIComponent(path || "runs"), params: new URLSearchParams(search) };
}

async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const main = document.getElementById("view");
  const { path, params } = parseHash();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (route && a.dataset.nav === route[2]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  fill(main, h("p", { class: "muted" }, "loading…"));
  if (!route) {
    fill(main, errorBox(new Error(`no page ${path}`)), h("a", { href: "#/runs" }, "runs"));
    return;
  }
  const [pattern, view] = route;
  const match = path.match(pattern);
  try {
    cleanup = (await view(main, params, ...match.slice(1))) || null;
  } catch (error) {
    fill(main, errorBox(error));
  }
  document.body.dataset.ready = path;
}

const keyForm = document.getElementById("key-form");
keyForm.key.value = apiKey();
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(keyForm.key.value.trim());
  render();
});

window.addEventListener("hashchange", render);
render();
