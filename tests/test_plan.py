"""Budget planning on the real curves: steps to a target loss against the runs that were actually
trained, the optimised schedule against cosine and the best WSD, the cooldown grid in one batch,
the ranking of held-out schedules, and POST /v1/plans through the app."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

import fitting.plan as plan
import fitting.predict
from fitting.fit import fit_law, predict_losses
from fitting.laws import LAWS, get_law
from fitting.plan import (
    TrainingScale,
    best_cooldown,
    compare_schedules,
    frame_of,
    loss_for_budget,
    optimise_schedule,
    steps_to_target,
)
from fitting.plan.optimise import _KnotSchedule
from fitting.predict import FittedLaw, final_losses
from fitting.schedules import learning_rates, warmup_steps_of
from tests.curves import FITTING, load_run, schedule_specs

LAW = get_law("lr_annealing")
TOKENS_PER_STEP = 524288  # an illustrative batch: 256 sequences of 2048 tokens
N_PARAMS = 4e8
# multi_power as fitted (fit_law, defaults) to the three 400M fitting runs: a second law to check
# that planning works through any law record.
MULTI_POWER_400M = {
    "L0": 2.30679,
    "A": 0.701066,
    "alpha": 0.41249,
    "B": 0.221023,
    "C": 0.0674638,
    "beta": 0.261948,
    "gamma": 0.485035,
    "lr_ref": 3e-4,
}


@functools.cache
def fitted_400m() -> tuple[FittedLaw, object]:
    """lr_annealing fitted with defaults to the three 400M fitting runs (cached per session)."""
    result = fit_law(LAW, [load_run("400M", name) for name in FITTING])
    assert result.converged, result.message
    return FittedLaw.from_fit(LAW, result), result


@pytest.fixture(scope="module")
def model() -> FittedLaw:
    return fitted_400m()[0]


def true_final_loss(name: str) -> float:
    """The logged final loss of a 400M run: the mean of its last 5 points."""
    return float(np.mean(load_run("400M", name).loss[-5:]))


def family_of(name: str) -> dict:
    return {k: v for k, v in schedule_specs()[name].items() if k != "total_steps"}


# ---------------------------------------------------------------------------------------------
# Steps to a target loss.


@pytest.mark.parametrize("name", ["cosine_72000", "constant_72000"])
def test_steps_to_reach_a_72000_step_runs_final_loss_are_within_10_percent_of_72000(model, name):
    target = true_final_loss(name)
    scale = TrainingScale(TOKENS_PER_STEP, N_PARAMS)
    result = steps_to_target(model, family_of(name), target, scale=scale)
    print(f"\n{name}: target {target:.5f} -> {result.total_steps} steps ({result.message})")

    assert result.reached, result.message
    assert abs(result.total_steps - 72000) <= 7200, result.total_steps
    assert result.monotone
    # The answer is the shortest: one step fewer misses the target.
    lrs = [
        learning_rates({**family_of(name), "total_steps": t})
        for t in (result.total_steps - 1, result.total_steps)
    ]
    before, at = final_losses(model, lrs)
    assert before > target >= at
    assert at == pytest.approx(result.final_loss, abs=1e-12)
    assert result.cost == {
        "steps": result.total_steps,
        "tokens": result.total_steps * TOKENS_PER_STEP,
        "flops": 6 * N_PARAMS * result.total_steps * TOKENS_PER_STEP,
    }


def test_a_budget_buys_the_loss_steps_to_target_asked_for(model):
    family = family_of("cosine_24000")
    result = steps_to_target(model, family, 2.75)
    scale = TrainingScale(TOKENS_PER_STEP, N_PARAMS)
    by_steps = loss_for_budget(model, family, total_steps=result.total_steps)
    by_tokens = loss_for_budget(
        model, family, tokens=result.total_steps * TOKENS_PER_STEP, scale=scale
    )
    by_flops = loss_for_budget(
        model, family, flops=6 * N_PARAMS * result.total_steps * TOKENS_PER_STEP, scale=scale
    )
    assert by_steps.total_steps == by_tokens.total_steps == by_flops.total_steps
    assert by_steps.final_loss == pytest.approx(result.final_loss, abs=1e-12)
    assert by_steps.final_loss <= 2.75 and 20000 < result.total_steps < 24000
    assert by_steps.steps[-1] == result.total_steps - 1


def test_an_unreachable_target_says_so(model):
    result = steps_to_target(model, family_of("constant_24000"), 2.7, max_steps=20_000)
    assert not result.reached and result.total_steps is None
    assert result.final_loss > 2.7 and "not reached" in result.message
    assert result.searched[1] == 20_000


# ---------------------------------------------------------------------------------------------
# Cooldown, comparison, optimised schedule.


def test_best_cooldown_evaluates_every_fraction_and_shape_in_one_call(model, monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return predict_losses(*args, **kwargs)

    monkeypatch.setattr(fitting.predict, "predict_losses", counting)
    frame = frame_of(schedule_specs()["cosine_24000"])
    result = best_cooldown(model, **frame)
    assert calls == [26 * 3]

    grid = np.array([result.final_loss[shape] for shape in plan.COOLDOWN_SHAPES])
    assert result.best["final_loss"] == grid.min()
    assert result.fractions == list(plan.DEFAULT_COOLDOWN_FRACTIONS)
    # No cooldown (a constant schedule) is much worse; the optimum is interior and flat-ish.
    assert grid[:, 0].min() > result.best["final_loss"] + 0.05
    assert 0.1 <= result.best["decay_fraction"] <= 0.4
    low, high = result.near_optimal[result.best["decay_type"]]
    assert low <= result.best["decay_fraction"] <= high
    # The best spec is an ordinary wsd schedule, predicted the same way by any other path.
    again = compare_schedules(model, [result.best["spec"]])[0]
    assert again.final_loss == pytest.approx(result.best["final_loss"], abs=1e-10)


def test_ranking_of_24000_step_schedules_matches_the_logged_final_losses(model):
    names = ["cosine_24000", "constant_24000", "wsd_20000_24000", "wsdld_20000_24000"]
    ranking = compare_schedules(model, [schedule_specs()[n] for n in names], names, num_points=64)
    assert [f.name for f in ranking] == sorted(names, key=true_final_loss)
    assert [f.rank for f in ranking] == [1, 2, 3, 4]
    assert ranking[0].gap_to_best == 0 and all(f.gap_to_best > 0 for f in ranking[1:])
    for forecast in ranking:
        assert forecast.steps[-1] == 23999 and forecast.final_loss == forecast.loss[-1]
        assert abs(forecast.final_loss / true_final_loss(forecast.name) - 1) < 0.015
        assert forecast.interval is None  # the fit carries no uncertainty


@pytest.mark.slow  # the band's Jacobian compiles for ~10 s on 2 cores
def test_a_fit_with_an_uncertainty_ranks_with_prediction_bands():
    intervals = pytest.importorskip("fitting.intervals")
    _, result = fitted_400m()
    runs = [load_run("400M", name) for name in FITTING]
    model = FittedLaw.from_fit(LAW, result, intervals.estimate_uncertainty(LAW, result, runs))
    names = ["cosine_72000", "constant_72000"]
    for forecast in compare_schedules(model, [schedule_specs()[n] for n in names], names):
        band = forecast.interval
        assert band["level"] == 0.9 and len(band["lower"]) == len(forecast.steps)
        assert band["final"][0] < forecast.final_loss < band["final"][1]
        assert np.all(band["lower"] < forecast.loss) and np.all(forecast.loss < band["upper"])


def test_optimised_schedule_beats_cosine_and_the_best_wsd_at_24000_steps(model):
    frame = frame_of(schedule_specs()["cosine_24000"])
    began = time.perf_counter()
    result = optimise_schedule(model, **frame)
    elapsed = time.perf_counter() - began
    print(
        f"\noptimised {result.final_loss:.5f}: {result.gap_to_cosine:+.5f} vs cosine, "
        f"{result.gap_to_best_wsd:+.5f} vs best WSD; optimiser {result.optimiser_seconds:.2f} s, "
        f"all {elapsed:.2f} s; {result.message}"
    )

    assert result.converged, result.message
    assert result.gap_to_cosine < -0.02
    assert result.gap_to_best_wsd < -1e-3
    assert result.optimiser_seconds < 30  # ~1-5 s; generous for a loaded CI machine
    # The constraints hold: warmup as given, then non-increasing within [min_lr, peak].
    lr, warmup = result.lr, frame["num_warmup_steps"]
    cosine = learning_rates(result.baselines["cosine"]["spec"])
    np.testing.assert_array_equal(lr[:warmup], cosine[:warmup])
    assert lr.size == 24000 and warmup_steps_of(lr) == warmup - 1
    assert np.all(np.diff(lr[warmup:]) <= 0)
    assert lr.max() == frame["peak_lr"] and lr[warmup:].min() >= frame["min_lr"]
    # The spec is the schedule, and any prediction path agrees on its final loss.
    np.testing.assert_array_equal(learning_rates(result.spec), lr)
    assert compare_schedules(model, [result.spec])[0].final_loss == pytest.approx(
        result.final_loss, abs=1e-10
    )
    # The LR-annealing law wants a lower floor and a higher peak: the result says so.
    binding = {c["name"] for c in result.constraints if c["binding"]}
    assert binding == {"min_lr", "peak_lr"} and result.on_constraint
    assert result.at_min_lr > 0.02 and result.at_peak > 0.5


def test_knot_gradient_matches_finite_differences():
    """The chain rule from per-step gradients to knot decrements (numpy, no law)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 1.0, 5)
    knots = _KnotSchedule(ramp, 1.0, 0.1, 300, 5, 16)
    weights = rng.normal(size=300)
    d = rng.uniform(0, 0.08, size=knots.size)
    analytic = knots.pull_back(d, weights)
    numeric = np.array(
        [
            (weights @ knots.rates(d + e) - weights @ knots.rates(d - e)) / 2e-7
            for e in np.eye(knots.size) * 1e-7
        ]
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


# multi_power plans through its exact_predict: its block expansion's clipping has kinks on which
# L-BFGS-B stopped early (ABNORMAL line search), 3e-5 above the best WSD.
@pytest.mark.parametrize("law_name", sorted(LAWS))
def test_every_law_can_plan_through_its_record(model, law_name):
    if law_name == "lr_annealing":
        fitted = model
    elif law_name == "multi_power":
        fitted = FittedLaw(law_name, MULTI_POWER_400M)
    else:
        pytest.skip(f"no parameters recorded for {law_name}")
    frame = {"peak_lr": 3e-4, "total_steps": 3000, "num_warmup_steps": 300, "min_lr": 3e-5}
    result = optimise_schedule(fitted, **frame, num_knots=32)
    assert result.final_loss <= result.baselines["cosine"]["final_loss"]
    assert result.final_loss <= result.baselines["best_wsd"]["final_loss"] + 1e-9
    assert np.all(np.diff(result.lr[300:]) <= 0)
    target = result.baselines["cosine"]["final_loss"]
    steps = steps_to_target(fitted, {"type": "cosine", **frame}, target, max_steps=6000)
    assert steps.reached and abs(steps.total_steps - 3000) <= 1


# ---------------------------------------------------------------------------------------------
# Input checks.


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: steps_to_target(m, {"type": "explicit", "lr_per_step": [1.0]}, 2.0),
            "fixed length",
        ),
        (lambda m: steps_to_target(m, family_of("cosine_24000"), float("nan")), "finite"),
        (lambda m: best_cooldown(m, peak_lr=3e-4, total_steps=1000, fractions=[1.5]), "[0, 1]"),
        (
            lambda m: best_cooldown(m, peak_lr=3e-4, total_steps=1000, decay_types=["zigzag"]),
            "decay_type",
        ),
        (lambda m: optimise_schedule(m, peak_lr=3e-4, total_steps=1000, min_lr=3e-4), "min_lr <"),
        (lambda m: optimise_schedule(m, peak_lr=-1.0, total_steps=1000), "peak_lr > 0"),
        (lambda m: loss_for_budget(m, family_of("cosine_24000"), tokens=1e9), "tokens_per_step"),
        (
            lambda m: loss_for_budget(
                m, family_of("cosine_24000"), tokens=1e9, scale=TrainingScale(1000), flops=1.0
            ),
            "exactly one",
        ),
        (lambda m: compare_schedules(m, [{"type": "cosine", "peak_lr": 1.0}]), "schedules[0]"),
        (lambda m: FittedLaw("lr_annealing", {"L0": 1.0}), "missing"),
        (lambda m: FittedLaw("no_such_law", {}), "unknown law"),
        (lambda m: TrainingScale(1000).steps_for(flops=1e20), "n_params"),
    ],
)
def test_bad_arguments_fail_with_the_offending_value(model, call, message):
    with pytest.raises(ValueError, match=None) as raised:
        call(model)
    assert message in str(raised.value)


