"""The fitter on real curves: held-out accuracy, honesty of the result, input checks."""

import numpy as np
import pytest

from fitting.fit import COMPILATIONS, Run, fit_law, objective_value, predict_losses, predict_runs
from fitting.laws import get_law
from fitting.metrics import curve_metrics
from fitting.priors import GAIN_PER_RATE, MEMORY_SHARE
from fitting.schedules import learning_rates
from tests.curves import FITTING, HELD_OUT, load_run, schedule_specs

LAW = get_law("lr_annealing")
# Average held-out PredE the issue requires (a well-fitted LR-annealing law: ~0.0014 / ~0.0018).
PRED_E_LIMIT = {"25M": 0.0015, "400M": 0.0019}
WORST_E_LIMIT = 0.012


@pytest.fixture(scope="module", params=["25M", "400M"])
def fitted(request):
    size = request.param
    runs = [load_run(size, name) for name in FITTING]
    return size, runs, fit_law(LAW, runs)


def test_fit_on_three_runs_predicts_six_held_out_schedules(fitted):
    size, _, result = fitted
    held_out = [load_run(size, name) for name in HELD_OUT]
    predictions = predict_runs(LAW, result.params, held_out, result.warmup)
    metrics = [curve_metrics(p, run.loss) for p, run in zip(predictions, held_out, strict=True)]
    pred_e = np.mean([m["pred_e"] for m in metrics])
    assert pred_e <= PRED_E_LIMIT[size], (size, pred_e)
    for name, m in zip(HELD_OUT, metrics, strict=True):
        assert m["worst_e"] <= WORST_E_LIMIT, (size, name, m)
        assert m["r2"] > 0.95, (size, name, m)


def test_fit_result_is_honest(fitted):
    size, runs, result = fitted
    assert result.converged, result.message
    assert result.gradient_norm <= 1e-4
    assert set(result.metrics) == set(FITTING)
    assert all(m["pred_e"] < 0.003 for m in result.metrics.values())
    # The decay is fitted (the runs anneal), within its data-imposed bounds.
    low, high = result.bounds["decay"]
    assert low < high <= 1 - 1 / (0.1 * 24000)
    assert low <= result.params["decay"] <= high
    assert result.objective == pytest.approx(objective_value(LAW, result.params, runs))


def _reference_comparison(runs, result, grid=None):
    reference = pytest.importorskip("bench.reference")
    _, reference_objective = reference.reference_fit(runs, warmup=result.warmup, grid=grid)
    assert result.objective <= reference_objective * (1 + 1e-6), reference_objective


def test_fitter_is_never_worse_than_a_plain_scipy_multistart(fitted):
    """Against eight scipy L-BFGS-B starts spread over the law's plausible range."""
    size, runs, result = fitted
    lowest = min(float(run.loss.min()) for run in runs)
    grid = {
        "L0": (0.8 * lowest,),
        "A": (0.5,),
        "alpha": (0.3, 0.6),
        "C": (0.3, 3.0),
        "decay": (0.99, 0.999),
    }
    _reference_comparison(runs, result, grid)


@pytest.mark.slow
def test_fitter_is_never_worse_than_the_full_scipy_multistart(fitted):
    """The reference's full 72-start grid (minutes; run by `make bench`)."""
    _, runs, result = fitted
    _reference_comparison(runs, result)


def test_an_iteration_cap_is_reported_as_not_converged():
    runs = [load_run("25M", name) for name in FITTING]
    result = fit_law(LAW, runs, max_iterations=2, refined_starts=1)
    assert not result.converged
    assert "ITERATIONS" in result.message.upper()


def test_family_and_explicit_array_predict_the_same():
    runs = [load_run("25M", name) for name in FITTING]
    result = fit_law(LAW, runs)
    spec = schedule_specs()["wsd_20000_24000"]
    steps = np.arange(100, 24000, 97)
    family = predict_losses(LAW, result.params, [learning_rates(spec)], [steps], result.warmup)
    explicit = predict_losses(
        LAW,
        result.params,
        [learning_rates({"type": "explicit", "lr_per_step": learning_rates(spec).tolist()})],
        [steps],
        result.warmup,
    )
    np.testing.assert_array_equal(family[0], explicit[0])


def test_new_lengths_in_a_bucket_do_not_recompile():
    params = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0, "decay": 0.998}

    def cosine(total):
        return learning_rates({"type": "cosine", "peak_lr": 3e-4, "total_steps": total})

    predict_losses(LAW, params, [cosine(20000)], [np.arange(0, 20000, 80)])  # 250 steps
    before = COMPILATIONS["predict"]
    for total in (18000, 19000, 21000, 23000):
        predict_losses(LAW, params, [cosine(total)], [np.linspace(0, total - 1, 250).astype(int)])
    assert COMPILATIONS["predict"] == before


def test_a_run_predicted_like_a_larger_one_shares_its_compiled_shape():
    # Cross-validation predicts each held-out run padded like the largest run of the fit.
    params = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0, "decay": 0.998}
    large, small = load_run("25M", "constant_72000"), load_run("25M", "wsdcon_3")
    (alone,) = predict_runs(LAW, params, [small])
    predict_runs(LAW, params, [large])
    before = COMPILATIONS["predict"]
    (padded,) = predict_runs(LAW, params, [small], like=[large])
    assert COMPILATIONS["predict"] == before
    np.testing.assert_allclose(padded, alone, rtol=1e-12)


