"""Continual pre-training over HTTP (issue 14), on the real curves of tests/data/tinycpt: a base
run and its branches on two domains posted as runs that continue runs, the ``cpt`` law fitted to
them, a held-out branch predicted on both domains against its measured curves, a ``cpt`` plan's
trade-off, the live forecast of a branch logged part-way (``GET /v1/runs/{id}/forecast``), and bad
input answered with 4xx and the error body.

The fits hold the law's non-linear parameters (exponents, the shift's rates and powers, the
annealing momentum, the replay's damping) at round values of a full fit of the same training
runs -- the base and every branch but ``cos_7.5e-4`` (``bench/cpt.py``'s fold for that branch: 132
s on 2 cores; new-domain PredE 0.0053, old 0.0078, finals +0.38% / -1.04%) -- so that the fits
here solve the linear coefficients in seconds. Nothing of the held-out branch enters them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.cpt import REPLAY, load_study
from fitting.metrics import curve_metrics

DATA = Path(__file__).parent / "data" / "tinycpt"
HELD_OUT = "cos_7.5e-4"
DOMAINS = {"old": "python", "new": "c"}
#: Round values of the non-linear parameters of the full fit on the base and the four other
#: branches (both domains).
NONLINEAR = {
    "alpha_old": 0.1712,
    "E_old": 3980.0,
    "gamma_old": 1.205,
    "alpha_new": 0.615,
    "E_new": 511.0,
    "beta_new": 0.175,
    "gamma_new": 0.725,
    "decay": 0.9486,
    "K_replay": 16.8,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    folder = tmp_path_factory.mktemp("cpt")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'cpt.db'}", warmup=False, sync_fit_seconds=3600
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def study():
    return load_study(DATA)


def _body(curve, domain: str, *, parent: str | None = None, at_step: int = 0) -> dict:
    steps, loss = curve.logged[domain]
    body = {
        "name": f"{curve.name}/{DOMAINS[domain]}",
        "group": curve.name,
        "domain": DOMAINS[domain],
        "lr_per_step": curve.lr.tolist(),
        # a base run's 0-based step s is after update s + 1 (the CSV's 1-based steps)
        "points": {
            "step": (steps - 1 if parent is None else steps).tolist(),
            "loss": loss.tolist(),
        },
    }
    if parent is not None:
        body["continues"] = {"run_id": parent, "at_step": at_step}
        body["replay"] = REPLAY.get(curve.name, 0.0)
    return body


def post_study(client, base, branches) -> dict:
    """Post the base on both domains, then each of ``branches`` (curves by name) on both,
    continuing the base's Python run at its last step, through ``client`` (a TestClient or an
    ``httpx.Client`` of a real server); the run ids by (curve, domain)."""
    ids = {}
    for domain in DOMAINS:
        response = client.post("/v1/runs", json=_body(base, domain))
        assert response.status_code == 201, response.text
        ids["base", domain] = response.json()["id"]
    last = base.lr.size - 1
    for name, curve in branches.items():
        for domain in DOMAINS:
            body = _body(curve, domain, parent=ids["base", "old"], at_step=last)
            response = client.post("/v1/runs", json=body)
            assert response.status_code == 201, response.text
            ids[name, domain] = response.json()["id"]
    return ids


@pytest.fixture(scope="module")
def posted(client, study):
    """Run ids by (curve, domain) of the base and every branch (:func:`post_study`)."""
    return post_study(client, *study)


def _fit(client, posted, branches, runs=(), **options) -> dict:
    """cpt fitted to the base's new-domain run, ``branches``' runs on both domains and ``runs``
    (ids); the base's old-domain run comes in as their parent."""
    run_ids = [posted["base", "new"]] + [posted[name, d] for name in branches for d in DOMAINS]
    run_ids += list(runs)
    body = {"run_ids": run_ids, "law": "cpt", "fixed": NONLINEAR, **options}
    began = time.perf_counter()
    response = client.post("/v1/fits", json=body)
    print(f"cpt fit of {len(run_ids) + 1} runs, {options}: {time.perf_counter() - began:.1f} s")
    assert response.status_code == 201, response.text
    return response.json()


#: The quick fit's branches: the highest re-warm and the replayed one (so that both the shift's
#: drive and the replay's damping are seen), no bands.
QUICK = ("cos_3e-3", "cos_1.5e-3_replay25")