def test_training_scale_reads_run_metadata():
    scale = TrainingScale.from_metadata({"model_size": "400M", "tokens_per_step": 524288})
    assert scale == TrainingScale(524288, 4e8)
    assert TrainingScale.from_metadata({"model_size": "large"}) == TrainingScale()
    assert scale.steps_for(tokens=524288 * 1000) == 1000
    assert scale.steps_for(tokens=524288 * 1000 + 1) == 1001


# ---------------------------------------------------------------------------------------------
# POST /v1/plans.


@pytest.fixture(scope="module")
def plans_client(tmp_path_factory):
    """An app of its own (no JIT warm-up: the kernels are those of the tests above)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    folder = tmp_path_factory.mktemp("plans")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'plans.db'}", warmup=False, jax_cache_dir=""
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def fit_400m_id(plans_client) -> str:
    run_ids = []
    for name in FITTING:
        run = load_run("400M", name)
        body = {
            "name": f"400M/{name}",
            "metadata": {"model_size": "400M", "tokens_per_step": TOKENS_PER_STEP},
            "schedule": schedule_specs()[name],
            "points": {"step": run.steps.tolist(), "loss": run.loss.tolist()},
        }
        response = plans_client.post("/v1/runs", json=body)
        assert response.status_code == 201, response.text
        run_ids.append(response.json()["id"])
    response = plans_client.post("/v1/fits", json={"run_ids": run_ids})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_plans_endpoint_answers_steps_to_target_with_the_cost_from_run_metadata(
    plans_client, fit_400m_id, model
):
    target = true_final_loss("cosine_72000")
    response = plans_client.post(
        "/v1/plans",
        json={
            "kind": "steps_to_target",
            "fit_id": fit_400m_id,
            "schedule": schedule_specs()["cosine_72000"],
            "target_loss": target,
        },
    )
    assert response.status_code == 200, response.text
    out = response.json()
    library = steps_to_target(model, family_of("cosine_72000"), target)
    assert out["fit_id"] == fit_400m_id and out["kind"] == "steps_to_target"
    assert out["result"]["reached"] and out["planned"]["total_steps"] == library.total_steps
    assert out["tokens_per_step"] == TOKENS_PER_STEP and out["n_params"] == N_PARAMS
    assert out["planned"]["cost"]["flops"] == 6 * N_PARAMS * TOKENS_PER_STEP * library.total_steps


def test_plans_endpoint_serves_every_kind(plans_client, fit_400m_id):
    cosine = schedule_specs()["cosine_24000"]
    names = ["cosine_24000", "constant_24000", "wsd_20000_24000", "wsdld_20000_24000"]
    bodies = {  # shapes the tests above compiled for
        "compare": {
            "candidates": [{"name": n, "schedule": schedule_specs()[n]} for n in names],
            "num_points": 64,
        },
        "cooldown": {"schedule": cosine},
        "budget": {"schedule": cosine, "tokens": 24000 * TOKENS_PER_STEP},
        "optimise": {"schedule": cosine, "num_knots": 64},
    }
    for kind, body in bodies.items():
        response = plans_client.post(
            "/v1/plans", json={"kind": kind, "fit_id": fit_400m_id, **body}
        )
        assert response.status_code == 200, (kind, response.text)
        out = response.json()
        assert out["planned"]["final_loss"] > 2 and out["planned"]["spec"]["type"], kind
    assert out["result"]["gap_to_cosine"] < 0 and "lr" not in out["result"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"kind": "forecast"}, 422, "does not match any of the expected tags"),
        (
            {
                "kind": "budget",
                "fit_id": "fit_missing",
                "schedule": {"type": "constant"},
                "total_steps": 10,
            },
            404,
            "not found",
        ),
        (
            {
                "kind": "budget",
                "law": "lr_annealing",
                "schedule": {"type": "constant"},
                "total_steps": 10,
            },
            422,
            "need both law and params",
        ),
        (
            {
                "kind": "budget",
                "law": "lr_annealing",
                "params": {"L0": 1.0},
                "schedule": {"type": "constant"},
                "total_steps": 10,
            },
            422,
            "needs",
        ),
        (
            {
                "kind": "steps_to_target",
                "law": "lr_annealing",
                "params": {"L0": 2.4, "A": 0.6, "alpha": 0.46, "C": 0.9, "decay": 0.998},
                "schedule": {"type": "cosine", "peak_lr": -3e-4},
                "target_loss": 2.5,
            },
            422,
            "peak_lr > 0",
        ),
        (
            {
                "kind": "budget",
                "law": "lr_annealing",
                "params": {"L0": 2.4, "A": 0.6, "alpha": 0.46, "C": 0.9, "decay": 0.998},
                "schedule": {"type": "cosine", "peak_lr": 3e-4},
                "flops": 1e20,
            },
            422,
            "tokens_per_step",
        ),
        (
            {
                "kind": "optimise",
                "law": "lr_annealing",
                "params": {"L0": 2.4, "A": 0.6, "alpha": 0.46, "C": 0.9, "decay": 0.998},
                "schedule": {"type": "cosine", "peak_lr": 3e-4},
            },
            422,
            "total_steps",
        ),
        (
            {
                "kind": "cooldown",
                "law": "lr_annealing",
                "params": {"L0": 2.4, "A": 0.6, "alpha": 0.46, "C": 0.9, "decay": 0.998},
                "schedule": {"peak_lr": 3e-4, "total_steps": 100},
                "fractions": [2.0],
            },
            422,
            "[0, 1]",
        ),
    ],
)
def test_plans_endpoint_refuses_bad_requests_with_a_message(plans_client, body, status, message):
    response = plans_client.post("/v1/plans", json=body)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])
