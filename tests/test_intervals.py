"""Cross-validation, law choice and prediction intervals on the real curves."""

import functools

import numpy as np
import pytest

from fitting.fit import fit_law, predict_runs
from fitting.intervals import Uncertainty, estimate_uncertainty, predict_intervals
from fitting.laws import LAWS, get_law
from fitting.schedules import learning_rates
from fitting.select import choose_law, cross_validate
from tests.curves import FITTING, HELD_OUT, load_run

LAW = get_law("lr_annealing")


@pytest.fixture(scope="module")
def banded_25m():
    runs = [load_run("25M", name) for name in FITTING]
    result = fit_law(LAW, runs)
    validation = cross_validate(LAW, runs)
    return result, validation, estimate_uncertainty(LAW, result, runs, validation)


def test_leave_one_run_out_validates_each_run_once(banded_25m):
    _, validation, _ = banded_25m
    assert validation.scheme == "leave-one-run-out"
    assert [f["held_out"] for f in validation.folds] == list(FITTING)
    assert len(validation.fold_params) == 3
    assert 0 < validation.pred_e < 0.005
    assert validation.pred_e == pytest.approx(np.mean([f["pred_e"] for f in validation.folds]))


def test_a_single_run_is_validated_on_its_last_fifth():
    run = load_run("25M", "cosine_24000")
    validation = cross_validate(LAW, [run])
    assert validation.scheme == "last-20%-of-steps"
    (residuals,) = validation.log_residuals
    late = run.steps > run.steps[0] + 0.8 * (run.steps[-1] - run.steps[0])
    assert residuals.size == late.sum()


def test_bands_hold_the_prediction_and_widen_with_level(banded_25m):
    result, _, uncertainty = banded_25m
    held = load_run("25M", "cosine_72000")
    (wide,) = predict_intervals(
        LAW, result.params, uncertainty, [held.lr], [held.steps], result.warmup, 0.9
    )
    (narrow,) = predict_intervals(
        LAW, result.params, uncertainty, [held.lr], [held.steps], result.warmup, 0.5
    )
    (mean,) = predict_runs(LAW, result.params, [held], result.warmup)
    np.testing.assert_allclose(wide["loss"], mean, rtol=1e-12)
    assert np.all(wide["lower"] < mean) and np.all(mean < wide["upper"])
    assert np.all(wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"])


def test_bands_widen_with_the_horizon(banded_25m):
    result, _, uncertainty = banded_25m

    def final_width(total):
        lr = learning_rates(
            {"type": "constant", "peak_lr": 3e-4, "total_steps": total, "num_warmup_steps": 2160}
        )
        (band,) = predict_intervals(
            LAW, result.params, uncertainty, [lr], [np.array([total - 1])], result.warmup
        )
        return float((band["upper"] - band["lower"])[0] / band["loss"][0])

    assert final_width(24000) < final_width(72000) < final_width(200000)


def test_uncertainty_survives_a_round_trip_through_json(banded_25m):
    _, _, uncertainty = banded_25m
    again = Uncertainty.from_dict(uncertainty.to_dict())
    np.testing.assert_array_equal(again.covariance, uncertainty.covariance)
    assert again.fold_params == uncertainty.fold_params
    assert again.model_error == uncertainty.model_error > again.noise > 0


def test_held_parameters_carry_no_variance():
    runs = [load_run("25M", name) for name in FITTING]
    result = fit_law(LAW, runs, fixed={"decay": 0.999})
    uncertainty = estimate_uncertainty(LAW, result, runs)
    decay = LAW.index("decay")
    assert np.all(uncertainty.covariance[decay] == 0) and np.all(
        uncertainty.covariance[:, decay] == 0
    )
    assert uncertainty.covariance[0, 0] > 0


def test_bad_level_is_refused(banded_25m):
    result, _, uncertainty = banded_25m
    run = load_run("25M", "cosine_24000")
    with pytest.raises(ValueError, match="level must lie in"):
        predict_intervals(LAW, result.params, uncertainty, [run.lr], [run.steps], "include", 1.5)


def test_choose_law_records_every_candidate():
    runs = [load_run("25M", name) for name in FITTING]
    chosen, validation, validations = choose_law(runs)
    assert [v.law for v in validations] == list(LAWS)
    assert validation.pred_e == min(v.pred_e for v in validations)
    assert chosen.law == validation.law


@functools.cache
def _calibration(size):
    runs = [load_run(size, name) for name in FITTING]
    result = fit_law(LAW, runs)
    uncertainty = estimate_uncertainty(LAW, result, runs, cross_validate(LAW, runs))
    held = [load_run(size, name) for name in HELD_OUT]
    bands = predict_intervals(
        LAW,
        result.params,
        uncertainty,
        [h.lr for h in held],
        [h.steps for h in held],
        result.warmup,
    )
    inside = [
        (h.loss >= b["lower"]) & (h.loss <= b["upper"]) for h, b in zip(held, bands, strict=True)
    ]
    points = float(np.mean([i.mean() for i in inside]))
    finals = sum(bool(i[-1]) for i in inside)
    return points, finals


@pytest.mark.parametrize("size", ["25M", "400M"])
def test_ninety_percent_bands_hold_most_held_out_points(size):
    points, _ = _calibration(size)
    assert points >= 0.80, points  # measured: 0.998 (25M), 0.83 (400M)


def test_ninety_percent_bands_hold_five_of_six_final_losses_at_25m():
    _, finals = _calibration("25M")
    assert finals >= 5, finals


@pytest.mark.xfail(
    strict=True,
    reason="known miss: at 400M the LR-annealing law under-predicts the end of both WSD "
    "cooldowns by 0.8-1.2%, outside the band (4 of 6 final losses held)",
)
def test_ninety_percent_bands_hold_five_of_six_final_losses_at_400m():
    _, finals = _calibration("400M")
    assert finals >= 5, finals
