"""The dashboard in a real browser: Debian's Chromium (headless, driven by Playwright, no browser
download) against a real ``uvicorn app.main:app`` on loopback, with real fits of the MPL 25M
curves. Each page loads with no console error and no request leaving loopback; the run page
draws the logged curve, the forecast and its band; a candidate added on the what-if page is
drawn with the final loss ``POST /v1/predictions`` gives; points appended to a running job are
drawn within 10 s. Screenshots go to ``$LOSSCAST_TEST_ARTIFACTS`` (default: the test's
temporary folder) for a person to look at.

Skipped, saying why, where Chromium or Playwright is missing (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
import pytest

from bench.server import free_port, start_server
from tests.curves import DATA, schedule_specs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STATIC = Path(__file__).resolve().parents[1] / "app" / "dashboard" / "static"
#: Points of the job's cosine_24000 log posted at first; the rest are appended during the test.
JOB_POINTS = 110


def _columns(name: str) -> dict[str, list]:
    lines = (DATA / "25M" / f"{name}.csv").read_text().split()
    rows = [line.split(",") for line in lines[1:]]
    return {"step": [int(r[0]) for r in rows], "loss": [float(r[2]) for r in rows]}


def _run_body(name: str, points: int | None = None) -> dict:
    columns = _columns(name)
    return {
        "name": f"25M/{name}" if points is None else f"25M/{name}-job",
        "group": "25M",
        "metadata": {"model_size": "25M", "source": "MPL"},
        "schedule": schedule_specs()[name],
        "points": {"step": columns["step"][:points], "loss": columns["loss"][:points]},
    }


# ---------------------------------------------------------------------------------------------
# Without a browser: the page and its files are served by the service itself.


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in page.text
    for path in ("/static/js/app.js", "/static/style.css", "/static/vendor/uplot/uPlot.min.css"):
        assert client.get(path).status_code == 200, path
    library = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert library.status_code == 200 and "uPlot" in library.text
    licence = client.get("/static/vendor/uplot/LICENSE").text
    assert "MIT License" in licence and "Leon Sorokin" in licence
    assert client.get("/static/nope.js").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]  # the API's document is the API's


def test_laws_say_the_coordinates_of_a_fit_s_covariance(client):
    """The fit page turns the covariance's diagonal into each parameter's spread with these."""
    laws = client.get("/v1/laws").json()["laws"]
    coordinates = {p["name"]: p["coordinate"] for p in laws["lr_annealing"]["parameters"]}
    assert coordinates["decay"] == "log1m" and "log" in coordinates.values()


def test_the_dashboard_s_own_files_name_no_other_host():
    for path in [STATIC / "index.html", STATIC / "style.css", *(STATIC / "js").glob("*.js")]:
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


def test_the_vendored_library_is_the_pinned_release():
    pinned = json.loads((STATIC.parents[0] / "package-lock.json").read_text())
    version = pinned["packages"]["node_modules/uplot"]["version"]
    vendored = json.loads((STATIC / "vendor" / "uplot" / "package.json").read_text())
    assert vendored["name"] == "uplot" and vendored["version"] == version


# ---------------------------------------------------------------------------------------------
# In Chromium.


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("LOSSCAST_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("dashboard-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def service(browser, tmp_path_factory, jax_cache_dir):
    """A real server with two complete 25M runs and a running job (the first 110 points of
    cosine_24000) of one group, and one lr_annealing fit with bands of the three."""
    folder = tmp_path_factory.mktemp("dashboard-service")
    port = free_port()
    environment = {
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_REFIT": "0",  # the job's page must redraw on its points, not on a refit
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    with (folder / "server.log").open("w") as log:
        server, _ = start_server(folder, port, log, environment)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=300) as http:
                ids = []
                for body in (
                    _run_body("constant_24000"),
                    _run_body("wsdcon_9"),
                    _run_body("cosine_24000", JOB_POINTS),
                ):
                    response = http.post("/v1/runs", json=body)
                    assert response.status_code == 201, response.text
                    ids.append(response.json()["id"])
                fit = http.post("/v1/fits", json={"run_ids": ids, "law": "lr_annealing"})
                assert fit.status_code == 201, fit.text
                yield {"base": base, "http": http, "runs": ids, "job": ids[2], "fit": fit.json()}
        finally:
            server.terminate()
            server.wait(30)


class Watched:
    """A browser page whose console errors, uncaught exceptions and requests are recorded."""

    def __init__(self, page, base: str):
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))
        self.base = base

    def open(self, fragment: str, ready: str):
        self.page.goto(f"{self.base}/#/{fragment}")
        self.page.wait_for_selector(ready, timeout=60_000)

    def assert_clean(self, http_errors: bool = False):
        """No console error (``http_errors``: but the browser's own line for a 4xx answer the
        page showed as a message) and no request off loopback."""
        errors = [e for e in self.errors if not (http_errors and "Failed to load resource" in e)]
        assert not errors, errors
        outside = [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and urlsplit(url).hostname != "127.0.0.1"
        ]
        assert not outside, outside
        assert self.requests, "no request recorded"


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    watched = Watched(context.new_page(), service["base"])
    yield watched
    context.close()


def _series(page, selector: str) -> dict[str, int]:
    text = page.page.get_attribute(selector, "data-series")
    return {item["label"]: item["points"] for item in json.loads(text)}


def test_runs_page_lists_runs_with_sparklines_and_their_fit(page, service, artifacts):
    page.open("runs", "tr[data-run-id] canvas.spark")
    page.page.wait_for_function("document.querySelectorAll('canvas.spark').length == 3")
    page.page.wait_for_selector("text=lr_annealing")
    assert page.page.locator("tr[data-run-id]").count() == 3
    page.page.screenshot(path=artifacts / "runs.png")
    page.page.fill("input[name=q]", "wsdcon")
    page.page.press("input[name=q]", "Enter")
    page.page.wait_for_function("document.querySelectorAll('tr[data-run-id]').length == 1")
    assert "q=wsdcon" in page.page.url  # a deep link
    page.page.go_back()
    page.page.wait_for_function("document.querySelectorAll('tr[data-run-id]').length == 3")
    # Group and metadata (key=value, values as JSON) as GET /v1/runs filters them.
    page.page.fill("input[name=group]", "25M")
    page.page.fill("input[name=meta]", 'source="MPL", model_size="25M"')
    page.page.press("input[name=meta]", "Enter")
    page.page.wait_for_function("location.hash.includes('meta=')")
    page.page.wait_for_function("document.querySelectorAll('tr[data-run-id]').length == 3")
    page.page.fill("input[name=meta]", 'source="elsewhere"')
    page.page.press("input[name=meta]", "Enter")
    page.page.wait_for_selector("text=No runs match")
    page.assert_clean()


def test_run_page_draws_logged_forecast_and_band_and_redraws_on_new_points(
    page, service, artifacts
):
    job = service["job"]
    page.open(f"runs/{job}", "#run-chart[data-series]")
    series = _series(page, "#run-chart")
    assert series["logged"] == JOB_POINTS
    forecast = [label for label in series if label.startswith("forecast")]
    assert forecast == [
        "forecast, 90% band",
        "forecast, 90% band upper",
        "forecast, 90% band lower",
    ]
    assert all(series[label] >= 300 for label in forecast)  # to the end of the schedule
    assert _series(page, "#lr-chart")["learning rate"] >= 300
    assert _series(page, "#residual-chart")["logged / predicted − 1"] == JOB_POINTS
    final = page.page.text_content("[data-field='forecast final loss']")
    expected = service["http"].get(f"/v1/runs/{job}/forecast").json()["curve"]["loss"][-1]
    assert f"{expected:.5g}" in final and "at step 23999" in final
    page.page.screenshot(path=artifacts / "run.png")

    # Zoom to the last 20% of the steps: the loss range follows the data in view, and the
    # learning rate and residual charts follow the step range.
    before = json.loads(page.page.get_attribute("#run-chart", "data-view"))
    page.page.click("#run-chart button:text('tail 20%')")
    page.page.wait_for_function(
        f"JSON.parse(document.querySelector('#run-chart').dataset.view)[0] > {before[0]}"
    )
    after = json.loads(page.page.get_attribute("#run-chart", "data-view"))
    assert after[0] == pytest.approx(23999 - 0.2 * (23999 - before[0])) and after[1] == 23999
    assert after[3] - after[2] < 0.2 * (before[3] - before[2])  # the tail's loss range
    assert json.loads(page.page.get_attribute("#lr-chart", "data-view"))[:2] == after[:2]
    # A drag on the chart zooms the same way (the README's screenshot).
    page.page.click("#run-chart button:text('reset zoom')")
    box = page.page.locator("#run-chart .u-over").bounding_box()
    middle = box["y"] + box["height"] / 2
    page.page.mouse.move(box["x"] + 0.35 * box["width"], middle)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + box["width"] - 1, middle, steps=5)
    page.page.mouse.up()
    dragged = json.loads(page.page.get_attribute("#run-chart", "data-view"))
    assert before[0] < dragged[0] < after[0] and dragged[3] - dragged[2] < before[3] - before[2]
    page.page.screenshot(path=artifacts / "run-zoomed.png")
    page.page.click("#run-chart button:text('reset zoom')")

    columns = _columns("cosine_24000")
    more = {"step": columns["step"][JOB_POINTS:140], "loss": columns["loss"][JOB_POINTS:140]}
    appended = service["http"].post(f"/v1/runs/{job}/points", json=more)
    assert appended.status_code == 200 and appended.json()["appended"] == 30
    began = time.monotonic()
    page.page.wait_for_function(
        "document.querySelector('#run-chart').dataset.numPoints == '140'", timeout=10_000
    )
    assert time.monotonic() - began < 10
    assert _series(page, "#run-chart")["logged"] == 140
    page.page.screenshot(path=artifacts / "run-after-append.png")
    page.assert_clean()


def test_what_if_candidate_is_drawn_with_the_api_s_final_loss(page, service, artifacts):
    fit_id = service["fit"]["id"]
    wsd = {
        "name": "wsd 20%",
        "schedule": {**schedule_specs()["cosine_24000"], "type": "wsd", "decay_fraction": 0.2},
    }
    wsd["schedule"].pop("min_lr")
    page.open(f"whatif?fit={fit_id}&c={quote(json.dumps([wsd]))}", "#whatif-chart[data-series]")
    # Add a longer cosine through the family form.
    page.page.select_option("select[name=type]", "cosine")
    page.page.fill("input[name=name]", "cosine 36k")
    page.page.fill("input[data-param=total_steps]", "36000")
    page.page.fill("input[data-param=min_lr]", "3e-5")
    page.page.click("form[aria-label='schedule from a family'] button[type=submit]")
    page.page.wait_for_selector("tr[data-candidate='1']")
    series = _series(page, "#whatif-chart")
    assert {"wsd 20%", "cosine 36k", "cosine 36k upper", "cosine 36k lower"} <= set(series)
    candidates = json.loads(
        page.page.evaluate("new URLSearchParams(location.hash.split('?')[1]).get('c')")
    )
    assert candidates[1]["schedule"] == {
        "type": "cosine",
        "peak_lr": 3e-4,
        "total_steps": 36000,
        "num_warmup_steps": 2160,
        "min_lr": 3e-5,
    }
    answer = service["http"].post(
        "/v1/predictions", json={"fit_id": fit_id, "candidates": candidates}
    )
    assert answer.status_code == 200, answer.text
    for k, curve in enumerate(answer.json()["candidates"]):
        shown = float(page.page.get_attribute(f"tr[data-candidate='{k}']", "data-final"))
        assert math.isclose(shown, curve["loss"][-1], rel_tol=1e-12)
        assert curve["steps"][-1] == candidates[k]["schedule"]["total_steps"] - 1
    # Ranked by final loss, each against the baseline (the first candidate).
    rows = page.page.locator("#whatif-ranking tbody tr")
    finals = [float(rows.nth(i).get_attribute("data-final")) for i in range(rows.count())]
    assert finals == sorted(finals) and len(finals) == 2
    difference = page.page.text_content("tr[data-candidate='1'] td:nth-child(5)")
    gap = answer.json()["candidates"][1]["loss"][-1] - answer.json()["candidates"][0]["loss"][-1]
    assert difference.startswith(f"{'+' if gap >= 0 else '-'}{abs(gap):.4g}"), difference
    page.page.screenshot(path=artifacts / "whatif.png")

    page.page.fill("input[data-param=peak_lr]", "-1")
    page.page.click("form[aria-label='schedule from a family'] button[type=submit]")
    page.page.wait_for_selector("#whatif-messages .error")
    assert "peak_lr" in page.page.text_content("#whatif-messages .error")
    page.assert_clean(http_errors=True)


def test_what_if_takes_a_pasted_per_step_schedule(page, service):
    """Per-step rates pasted as numbers (a linear warmup, then constant): predicted from the
    fit like any candidate, with the same final loss as POST /v1/predictions."""
    rates = np.concatenate([np.linspace(3e-5, 3e-4, 500), np.full(2500, 3e-4)])
    page.open(f"whatif?fit={service['fit']['id']}", "form[aria-label='schedule pasted']")
    page.page.fill(
        "form[aria-label='schedule pasted'] textarea", " ".join(f"{r:.6g}" for r in rates)
    )
    page.page.fill("form[aria-label='schedule pasted'] input", "per-step 3k")
    page.page.click("form[aria-label='schedule pasted'] button[type=submit]")
    page.page.wait_for_selector("tr[data-candidate='0']")
    shown = float(page.page.get_attribute("tr[data-candidate='0']", "data-final"))
    candidate = {"name": "per-step 3k", "lr_per_step": [float(f"{r:.6g}") for r in rates]}
    body = {"fit_id": service["fit"]["id"], "candidates": [candidate]}
    answer = service["http"].post("/v1/predictions", json=body).json()["candidates"][0]
    assert math.isclose(shown, answer["loss"][-1], rel_tol=1e-12) and answer["total_steps"] == 3000
    assert "per-step rates (3000 steps)" in page.page.text_content("#whatif-ranking")
    page.assert_clean()


def test_charts_download_csv_and_png_and_switch_to_log_axes_from_the_keyboard(
    page, service, artifacts
):
    fit_id = service["fit"]["id"]
    page.open(f"fits/{fit_id}", "#fit-chart [data-series]")
    chart = "#fit-chart [data-series]"
    series = _series(page, chart)
    with page.page.expect_download() as csv_download:
        page.page.click(f"{chart} button:text('CSV')")
    table = Path(csv_download.value.path()).read_text().splitlines()
    header = table[0].split(",")
    assert header[0] == '"step"' and header[1:] == [f'"{label}"' for label in series]
    rows = [row.split(",") for row in table[1:]]
    for k, label in enumerate(series, start=1):  # every drawn point is in the file
        assert sum(1 for row in rows if row[k] != "") == series[label]
    with page.page.expect_download() as png_download:
        page.page.click(f"{chart} button:text('PNG')")
    png = Path(png_download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (artifacts / "fit-chart-download.png").write_bytes(png)
    # The keyboard: Tab reaches the toolbar's buttons, Space and Enter press them.
    assert page.page.get_attribute(chart, "data-axes") == "linear step, linear loss"
    page.page.focus(f"{chart} button:text('log step')")
    page.page.keyboard.press("Tab")  # to "log loss"
    page.page.keyboard.press("Space")
    page.page.wait_for_function(
        f"document.querySelector('{chart}').dataset.axes == 'linear step, log loss'"
    )
    assert _series(page, chart) == series
    page.page.keyboard.press("Tab")  # to "tail 20%"
    page.page.keyboard.press("Enter")
    page.page.wait_for_function(
        f"JSON.parse(document.querySelector('{chart}').dataset.view)[0] > 19000"
    )
    page.assert_clean()


def test_a_run_without_a_fit_shows_its_points_and_fits_at_a_click(page, service, artifacts):
    """No fit yet: the logged curve and the 404's hint; "Fit this run" fits it (here with
    lr_annealing: law auto compiles the other law's kernels, minutes on 2 busy cores) and the
    page draws the forecast without a reload."""
    body = {**_run_body("wsdcon_9"), "name": "25M/wsdcon_9-unfitted", "group": None}
    run = service["http"].post("/v1/runs", json=body).json()
    page.open(f"runs/{run['id']}", "#run-chart[data-series]")
    assert _series(page, "#run-chart") == {"logged": 95}
    assert "has no fit yet" in page.page.text_content(".note")
    page.page.wait_for_selector("select[aria-label='law to fit']")
    assert page.page.input_value("select[aria-label='law to fit']") == "auto"  # the default
    page.page.select_option("select[aria-label='law to fit']", "lr_annealing")
    page.page.click("button:text('Fit this run')")
    page.page.wait_for_function(
        "JSON.parse(document.querySelector('#run-chart').dataset.series || '[]').length == 4",
        timeout=120_000,
    )
    assert _series(page, "#run-chart")["forecast, 90% band"] >= 300
    fits = service["http"].get("/v1/fits", params={"run_id": run["id"]}).json()["items"]
    assert [fit["law"] for fit in fits] == ["lr_annealing"]
    page.page.screenshot(path=artifacts / "run-fitted-at-a-click.png")
    page.assert_clean(http_errors=True)


def test_fit_page_shows_parameters_metrics_and_fitted_curves(page, service, artifacts):
    fit = service["fit"]
    page.open(f"fits/{fit['id']}", "#fit-chart [data-series]")
    params = page.page.text_content("#fit-params")
    assert all(name in params for name in fit["params"])
    assert page.page.locator("#fit-metrics tbody tr").count() == 3
    series = _series(page, "#fit-chart [data-series]")
    assert series["25M/wsdcon_9 logged"] == series["25M/wsdcon_9 fitted"] > 50
    page.page.screenshot(path=artifacts / "fit.png", full_page=True)
    page.assert_clean()


def test_plan_page_draws_the_cooldown_curve_per_shape(page, service, artifacts):
    fit_id = service["fit"]["id"]
    page.open(f"plan?fit={fit_id}", "form[aria-label=plan]")
    page.page.fill("input[name=fractions]", "0.1,0.2,0.3,0.4")
    page.page.click("form[aria-label=plan] button[type=submit]")
    page.page.wait_for_selector("#plan-chart[data-series]", timeout=60_000)
    series = _series(page, "#plan-chart")
    assert series == {"linear cooldown": 4, "cosine cooldown": 4, "1-sqrt cooldown": 4}
    assert "kind=cooldown" in page.page.url
    page.page.screenshot(path=artifacts / "plan.png", full_page=True)
    page.assert_clean()


@pytest.mark.parametrize(
    ("kind", "inputs", "expect"),
    [
        ("steps_to_target", {"target": "3.4"}, ["final loss", "target"]),
        ("budget", {"steps": "36000"}, ["constant_36000", "constant_36000 upper"]),
        ("optimise", {}, ["optimised rate (knots)"]),
    ],
)
def test_plan_page_draws_steps_to_target_budget_and_optimised_schedule(
    page, service, artifacts, kind, inputs, expect
):
    fit_id = service["fit"]["id"]
    page.open(f"plan?fit={fit_id}", "form[aria-label=plan]")
    page.page.select_option("select[name=kind]", kind)
    for name, value in inputs.items():
        page.page.fill(f"input[name={name}]", value)
    page.page.click("form[aria-label=plan] button[type=submit]")
    page.page.wait_for_selector("#plan-chart[data-series], #plan-result .error", timeout=120_000)
    assert not page.page.locator("#plan-result .error").count(), page.page.text_content(
        "#plan-result"
    )
    series = _series(page, "#plan-chart")
    assert all(series.get(label, 0) > 0 for label in expect), series
    planned = page.page.text_content("#plan-planned")
    assert "predicted final loss" in planned
    width = page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1360, f"the page is {width} px wide"  # long specs fold, nothing overflows
    page.page.screenshot(path=artifacts / f"plan-{kind}.png", full_page=True)
    page.assert_clean()


def test_api_errors_are_shown_as_messages(page, service):
    page.page.goto(f"{service['base']}/#/runs/run_nope")
    page.page.wait_for_selector(".error")
    assert "404" in page.page.text_content(".error")
    page.assert_clean(http_errors=True)


def test_run_page_of_a_24k_step_run_is_drawn_within_a_second(page, service, artifacts):
    """A run logged at every one of its 24,000 steps (the 25M cosine_24000 curve, interpolated
    linearly between its 171 logged points: only the number of points matters here), with the
    forecast of the module's fit (``?fit=``, with bands): its page is drawn within 1 s of the
    navigation."""
    columns = _columns("cosine_24000")
    steps = np.arange(columns["step"][0], 24_000)
    loss = np.interp(steps, columns["step"], columns["loss"])
    body = {**_run_body("cosine_24000"), "name": "25M/cosine_24000-every-step", "group": None}
    body["points"] = {"step": steps.tolist(), "loss": loss.tolist()}
    http = service["http"]
    run = http.post("/v1/runs", json=body)
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    fragment = f"runs/{run_id}?fit={service['fit']['id']}"
    forecast = http.get(f"/v1/runs/{run_id}/forecast", params={"fit_id": service["fit"]["id"]})
    forecast.raise_for_status()  # the kernels compiled for these shapes: a page's first view
    timings = []
    for _ in range(3):
        page.open(fragment, "#run-chart[data-drawn-ms]")
        series = _series(page, "#run-chart")
        assert series["logged"] == steps.size and series["forecast, 90% band upper"] > 0
        timings.append(int(page.page.get_attribute("#run-chart", "data-drawn-ms")))
        page.page.goto("about:blank")
    page.open(fragment, "#run-chart[data-drawn-ms]")
    page.page.screenshot(path=artifacts / "run-24k.png")
    print(f"run page of {steps.size} points drawn after {timings} ms")
    assert min(timings) < 1000, timings
    page.assert_clean()


def test_a_service_with_api_keys_asks_the_page_for_one(browser, tmp_path, jax_cache_dir):
    """With keys, the page's reads are 401s shown as messages until the user gives a key in
    the header; the key is kept across reloads and sent as a Bearer token."""
    from app.auth import create_key
    from app.storage import Store

    store = Store(f"sqlite:///{tmp_path / 'bench.db'}")  # start_server's database file
    store.create_schema()
    _, token = create_key(store, "dashboard test", ["write"])
    store.close()
    port = free_port()
    environment = {"LOSSCAST_WARMUP": "0", "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir)}
    with (tmp_path / "server.log").open("w") as log:
        server, _ = start_server(tmp_path, port, log, environment)
    base = f"http://127.0.0.1:{port}"
    try:
        headers = {"Authorization": f"Bearer {token}"}
        run = httpx.post(f"{base}/v1/runs", json=_run_body("wsdcon_9"), headers=headers)
        assert run.status_code == 201, run.text
        context = browser.new_context()
        page = Watched(context.new_page(), base)
        page.open("runs", ".error")
        message = page.page.text_content(".error")
        assert "401" in message and "API key" in message
        page.page.fill("#key-form input", token)
        page.page.press("#key-form input", "Enter")
        page.page.wait_for_selector("tr[data-run-id] canvas.spark")
        page.page.reload()
        page.page.wait_for_selector("tr[data-run-id] canvas.spark")
        assert page.page.locator("tr[data-run-id]").count() == 1
        page.assert_clean(http_errors=True)
        context.close()
    finally:
        server.terminate()
        server.wait(30)


def test_a_fit_past_the_sync_limit_shows_its_job_s_progress_then_the_fit(
    browser, tmp_path, jax_cache_dir, artifacts
):
    """With a synchronous fit limit of 10 ms, "Fit this run" is answered 202 with a running job
    (finished by the web process itself: no worker): the page says the fit became a background
    job, shows its stage while it polls the job, and draws the forecast when the job is done,
    with the job's last stage and the fit it made."""
    port = free_port()
    environment = {
        "LOSSCAST_SYNC_FIT_SECONDS": "0.01",
        "LOSSCAST_LOCAL_WORKER": "0",
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_REFIT": "0",
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    with (tmp_path / "server.log").open("w") as log:
        server, _ = start_server(tmp_path, port, log, environment)
    base = f"http://127.0.0.1:{port}"
    try:
        body = {**_run_body("wsdcon_9"), "group": None}
        run = httpx.post(f"{base}/v1/runs", json=body, timeout=30).json()
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = Watched(context.new_page(), base)
        page.open(f"runs/{run['id']}", "select[aria-label='law to fit']")
        page.page.select_option("select[aria-label='law to fit']", "lr_annealing")
        page.page.click("button:text('Fit this run')")
        page.page.wait_for_selector("#fit-job[data-status]", timeout=60_000)
        shown = []  # what the page said of the job, each change once
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = page.page.evaluate(
                "(() => { const box = document.querySelector('#fit-job');"
                " return [box.dataset.status, box.dataset.progress, box.textContent]; })()"
            )
            if not shown or shown[-1] != state:
                shown.append(state)
            if state[0] in ("done", "failed"):
                break
            time.sleep(0.05)
        job_id = page.page.get_attribute("#fit-job", "data-job")
        job = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=30).json()
        assert job["status"] == "done", (job, shown)
        status, progress, text = shown[0]
        assert status == "running" and "background job" in text and job_id in text, shown
        stages = ["fitting", "cross_validating", "intervals"]  # lr_annealing's, in order
        seen = [json.loads(p) for s, p, _ in shown if s == "running" and p]
        assert all(p["steps"] == 3 and stages[p["step"] - 1] == p["stage"] for p in seen), seen
        assert [p["step"] for p in seen] == sorted(p["step"] for p in seen), seen
        assert all("polling the job" in t for s, _, t in shown if s == "running"), shown
        status, progress, text = shown[-1]
        assert status == "done" and json.loads(progress) == job["progress"]
        assert "stage intervals, step 3 of 3" in text and f"fit {job['fit_id']}" in text
        page.page.wait_for_function(
            "JSON.parse(document.querySelector('#run-chart').dataset.series || '[]').length == 4",
            timeout=60_000,
        )
        fits = httpx.get(f"{base}/v1/fits", params={"run_id": run["id"]}, timeout=30).json()
        assert [fit["id"] for fit in fits["items"]] == [job["fit_id"]]
        assert page.page.get_attribute(f"#fit-job a[href='#/fits/{job['fit_id']}']", "href")
        print(f"the page showed the job as {[(s, p) for s, p, _ in shown]}")
        page.page.screenshot(path=artifacts / "run-fit-as-a-job.png")
        page.assert_clean(http_errors=True)
        context.close()
    finally:
        server.terminate()
        server.wait(30)