def test_dense_noisy_per_step_curve_recovers_the_law():
    """A 20k-step curve logged at every step with 1% multiplicative noise."""
    truth = {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 0.9, "decay": 0.998}
    rng = np.random.default_rng(7)
    lr = learning_rates(
        {
            "type": "wsd",
            "peak_lr": 3e-4,
            "total_steps": 20000,
            "num_warmup_steps": 500,
            "decay_fraction": 0.2,
            "decay_type": "linear",
            "min_lr": 3e-5,
        }
    )
    steps = np.arange(500, 20000)
    clean = predict_losses(LAW, truth, [lr], [steps])[0]
    noisy = clean * np.exp(rng.normal(0, 0.01, steps.size))
    result = fit_law(LAW, [Run(lr, steps, noisy, "dense")])
    assert result.converged, result.message
    fitted = predict_losses(LAW, result.params, [lr], [steps])[0]
    assert np.max(np.abs(fitted - clean) / clean) < 0.002
    assert result.params["L0"] == pytest.approx(truth["L0"], rel=0.05)


def test_a_run_that_never_anneals_holds_its_annealing_response_at_the_prior():
    lr = learning_rates(
        {"type": "constant", "peak_lr": 3e-4, "total_steps": 24000, "num_warmup_steps": 2160}
    )
    run = load_run("25M", "constant_24000")
    result = fit_law(LAW, [Run(lr, run.steps, run.loss, "constant")])
    identification = result.identification
    assert identification["source"] == "prior" and identification["identified_by"] == []
    assert "no LR decay observed yet" in identification["note"]
    # Memory 4% of the 24,000 steps; a full anneal removes 150 x 3e-4 = 4.5% of the loss level.
    memory = MEMORY_SHARE * 24000
    assert result.bounds["decay"] == [1 - 1 / memory, 1 - 1 / memory]
    level = float(np.median(run.loss[-5:]))
    gain = result.params["C"] * 3e-4 / (1 - result.params["decay"])
    assert gain == pytest.approx(GAIN_PER_RATE * 3e-4 * level, rel=1e-9)
    assert set(result.identification["prior"]["parameters"]) == {"C", "decay"}


def test_a_run_whose_rate_has_dropped_identifies_its_annealing_response():
    run = load_run("25M", "cosine_24000")
    result = fit_law(LAW, [run])
    assert result.identification["source"] == "data"
    assert result.identification["identified_by"] == ["cosine_24000"]
    assert result.bounds["decay"][0] < result.bounds["decay"][1]


def test_short_runs_bound_the_memory_of_the_decay():
    lr = learning_rates(
        {"type": "cosine", "peak_lr": 1e-3, "total_steps": 1400, "num_warmup_steps": 100}
    )
    steps = np.arange(100, 1400, 10)
    loss = predict_losses(
        LAW, {"L0": 3, "A": 0.3, "alpha": 0.4, "C": 1, "decay": 0.98}, [lr], [steps]
    )[0]
    result = fit_law(LAW, [Run(lr, steps, loss)])
    assert result.bounds["decay"][1] <= 1 - 1 / 140
    assert result.params["decay"] == pytest.approx(0.98, abs=2e-3)


@pytest.mark.parametrize(
    ("lr", "steps", "loss", "message"),
    [
        (np.full(10, 1e-3), [1, 2], [3.0, np.nan], "loss must be finite"),
        (np.full(10, 1e-3), [1, 2], [3.0, -1.0], "loss must be finite and > 0"),
        (np.full(10, 1e-3), [2, 2], [3.0, 2.9], "strictly increasing"),
        (np.full(10, 1e-3), [1, 12], [3.0, 2.9], "must lie in [0, 10)"),
        (np.full(10, 1e-3), [1, 2, 3], [3.0, 2.9], "equal length"),
        (np.full(10, 1e-3), [], [], "no logged points"),
        (np.r_[np.full(9, 1e-3), -1.0], [1, 2], [3.0, 2.9], "lr must be finite and >= 0"),
        (np.full(10, 1e-3), [1.5, 2], [3.0, 2.9], "steps must be integers"),
    ],
)
def test_bad_runs_are_refused_with_a_message(lr, steps, loss, message):
    with pytest.raises(ValueError) as caught:
        Run(lr, np.asarray(steps), np.asarray(loss, dtype=float))
    assert message in str(caught.value)


def test_bad_fit_options_are_refused():
    runs = [load_run("25M", "cosine_24000")]
    with pytest.raises(ValueError, match="no parameter 'lambda'"):
        fit_law(LAW, runs, fixed={"lambda": 0.99})
    with pytest.raises(ValueError, match="outside its bounds"):
        fit_law(LAW, runs, fixed={"decay": 1.5})
    with pytest.raises(ValueError, match="min_step=30000"):
        fit_law(LAW, runs, min_step=30000)
    with pytest.raises(ValueError, match="warmup must be one of"):
        fit_law(LAW, runs, warmup="sometimes")