@pytest.fixture(scope="module")
def quick_fit(client, posted):
    return _fit(client, posted, QUICK, intervals=False)


@pytest.fixture(scope="module")
def cpt_fit(client, posted, study):
    """cpt fitted to the base's new-domain run and the four training branches (the base's
    old-domain run comes in as their parent), with bands: 5 fits (4 folds), minutes."""
    _, branches = study
    return _fit(client, posted, [name for name in branches if name != HELD_OUT])


def _held_out_candidates(study, posted) -> list[dict]:
    base, branches = study
    curve = branches[HELD_OUT]
    return [
        {
            "name": f"{HELD_OUT}/{DOMAINS[domain]}",
            "continues": {"run_id": posted["base", "old"], "at_step": base.lr.size - 1},
            "domain": DOMAINS[domain],
            "lr_per_step": curve.lr.tolist(),
            "steps": curve.logged[domain][0].tolist(),
        }
        for domain in DOMAINS
    ]


def _errors(prediction: dict, study) -> dict[str, tuple[float, float]]:
    """Per domain: (PredE, final-loss error) of the held-out branch's prediction."""
    _, branches = study
    out = {}
    for domain, curve in zip(DOMAINS, prediction["candidates"], strict=True):
        steps, truth = branches[HELD_OUT].logged[domain]
        assert curve["steps"] == steps.tolist() and curve["total_steps"] == 1000
        loss = np.asarray(curve["loss"])
        out[domain] = (curve_metrics(loss, truth)["pred_e"], loss[-1] / truth[-1] - 1)
    return out