# ---------------------------------------------------------------------------------------------
# Continual pre-training: the cpt page on tinycpt's real curves.


@pytest.fixture(scope="module")
def cpt_service(browser, tmp_path_factory, jax_cache_dir):
    """A real server with tinycpt's base run and two branches on both domains, and one cpt fit
    of them (tests/test_api_cpt.py's quick fit: its non-linear parameters held, no bands)."""
    from bench.cpt import load_study
    from tests.test_api_cpt import DATA, QUICK, _fit, post_study

    base_curve, branches = load_study(DATA)
    folder = tmp_path_factory.mktemp("dashboard-cpt")
    port = free_port()
    environment = {
        "LOSSCAST_WARMUP": "0",
        "LOSSCAST_REFIT": "0",
        "LOSSCAST_LOCAL_WORKER": "0",
        "LOSSCAST_JAX_CACHE_DIR": str(jax_cache_dir),
    }
    with (folder / "server.log").open("w") as log:
        server, _ = start_server(folder, port, log, environment)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=600) as http:
                ids = post_study(http, base_curve, {name: branches[name] for name in QUICK})
                at_step = base_curve.lr.size - 1
                fit = _fit(http, ids, QUICK, intervals=False)
                yield {"base": base, "http": http, "runs": ids, "fit": fit, "at_step": at_step}
        finally:
            server.terminate()
            server.wait(30)


