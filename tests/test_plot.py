"""``losscast plot``: PNG and SVG files of a fit (logged vs fitted, a held-out run), of candidate
predictions with their bands, and of a cooldown plan, written by matplotlib from a fit of the MPL
25M curves; the files are opened and their size, series and numbers checked against the same
commands' JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import httpx
import numpy as np
import pytest

from losscast_cli import main as cli
from tests.curves import DATA

pytest.importorskip("matplotlib", reason="losscast plot needs matplotlib (losscast[plot])")

from matplotlib import image  # noqa: E402

CSVS = [str(DATA / "25M" / f"{name}.csv") for name in ("cosine_24000", "constant_24000")]
HELD_OUT = str(DATA / "25M" / "wsd_20000_24000.csv")
SCHEDULES = str(DATA / "schedules.json")
COSINE = "cosine:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,min_lr=3e-5"
WSD = "wsd:peak_lr=3e-4,total_steps=24000,num_warmup_steps=2160,decay_fraction=0.2,min_lr=3e-5"
SVG = "{http://www.w3.org/2000/svg}"
#: matplotlib's default colours of the first four series (C0..C3).
TAB = {"C0": (31, 119, 180), "C1": (255, 127, 14), "C2": (44, 160, 44), "C3": (214, 39, 40)}


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory) -> Path:
    """``losscast fit`` in-process on two 25M runs (cosine, constant), with bands."""
    path = tmp_path_factory.mktemp("plot") / "fit.json"
    assert cli.main(["fit", *CSVS, "--schedules", SCHEDULES, "--out", str(path)]) == 0
    return path


def _pixels_of(png: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    colours = (png[..., :3] * 255).round().astype(int)
    return int(np.sum(np.all(np.abs(colours - np.array(rgb)) <= tolerance, axis=-1)))


def _svg(path: Path) -> tuple[ElementTree.Element, dict[str, ElementTree.Element], str]:
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    ids = {element.get("id"): element for element in root.iter() if element.get("id")}
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    return root, ids, text


def _json_of(argv: list[str], capsys) -> dict:
    capsys.readouterr()
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plot_fit_png_draws_each_run_logged_and_fitted_and_the_held_out_run(
    fit_file, tmp_path, capsys
):
    out = tmp_path / "fit.png"
    argv = ["plot", "fit", *CSVS, "--schedules", SCHEDULES, "--fit", str(fit_file)]
    assert cli.main([*argv, "--held-out", HELD_OUT, "--out", str(out), "--dpi", "100"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(data) < 400_000
    png = image.imread(out)
    assert png.shape[:2] == (520, 900)  # 9 x 5.2 inches at 100 dpi
    for name, rgb in list(TAB.items())[:3]:  # two fitted runs and the held-out one
        assert _pixels_of(png, rgb) > 100, name
    assert _pixels_of(png, TAB["C3"]) < 50  # and nothing else


def test_plot_fit_svg_names_the_runs_and_marks_the_held_out_one(fit_file, tmp_path):
    out = tmp_path / "fit.svg"
    argv = ["plot", "fit", *CSVS, "--schedules", SCHEDULES, "--fit", str(fit_file)]
    assert cli.main([*argv, "--held-out", HELD_OUT, "--out", str(out)]) == 0
    _, ids, text = _svg(out)
    assert {"logged-0", "fitted-0", "logged-1", "fitted-1", "logged-2", "held-out-2"} <= set(ids)
    assert "cosine_24000 fitted (PredE" in text and "wsd_20000_24000 held out (PredE" in text
    assert "lr_annealing: logged vs fitted" in text


def test_plot_predict_svg_draws_bands_and_the_predicted_final_losses(fit_file, tmp_path, capsys):
    source = ["--fit", str(fit_file), "--schedule", COSINE, "--name", "cosine"]
    source += ["--schedule", WSD, "--name", "wsd"]
    out = tmp_path / "predict.svg"
    assert cli.main(["plot", "predict", *source, "--out", str(out)]) == 0
    _, ids, text = _svg(out)
    assert {"curve-0", "curve-1", "band-0", "band-1"} <= set(ids)
    assert "90% bands" in text
    # The same fit's prediction, as the API's application layer gives it (inline: no band).
    answer = _json_of(["predict", *source], capsys)
    for curve in answer["candidates"]:
        assert f"{curve['name']}: {curve['loss'][-1]:.4f}" in text
    size = out.stat().st_size
    assert 10_000 < size < 300_000


def test_plot_cooldown_png_and_svg_show_the_plan_s_best_cooldown(fit_file, tmp_path, capsys):
    source = ["--fit", str(fit_file), "--schedule", COSINE, "--fractions", "0.1,0.2,0.3"]
    svg, png = tmp_path / "cooldown.svg", tmp_path / "cooldown.png"
    assert cli.main(["plot", "cooldown", *source, "--out", str(svg)]) == 0
    assert cli.main(["plot", "cooldown", *source, "--out", str(png), "--dpi", "80"]) == 0
    plan = _json_of(["plan", "cooldown", *source], capsys)
    best = plan["result"]["best"]
    _, ids, text = _svg(svg)
    assert {f"cooldown-{shape}" for shape in plan["result"]["final_loss"]} <= set(ids)
    assert f"best {best['decay_type']} cooldown over {best['decay_fraction']:g}" in text
    assert f"({best['final_loss']:.4f})" in text
    pixels = image.imread(png)
    assert pixels.shape[:2] == (416, 720)
    assert all(_pixels_of(pixels, rgb) > 100 for rgb in list(TAB.values())[:3])


def test_plot_refuses_an_unknown_format_and_a_missing_fit_with_exit_2(fit_file, tmp_path, capsys):
    out = tmp_path / "fit.jpg"
    argv = ["plot", "predict", "--fit", str(fit_file), "--schedule", COSINE, "--out", str(out)]
    assert cli.main(argv) == 2
    assert "give a .png or .svg file" in capsys.readouterr().err and not out.exists()
    argv = ["plot", "predict", "--schedule", COSINE, "--out", str(tmp_path / "x.png")]
    assert cli.main(argv) == 2
    assert "exactly one of --fit FILE" in capsys.readouterr().err


def test_plot_through_a_service_draws_what_the_in_process_plot_draws(
    client, fit_file, tmp_path, monkeypatch
):
    """``--url``: the runs posted, fitted and forecast by the service (here the suite's app,
    through its TestClient) give the same figure's numbers as the same plot in-process."""
    service = cli.Service.__new__(cli.Service)
    service.httpx, service.client, service.url = httpx, client, "http://testserver"
    argv = ["plot", "fit", *CSVS, "--schedules", SCHEDULES, "--held-out", HELD_OUT]
    local, remote = tmp_path / "local.svg", tmp_path / "remote.svg"
    assert cli.main([*argv, "--out", str(local)]) == 0
    monkeypatch.setattr(cli, "_service", lambda args: service)
    assert cli.main([*argv, "--url", "http://testserver", "--out", str(remote)]) == 0
    _, local_ids, local_text = _svg(local)
    _, remote_ids, remote_text = _svg(remote)
    series = {name for name in remote_ids if name.split("-")[0] in ("logged", "fitted", "held")}
    assert series == {"logged-0", "fitted-0", "logged-1", "fitted-1", "logged-2", "held-out-2"}
    assert series <= set(local_ids)
    assert remote_text == local_text  # the same labels: names and PredE to 3 digits