def _error(response, status: int, loc_end: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["request_id"] and body["detail"], body
    if loc_end is not None:
        assert body["detail"][0]["loc"][-1] == loc_end, body
    return body["detail"][0]["msg"]


def test_bad_runs_that_continue_runs_are_4xx_with_the_error_body(client, posted, study):
    base, branches = study
    branch = branches["none"]
    parent = posted["base", "old"]
    good = _body(branch, "new", parent=parent, at_step=base.lr.size - 1)

    def post(**change):
        return client.post("/v1/runs", json={**good, **change})

    msg = _error(post(continues={"run_id": "run_nope", "at_step": 3}), 422, "run_id")
    assert "run_nope" in msg
    msg = _error(post(continues={"run_id": parent, "at_step": base.lr.size}), 422, "at_step")
    assert "[0, 1399]" in msg
    _error(post(replay=1.0), 422)
    _error(post(replay=-0.1), 422)
    msg = _error(post(continues=None, replay=0.25), 422)
    assert "continues" in msg
    # the phase's rates must be declared: logged lr alone is not interpolated across a branch
    points = {**good["points"], "lr": [3e-4] * len(good["points"]["step"])}
    _error(post(lr_per_step=None, points=points), 422, "continues")
    # steps count from the branch: step T (after the last update) is fine, T + 1 is not
    steps = good["points"]["step"][:-1] + [1001]
    _error(post(points={**good["points"], "step": steps}), 422)
    # a parent outlives the runs that continue it
    _error(client.delete(f"/v1/runs/{parent}"), 409)
    assert client.get(f"/v1/runs/{parent}").status_code == 200


def test_runs_keep_their_branch_domain_and_replay(client, posted, study):
    base, _ = study
    run = client.get(f"/v1/runs/{posted['cos_1.5e-3_replay25', 'new']}").json()
    assert run["domain"] == "c" and run["replay"] == 0.25
    assert run["continues"] == {"run_id": posted["base", "old"], "at_step": base.lr.size - 1}
    assert run["first_step"] == 0 and run["total_steps"] == 1000 and run["last_step"] == 1000
    parent = client.get(f"/v1/runs/{posted['base', 'old']}").json()
    assert parent["continues"] is None and parent["replay"] == 0.0
    children = client.get("/v1/runs", params={"continues": posted["base", "old"]}).json()
    assert children["total"] == 10
    on_c = client.get("/v1/runs", params={"domain": "c", "continues": posted["base", "old"]})
    assert {r["name"].split("/")[1] for r in on_c.json()["items"]} == {"c"}


def test_cpt_fit_maps_the_parents_domain_to_old_and_adds_the_parent(quick_fit, posted):
    assert quick_fit["law"] == "cpt" and quick_fit["converged"], quick_fit["message"]
    assert quick_fit["domains"] == {"old": "python", "new": "c"}
    assert posted["base", "old"] in quick_fit["run_ids"]  # the parent, not asked for
    assert len(quick_fit["run_ids"]) == 6
    assert quick_fit["params"]["K_replay"] == NONLINEAR["K_replay"]
    assert quick_fit["uncertainty"] is None  # intervals: false
    for metrics in quick_fit["metrics"].values():  # in-sample, both domains
        assert metrics["pred_e"] < 0.02


def test_cpt_predicts_a_held_out_branch_on_both_domains(client, quick_fit, posted, study):
    # bench/cpt.py's fold of this branch (every parameter free, four branches): new-domain
    # PredE 0.0053 and final +0.38%, old 0.0078 and -1.04%; this fit sees two branches only.
    response = client.post(
        "/v1/predictions",
        json={"fit_id": quick_fit["id"], "candidates": _held_out_candidates(study, posted)},
    )
    assert response.status_code == 200, response.text
    prediction = response.json()
    assert prediction["law"] == "cpt" and prediction["level"] is None
    errors = _errors(prediction, study)
    print("held-out branch (PredE, final error) per domain:", errors)
    assert errors["new"][0] <= 0.008 and abs(errors["new"][1]) <= 0.015  # measured 0.0054, +0.39%
    assert errors["old"][0] <= 0.010 and abs(errors["old"][1]) <= 0.015  # measured 0.0067, -0.81%
    # the curve starts at the checkpoint, on the base's last logged losses, at the rate there
    curve = prediction["candidates"][0]  # old domain
    assert curve["steps"][0] == 0 and curve["lr"][0] == pytest.approx(3e-4)
    assert curve["loss"][0] == pytest.approx(study[0].logged["old"][1][-1], rel=0.01)


def test_cpt_plan_returns_the_trade_off_of_peak_shape_and_replay(client, quick_fit, posted, study):
    base, branches = study
    body = {
        "kind": "cpt",
        "fit_id": quick_fit["id"],
        "continues": {"run_id": posted["base", "old"], "at_step": base.lr.size - 1},
        "total_steps": 1000,
        "peaks": [3e-4, 7.5e-4, 1.5e-3, 3e-3],
        "replays": [0.0, 0.1, 0.25],
    }
    free = client.post("/v1/plans", json=body)
    assert free.status_code == 200, free.text
    plan = free.json()["result"]
    options = plan["options"]
    assert len(options) == 4 * 4 * 3 and plan["num_warmup_steps"] == 50
    assert plan["min_lr"] == pytest.approx(3e-4)
    new = {(o["peak_lr"], o["shape"], o["replay"]): o["new_final"] for o in options}
    old = {(o["peak_lr"], o["shape"], o["replay"]): o["old_final"] for o in options}
    # replay trades new-domain loss for less forgetting, at every peak and shape
    for peak, shape, replay in new:
        if replay:
            assert new[peak, shape, replay] > new[peak, shape, 0.0]
            assert old[peak, shape, replay] < old[peak, shape, 0.0]
    # the grid's cosine options are the measured branches' schedules: their predicted finals
    # order as the measured ones (cos_3e-3 < cos_7.5e-4 on the new domain)
    assert new[3e-3, "cosine", 0.0] < new[7.5e-4, "cosine", 0.0]
    measured = {n: b.logged["new"][1][-1] for n, b in branches.items() if n.startswith("cos_")}
    assert measured["cos_3e-3"] < measured["cos_7.5e-4"]
    # without a ceiling the best is the lowest new-domain final; it is on the Pareto front
    best = plan["best"]
    assert best["new_final"] == min(new.values()) and best["pareto"]
    front = plan["pareto_front"]
    assert [o["new_final"] for o in front] == sorted(o["new_final"] for o in front)
    assert all(a["old_final"] > b["old_final"] for a, b in zip(front, front[1:], strict=False))
    assert free.json()["planned"]["final_loss"] == best["new_final"]
    # a ceiling on the old domain picks the best new-domain final among the options within it
    ceiling = float(np.median(list(old.values())))
    capped = client.post("/v1/plans", json={**body, "old_ceiling": ceiling}).json()["result"]
    within = [o for o in capped["options"] if o["old_final"] <= ceiling]
    assert capped["best"]["new_final"] == min(o["new_final"] for o in within)
    assert capped["best"]["old_final"] <= ceiling < best["old_final"]
    none = client.post("/v1/plans", json={**body, "old_ceiling": 0.5}).json()
    assert none["result"]["best"] is None and "no option" in none["result"]["note"]


def test_bad_cpt_predictions_and_plans_are_4xx(client, quick_fit, posted, study):
    base, _ = study
    (old, _new) = _held_out_candidates(study, posted)
    fit_id = quick_fit["id"]

    def predict(**change):
        return client.post(
            "/v1/predictions", json={"fit_id": fit_id, "candidates": [{**old, **change}]}
        )

    assert "python" in _error(predict(domain="rust"), 422, "domain")
    _error(predict(domain=None), 422, "domain")
    _error(predict(continues={"run_id": "run_nope", "at_step": 0}), 422, "run_id")
    _error(predict(continues={"run_id": posted["none", "old"], "at_step": 3}), 422, "run_id")
    _error(predict(continues={"run_id": posted["base", "old"], "at_step": 1400}), 422)
    _error(predict(steps=[0, 1001]), 422, "steps")
    _error(predict(replay=True), 422)
    plan = {
        "kind": "cpt",
        "fit_id": fit_id,
        "continues": {"run_id": posted["base", "old"], "at_step": base.lr.size - 1},
        "total_steps": 1000,
    }
    _error(client.post("/v1/plans", json={**plan, "replays": [1.0]}), 422)
    _error(client.post("/v1/plans", json={**plan, "shapes": ["sawtooth"]}), 422)
    _error(client.post("/v1/plans", json={**plan, "continues": {"run_id": "x", "at_step": 0}}), 422)
    too_big = {**plan, "total_steps": 5_000_000, "peaks": [1e-3] * 32, "replays": [0.1] * 32}
    assert _error(client.post("/v1/plans", json=too_big), 422).startswith("the plan's")
    # a schedule-law plan under a cpt fit, and cpt's own under a schedule law
    cooldown = {"kind": "cooldown", "fit_id": fit_id, "schedule": {"type": "cosine",
                "peak_lr": 3e-4, "total_steps": 1000}}  # fmt: skip
    _error(client.post("/v1/plans", json=cooldown), 422, "kind")
    curve = f"/v1/fits/{fit_id}/curve?schedule=constant:peak_lr=3e-4,total_steps=100"
    assert "continues" in _error(client.get(curve), 422, "fit_id")
    # a schedule law refuses runs that continue runs
    refused = client.post(
        "/v1/fits", json={"run_ids": [posted["none", "new"]], "law": "lr_annealing"}
    )
    assert "cpt" in _error(refused, 422, "law")
    # cpt needs continuing runs, and the domains of every run
    lone = client.post("/v1/fits", json={"run_ids": [posted["base", "old"]], "law": "cpt"})
    assert "continue" in _error(lone, 422, "run_ids")


@pytest.mark.slow
def test_auto_on_runs_that_continue_runs_chooses_among_the_continual_laws(client, posted):
    # the quick fit's runs with law auto: cross-validated leaving one branch (both domains'
    # curves) out at a time, then fitted; about a minute on 2 cores
    fit = _fit(client, posted, QUICK, law="auto")
    selection = fit["selection"]
    assert fit["law"] == "cpt" and selection["chosen"] == "cpt"
    assert [c["law"] for c in selection["candidates"]] == ["cpt"]
    assert selection["scheme"] == "leave-one-group-out" and "continual laws" in selection["note"]
    assert 0 < selection["candidates"][0]["pred_e"] < 0.03
    assert fit["uncertainty"]["folds"] == 2 and fit["uncertainty"]["other_laws"] == []


@pytest.mark.slow
def test_cpt_bands_on_a_held_out_branch(client, cpt_fit, posted, study):
    # the fit of the four training branches with its bands (6 fits: a few minutes on 2 cores)
    assert cpt_fit["validation"]["scheme"] == "leave-one-group-out"
    # one fold per branch (its two curves); the base's curves are never held out
    assert len(cpt_fit["validation"]["folds"]) == 8
    assert cpt_fit["uncertainty"]["folds"] == 4
    response = client.post(
        "/v1/predictions",
        json={"fit_id": cpt_fit["id"], "candidates": _held_out_candidates(study, posted)},
    )
    assert response.status_code == 200, response.text
    prediction = response.json()
    assert prediction["level"] == 0.9
    errors = _errors(prediction, study)
    print("held-out branch with bands (PredE, final error):", errors)
    _, branches = study
    for domain, curve in zip(DOMAINS, prediction["candidates"], strict=True):
        truth = branches[HELD_OUT].logged[domain][1]
        lower, upper = np.asarray(curve["lower"]), np.asarray(curve["upper"])
        print(domain, "final", truth[-1], "band", lower[-1], upper[-1])
        assert lower[-1] <= truth[-1] <= upper[-1]
        assert np.all(lower < curve["loss"]) and np.all(curve["loss"] < upper)


def test_cli_plans_and_plots_the_cpt_trade_off(client, quick_fit, posted, tmp_path, capsys):
    """``losscast plan cpt --url`` and ``losscast plot cpt`` (the service here is the module's
    app through its TestClient), against the same plan asked over HTTP."""
    import json
    from xml.etree import ElementTree

    import httpx

    from losscast_cli import main as cli

    service = cli.Service.__new__(cli.Service)
    service.httpx, service.client, service.url = httpx, client, "http://testserver"
    branch = f"{posted['base', 'old']}:1399"
    args = ["--url", "http://testserver", "--fit-id", quick_fit["id"], "--continues", branch]
    args += ["--total-steps", "1000", "--peaks", "3e-4,1.5e-3,3e-3", "--replays", "0,0.25"]
    original = cli._service
    cli._service = lambda parsed: service if parsed.url else None
    try:
        assert cli.main(["plan", "cpt", *args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert cli.main(["plan", "cpt", *args, "--old-ceiling", "2.0"]) == 0
        table = capsys.readouterr().out
        plot = tmp_path / "cpt.svg"
        assert cli.main(["plot", "cpt", *args, "--old-ceiling", "2.0", "--out", str(plot)]) == 0
    finally:
        cli._service = original
    body = {"kind": "cpt", "fit_id": quick_fit["id"], "total_steps": 1000,
            "continues": {"run_id": posted["base", "old"], "at_step": 1399},
            "peaks": [3e-4, 1.5e-3, 3e-3], "replays": [0.0, 0.25]}  # fmt: skip
    assert (
        out["result"]["options"] == client.post("/v1/plans", json=body).json()["result"]["options"]
    )
    assert len(out["result"]["options"]) == 3 * 4 * 2
    assert "Pareto front" in table and "old-domain ceiling 2" in table
    best = client.post("/v1/plans", json={**body, "old_ceiling": 2.0}).json()["planned"]
    assert f"{best['final_loss']:.5f}" in table
    ids = {e.get("id") for e in ElementTree.parse(plot).getroot().iter() if e.get("id")}
    assert {"pareto-front", "best", "options-cosine-0", "options-wsd-0.25"} <= ids
    # a saved answer draws the same figure's series
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(out))
    again = tmp_path / "again.svg"
    assert cli.main(["plot", "cpt", "--plan", str(saved), "--out", str(again)]) == 0
    redrawn = {e.get("id") for e in ElementTree.parse(again).getroot().iter() if e.get("id")}
    assert {"pareto-front", "best", "options-cosine-0"} <= redrawn
    assert cli.main(["plot", "cpt", "--out", str(tmp_path / "x.svg")]) == 2
    assert "--plan" in capsys.readouterr().err


# -- the live forecast of a continuation: GET /v1/runs/{id}/forecast under a cpt fit ------------

#: A job part-way through its phase: the held-out branch's first logged points (steps 0 .. 375
#: of its 1000), its whole schedule declared.
CUT = 16


@pytest.fixture(scope="module")
def part_way(client, posted, study):
    """Run ids by domain of the held-out branch cut part-way (a fixture of the tests below only,
    posted after those that count the base's children)."""
    base, branches = study
    ids = {}
    for domain in DOMAINS:
        body = _body(branches[HELD_OUT], domain, parent=posted["base", "old"], at_step=1399)
        points = {key: values[:CUT] for key, values in body["points"].items()}
        name = f"{HELD_OUT}/part"
        body = {**body, "name": f"{name}/{DOMAINS[domain]}", "group": name, "points": points}
        response = client.post("/v1/runs", json=body)
        assert response.status_code == 201, response.text
        ids[domain] = response.json()["id"]
    return ids


@pytest.fixture(scope="module")
def live_fit(client, posted, part_way):
    """cpt fitted, with bands, to the quick fit's runs and the part-way branch's two: the fit a
    forecast of the job without fit_id uses (its latest)."""
    return _fit(client, posted, QUICK, runs=part_way.values())


def _continuing_candidate(curve: dict, domain: str, posted, study) -> dict:
    """POST /v1/predictions' candidate of the held-out branch on ``domain`` at ``curve``'s steps."""
    _, branches = study
    return {
        "continues": {"run_id": posted["base", "old"], "at_step": 1399},
        "domain": DOMAINS[domain],
        "lr_per_step": branches[HELD_OUT].lr.tolist(),
        "steps": curve["steps"],
    }


def test_forecast_of_a_continuation_part_way_lands_on_its_domains_measured_finals(
    client, live_fit, part_way, posted, study
):
    _, branches = study
    branch = branches[HELD_OUT]
    measured = {domain: branch.logged[domain][1][-1] for domain in DOMAINS}
    finals = {}
    for domain, run_id in part_way.items():
        response = client.get(f"/v1/runs/{run_id}/forecast")  # its latest fit: live_fit
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["fit_id"] == live_fit["id"] and out["law"] == "cpt" and out["level"] == 0.9
        assert set(out["fit_run_ids"]) >= {run_id, posted["base", "old"]}
        curve = out["curve"]
        # the phase's own steps, from its checkpoint (0) to the end of its declared schedule
        assert curve["steps"][0] == 0 and curve["steps"][-1] == 1000
        assert curve["total_steps"] == 1000
        assert curve["name"] == f"{HELD_OUT}/part/{DOMAINS[domain]}"
        steps = np.asarray(curve["steps"])
        assert curve["lr"][0] == pytest.approx(3e-4)  # the base's last rate, at the checkpoint
        assert curve["lr"][1:] == pytest.approx(branch.lr[steps[1:] - 1].tolist())
        loss, lower, upper = (np.asarray(curve[key]) for key in ("loss", "lower", "upper"))
        assert np.all(np.isfinite(loss)) and np.all((lower <= loss) & (loss <= upper))
        finals[domain] = loss[-1]
        error = loss[-1] / measured[domain] - 1
        print(
            f"{domain}: forecast final {loss[-1]:.4f} (band {lower[-1]:.4f} .. {upper[-1]:.4f}), "
            f"measured {measured[domain]:.4f}, error {error:+.2%}; coverage {out['coverage']}"
        )
        assert abs(error) <= 0.015 and lower[-1] <= measured[domain] <= upper[-1]
        # the logged points, the band's coverage of them, and how current the fit is
        assert out["points"]["step"] == list(range(0, 25 * CUT, 25))
        assert len(out["predicted_at_logged"]) == len(out["upper_at_logged"]) == CUT
        assert out["metrics"]["pred_e"] < 0.02 and out["coverage"] >= 0.75
        freshness = out["freshness"]
        assert freshness["points_fitted"] == freshness["points_stored"] == CUT
        assert freshness["current"]
        # the same as asked with the fit_id, and as POST /v1/predictions' continuing candidate
        again = client.get(f"/v1/runs/{run_id}/forecast", params={"fit_id": live_fit["id"]})
        assert again.json()["curve"] == curve
        assert client.get(
            f"/v1/runs/{run_id}/forecast", headers={"If-None-Match": response.headers["etag"]}
        ).status_code == 304  # fmt: skip
        candidate = _continuing_candidate(curve, domain, posted, study)
        predicted = client.post(
            "/v1/predictions", json={"fit_id": live_fit["id"], "candidates": [candidate]}
        ).json()["candidates"][0]
        assert predicted["loss"] == curve["loss"] and predicted["upper"] == curve["upper"]
    # each curve is its own run's domain: the two measured finals lie 0.28 apart
    gap = abs(measured["old"] - measured["new"])
    for domain in DOMAINS:
        assert abs(finals[domain] - measured[domain]) < gap / 10


def test_forecast_under_a_cpt_fit_that_never_saw_the_run(
    client, quick_fit, part_way, posted, study
):
    # the quick fit's domains cover the run's: its curve is the held-out prediction, no band
    query = {"fit_id": quick_fit["id"], "num_points": 41}
    response = client.get(f"/v1/runs/{part_way['new']}/forecast", params=query)
    assert response.status_code == 200, response.text
    out = response.json()
    curve = out["curve"]
    assert curve["steps"] == list(range(0, 1001, 25)) and curve["lower"] is None
    assert out["level"] is None and "intervals: false" in out["interval_note"]
    assert out["coverage"] is None
    assert out["freshness"]["points_fitted"] == 0 and not out["freshness"]["current"]
    truth = study[1][HELD_OUT].logged["new"][1]
    print(f"new domain, fit without the run: final error {curve['loss'][-1] / truth[-1] - 1:+.2%}")
    assert curve_metrics(np.asarray(curve["loss"]), truth)["pred_e"] <= 0.008
    candidate = _continuing_candidate(curve, "new", posted, study)
    predicted = client.post(
        "/v1/predictions", json={"fit_id": quick_fit["id"], "candidates": [candidate]}
    ).json()["candidates"][0]
    assert predicted["loss"] == curve["loss"]
    # a base run's curve under the same fit: its own schedule's steps, on its own domain
    base = client.get(f"/v1/runs/{posted['base', 'new']}/forecast", params=query).json()
    assert base["curve"]["steps"][-1] == 1399 and base["curve"]["total_steps"] == 1400
    assert base["metrics"]["pred_e"] < 0.02
    # the CLI's rendering of the same body
    from losscast_cli.render import render_forecast

    text = render_forecast(out)
    assert f"final loss at step 1000: {curve['loss'][-1]:.5f}  (no band)" in text


def test_bad_forecasts_under_a_cpt_fit_are_4xx(client, quick_fit, posted, study):
    _, branches = study
    fit_id = quick_fit["id"]
    good = _body(branches["none"], "new", parent=posted["base", "old"], at_step=1399)

    def forecast(**change) -> str:
        body = {**good, "name": "bad", "group": None, **change}
        response = client.post("/v1/runs", json=body)
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]
        return _error(client.get(f"/v1/runs/{run_id}/forecast?fit_id={fit_id}"), 422, "fit_id")

    assert "'rust'" in forecast(domain="rust")  # a domain the fit does not know
    assert "domain" in forecast(domain=None)
    chained = {"run_id": posted["none", "new"], "at_step": 500}
    assert "continues another run" in forecast(continues=chained)
    # a continuation of a base run on the new domain: the fit's old domain is the parents'
    on_new = {"run_id": posted["base", "new"], "at_step": 1399}
    assert "not the fit's old domain" in forecast(continues=on_new)
    assert client.get(f"/v1/runs/run_nope/forecast?fit_id={fit_id}").status_code == 404


def test_a_continuation_under_a_schedule_law_is_forecast_as_a_fresh_run(
    client, posted, part_way, study
):
    # lr_annealing on the base's C-header curve: the phase's points read as a fresh run's
    body = {"run_ids": [posted["base", "new"]], "law": "lr_annealing", "intervals": False}
    fit = client.post("/v1/fits", json=body)
    assert fit.status_code == 201, fit.text
    query = {"fit_id": fit.json()["id"], "num_points": 50}
    response = client.get(f"/v1/runs/{part_way['new']}/forecast", params=query)
    assert response.status_code == 200, response.text
    out = response.json()
    curve = out["curve"]
    assert out["law"] == "lr_annealing" and curve["total_steps"] == 1000
    assert len(curve["steps"]) == 50 and curve["steps"][-1] == 999
    # the schedule law's curve of the phase's rates alone, as POST /v1/predictions draws it
    lr = study[1][HELD_OUT].lr.tolist()
    candidate = {"lr_per_step": lr, "steps": curve["steps"]}
    predicted = client.post(
        "/v1/predictions", json={"fit_id": query["fit_id"], "candidates": [candidate]}
    ).json()["candidates"][0]
    assert np.all(np.isfinite(curve["loss"])) and predicted["loss"] == curve["loss"]