def _cpt_plan(cpt_service, **fields) -> dict:
    body = {
        "kind": "cpt",
        "fit_id": cpt_service["fit"]["id"],
        "continues": {"run_id": cpt_service["runs"]["base", "old"], "at_step": 1399},
        "total_steps": 1000,
        "peaks": [3e-4, 7.5e-4, 1.5e-3, 3e-3],
        "replays": [0.0, 0.1, 0.25],
        **fields,
    }
    response = cpt_service["http"].post("/v1/plans", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _cpt_page_plan(page, ceiling: str) -> None:
    page.page.fill("input[name=peaks]", "3e-4,7.5e-4,1.5e-3,3e-3")
    page.page.fill("input[name=replays]", "0,0.1,0.25")
    page.page.fill("input[name=ceiling]", ceiling)
    page.page.evaluate("window.shownBefore = document.querySelector('#cpt-result')")
    page.page.click("form[aria-label='cpt plan'] button[type=submit]")
    page.page.wait_for_function(  # the new plan's answer, not the one shown before
        "(() => { const box = document.querySelector('#cpt-result');"
        " return box && box !== window.shownBefore"
        " && box.querySelector('[data-series], .error'); })()",
        timeout=120_000,
    )
    assert not page.page.locator("#cpt-result .error").count(), page.page.text_content(
        "#cpt-result"
    )


def test_cpt_page_draws_the_api_s_trade_off_front_and_chosen_option(
    browser, cpt_service, artifacts
):
    """The page prefills the fit's base run, branch step and budget; under a ceiling on the
    old domain that binds (the median of the options' old-domain finals) it draws every option
    by shape, the Pareto front, the chosen option and the ceiling, and tables the front, all as
    the API's plan has them; with a ceiling no option meets, it says so and marks the option
    that forgets least."""
    assert cpt_service["at_step"] == 1399
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = Watched(context.new_page(), cpt_service["base"])
    fit = cpt_service["fit"]
    page.open("runs", "tr[data-run-id]")
    page.page.click("a[data-nav=cpt]")
    page.page.wait_for_selector("form[aria-label='cpt plan']")
    assert page.page.input_value("select[name=fit]") == fit["id"]
    assert page.page.input_value("select[name=run]") == cpt_service["runs"]["base", "old"]
    assert page.page.input_value("input[name=at]") == "1399"
    assert page.page.input_value("input[name=steps]") == "1000"  # the branches' length

    free = _cpt_plan(cpt_service)["result"]
    ceiling = round(float(np.median([o["old_final"] for o in free["options"]])), 4)
    _cpt_page_plan(page, str(ceiling))
    out = _cpt_plan(cpt_service, old_ceiling=ceiling)
    plan, best = out["result"], out["result"]["best"]
    assert best["old_final"] <= ceiling < free["best"]["old_final"]  # the ceiling binds
    series = _series(page, "#cpt-chart")
    for shape in ("cosine", "linear", "wsd", "constant"):
        finals = {o["new_final"] for o in plan["options"] if o["shape"] == shape}
        assert series[f"{shape} options"] == len(finals), (shape, series)
    front = plan["pareto_front"]
    assert series["Pareto front"] == len({o["new_final"] for o in front}) >= 3
    assert series["chosen"] == 1 and series[f"old-domain ceiling {ceiling:.5g}"] > 0
    rows = page.page.locator("#cpt-front tbody tr")
    assert rows.count() == len(front)
    for k, option in enumerate(front):
        cells = rows.nth(k).locator("td").all_text_contents()
        assert float(cells[0]) == pytest.approx(option["peak_lr"], rel=1e-3)
        assert cells[1] == option["shape"]
        assert float(cells[2]) == pytest.approx(option["replay"], abs=1e-9)
        assert float(cells[3]) == pytest.approx(option["new_final"], rel=1e-4)
        assert float(cells[4]) == pytest.approx(option["old_final"], rel=1e-4)
    chosen = page.page.locator("#cpt-front tr[data-chosen=true] td").all_text_contents()
    assert float(chosen[0]) == pytest.approx(best["peak_lr"], rel=1e-3)
    assert (chosen[1], chosen[-1]) == (best["shape"], "chosen")

    def field(name: str) -> str:
        return page.page.text_content(f"#cpt-chosen td[data-field='{name}']")

    assert float(field("peak lr")) == pytest.approx(best["peak_lr"], rel=1e-4)
    assert field("shape") == best["shape"]
    assert float(field("new-domain final")) == pytest.approx(best["new_final"], rel=1e-4)
    assert field("planned") == out["planned"]["name"]
    assert f"{len(plan['options'])} ({len(front)} on the Pareto front)" == field("options")
    print(
        f"cpt plan under ceiling {ceiling:.4f}: {len(plan['options'])} options, "
        f"{len(front)} on the front, chosen {best['shape']} peak {best['peak_lr']:g} replay "
        f"{best['replay']:g}: new {best['new_final']:.4f}, old {best['old_final']:.4f}"
    )
    page.page.screenshot(path=artifacts / "cpt.png", full_page=True)

    _cpt_page_plan(page, "0.5")  # below every option's old-domain final
    page.page.wait_for_selector("#cpt-result .note")
    nothing = _cpt_plan(cpt_service, old_ceiling=0.5)
    assert nothing["result"]["best"] is None
    assert page.page.text_content("#cpt-result .note") == nothing["result"]["note"]
    assert _series(page, "#cpt-chart")["planned (least forgetting)"] == 1
    assert field("planned") == nothing["planned"]["name"]
    least = min(plan["options"], key=lambda o: o["old_final"])
    assert float(field("old-domain final")) == pytest.approx(least["old_final"], rel=1e-4)

    # a branch's run page and the fit's page under the cpt fit link here, not to what-if/plan
    branch = cpt_service["runs"]["cos_3e-3", "new"]
    page.open(f"runs/{branch}", "#run-chart[data-series]")
    page.page.click("a:text('Plan a continuation with this fit')")
    page.page.wait_for_selector("form[aria-label='cpt plan']")
    assert page.page.input_value("select[name=fit]") == fit["id"]
    assert not page.page.locator("a:text('Plan a budget')").count()
    page.open(f"fits/{fit['id']}", "#fit-params")
    link = page.page.get_attribute("a:text('Plan a continuation with this fit')", "href")
    assert link == f"#/cpt?fit={fit['id']}"
    page.assert_clean()
    context.close()
