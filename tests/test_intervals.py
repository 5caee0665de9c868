"""Cross-validation, law choice and prediction intervals on the real curves."""

import dataclasses
import functools
import json

import numpy as np
import pytest

from fitting.fit import COMPILATIONS, Run, fit_law, predict_runs
from fitting.intervals import Uncertainty, estimate_uncertainty, predict_intervals
from fitting.laws import LAWS, get_law
from fitting.schedules import learning_rates
from fitting.select import ALL_FOLDS, TARGET_FOLDS, choose_law, cross_validate, selection_scores
from tests.curves import FITTING, HELD_OUT, load_run

LAW = get_law("lr_annealing")
OTHER = get_law("multi_power")


@functools.cache
def other_law_fit(size: str):
    """The other law fitted to the same runs, as ``law: auto`` does for the other-laws term."""
    return fit_law(OTHER, [load_run(size, name) for name in FITTING])


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


def test_cross_validation_reuses_the_full_fit_s_compiled_kernels():
    # Folds are padded like all the runs (fit_law(..., like=runs)): with three runs that saves
    # one compilation of each fit kernel and two of the prediction (10 s for multi_power).
    def first_steps(run, total):  # a length and point count no other test uses
        keep = run.steps < total
        return Run(run.lr[:total], run.steps[keep], run.loss[keep], run.name)

    runs = [first_steps(load_run("25M", name), 6100) for name in FITTING]
    fit_law(LAW, runs)
    before = dict(COMPILATIONS)
    validation = cross_validate(LAW, runs)
    assert dict(COMPILATIONS) == before
    assert len(validation.fold_params) == 3


def test_a_single_run_is_backtested_from_two_origins():
    run = load_run("25M", "cosine_24000")
    validation = cross_validate(LAW, [run])
    assert validation.scheme == "rolling-origin-last-20%-and-40%-of-steps"
    span = run.steps[-1] - run.steps[0]
    for residuals, share in zip(validation.log_residuals, (0.2, 0.4), strict=True):
        late = run.steps > run.steps[0] + (1 - share) * span
        assert residuals.size == late.sum()
    assert len(validation.fold_params) == 2


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


def test_the_held_out_error_and_the_folds_spread_are_one_error_not_two(banded_25m):
    # Both come from the same fold fits: the band takes the larger, so lowering the held-out
    # error leaves it unchanged where the folds disagree more (a long horizon) and narrows it
    # where they agree (a short one). A sum would narrow it everywhere.
    result, _, uncertainty = banded_25m
    lr = learning_rates(
        {"type": "constant", "peak_lr": 3e-4, "total_steps": 200000, "num_warmup_steps": 2160}
    )
    steps = np.array([30000, 199999])

    def half_widths(u):
        (band,) = predict_intervals(LAW, result.params, u, [lr], [steps], result.warmup)
        return np.log(band["upper"] / band["loss"])

    lower_error = dataclasses.replace(uncertainty, model_error=uncertainty.noise)
    before, after = half_widths(uncertainty), half_widths(lower_error)
    assert after[0] < before[0]
    assert after[1] == pytest.approx(before[1], rel=1e-12)


def test_a_running_job_s_band_takes_the_held_out_error_of_its_own_fold():
    # A job cut in its stable phase, fitted with two complete runs of its model: the fold that
    # predicts the cosine from the two constant-rate runs (its cooldown at the prior) errs more
    # than the one that predicts the job, which is what the job's forecast is about.
    full = load_run("25M", "wsdcon_3")
    keep = full.steps < 0.5 * full.lr.size
    job = Run(full.lr, full.steps[keep], full.loss[keep], "wsdcon_3@50%")
    runs = [job, load_run("25M", "cosine_24000"), load_run("25M", "constant_24000")]
    result = fit_law(LAW, runs)
    validation = cross_validate(LAW, runs)
    assert sorted(validation.run_log_residuals) == [0, 1, 2]
    for i, residuals in validation.run_log_residuals.items():
        assert np.array_equal(residuals, validation.log_residuals[i])
    every_fold = estimate_uncertainty(LAW, result, runs, validation)
    for_the_job = estimate_uncertainty(LAW, result, runs, validation, targets=[0])
    job_fold = validation.run_log_residuals[0]
    assert for_the_job.model_error == pytest.approx(np.sqrt(np.mean(job_fold**2)))
    assert for_the_job.model_error < every_fold.model_error / 2
    # A target no fold held out: the held-out error of every fold, as without targets.
    assert estimate_uncertainty(
        LAW, result, runs, validation, targets=[7]
    ).model_error == pytest.approx(every_fold.model_error)
    truth = float(np.mean(full.loss[-5:]))
    end = np.array([full.lr.size - 1])
    (band,) = predict_intervals(LAW, result.params, for_the_job, [full.lr], [end], result.warmup)
    assert band["lower"][0] <= truth <= band["upper"][0]


def test_uncertainty_survives_a_round_trip_through_json(banded_25m):
    result, validation, _ = banded_25m
    runs = [load_run("25M", name) for name in FITTING]
    uncertainty = estimate_uncertainty(LAW, result, runs, validation, [other_law_fit("25M")])
    again = Uncertainty.from_dict(json.loads(json.dumps(uncertainty.to_dict())))
    np.testing.assert_array_equal(again.covariance, uncertainty.covariance)
    assert again.fold_params == uncertainty.fold_params
    assert again.model_error == uncertainty.model_error > again.noise > 0
    assert again.alternatives == (("multi_power", other_law_fit("25M").params),)


def test_another_law_widens_the_band_by_its_disagreement(banded_25m):
    # On the log scale: half-width**2 with the other law = half-width**2 without + (z * gap)**2,
    # gap = log(other law's prediction) - log(this law's).
    result, validation, alone = banded_25m
    runs = [load_run("25M", name) for name in FITTING]
    other = other_law_fit("25M")
    both = estimate_uncertainty(LAW, result, runs, validation, [other])
    held = load_run("25M", "cosine_72000")
    (narrow,), (wide,) = (
        predict_intervals(LAW, result.params, u, [held.lr], [held.steps], result.warmup)
        for u in (alone, both)
    )
    (theirs,) = predict_runs(OTHER, other.params, [held], other.warmup)
    z = 1.6448536269514722
    gap = np.log(theirs) - np.log(wide["loss"])
    np.testing.assert_allclose(
        np.log(wide["upper"] / wide["loss"]) ** 2,
        np.log(narrow["upper"] / narrow["loss"]) ** 2 + (z * gap) ** 2,
        rtol=1e-9,
    )
    assert np.max(np.abs(gap)) > 1e-3  # the laws do disagree on a 72k-step cosine


def test_an_alternative_must_be_another_law_with_the_same_warmup(banded_25m):
    result, validation, _ = banded_25m
    runs = [load_run("25M", name) for name in FITTING]
    with pytest.raises(ValueError, match="another law fitted with the same warmup"):
        estimate_uncertainty(LAW, result, runs, validation, [result])
    excluded = fit_law(OTHER, runs, warmup="exclude")
    with pytest.raises(ValueError, match="another law fitted with the same warmup"):
        estimate_uncertainty(LAW, result, runs, validation, [excluded])


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


@functools.cache
def _choice(size):
    return choose_law([load_run(size, name) for name in FITTING])


def test_choose_law_records_every_candidate():
    chosen, validation, validations = _choice("25M")
    assert [v.law for v in validations] == list(LAWS)
    assert validation.pred_e == min(v.pred_e for v in validations)
    assert chosen.law == validation.law


def test_selection_scores_for_some_runs_are_their_held_out_errors():
    _, _, validations = _choice("25M")
    for validation in validations:  # leave-one-run-out: each run's fold, by the run's index
        assert [validation.run_pred_e[i] for i in range(len(FITTING))] == [
            fold["pred_e"] for fold in validation.folds
        ]
    assert selection_scores(validations) == ([v.pred_e for v in validations], ALL_FOLDS)
    scores, criterion = selection_scores(validations, [2])
    assert criterion == TARGET_FOLDS and scores == [v.run_pred_e[2] for v in validations]
    scores, criterion = selection_scores(validations, [0, 2])
    assert scores == [(v.run_pred_e[0] + v.run_pred_e[2]) / 2 for v in validations]
    # A target no fold held out (not among the fitted runs): every law falls back to every fold.
    assert selection_scores(validations, [7]) == ([v.pred_e for v in validations], ALL_FOLDS)


def _held_out_pred_e(law, params, size) -> float:
    held = [load_run(size, name) for name in HELD_OUT]
    predicted = predict_runs(law, params, held)
    return float(
        np.mean(
            [np.mean(np.abs(p - h.loss) / h.loss) for p, h in zip(predicted, held, strict=True)]
        )
    )


def _auto_against_the_better_law(size) -> tuple[float, float, str]:
    runs = [load_run(size, name) for name in FITTING]
    chosen, _, _ = _choice(size)
    errors = {
        LAW.name: _held_out_pred_e(LAW, fit_law(LAW, runs).params, size),
        OTHER.name: _held_out_pred_e(OTHER, other_law_fit(size).params, size),
    }
    return (
        _held_out_pred_e(get_law(chosen.law), chosen.params, size),
        min(errors.values()),
        chosen.law,
    )


# What `auto` promises (the live-forecast issue restated the paper's early-stopped figures as
# this): no worse than the better law by more than 0.0001 held-out PredE.
AUTO_MARGIN = 1e-4


def test_auto_is_within_0p0001_pred_e_of_the_better_law_at_25m():
    # Measured: auto picks multi_power, 0.00117, the better law (lr_annealing 0.00128).
    auto, better, _ = _auto_against_the_better_law("25M")
    assert auto <= better + AUTO_MARGIN


@pytest.mark.xfail(
    strict=True,
    reason="auto picks multi_power at 400M (held-out PredE 0.00217) where lr_annealing is better "
    "(0.00183): leave-one-run-out over the three fitting runs prefers multi_power by three "
    "standard errors (fold PredE 0.00082/0.00073/0.00129 against 0.00124/0.00174/0.00146)",
)
def test_auto_is_within_0p0001_pred_e_of_the_better_law_at_400m():
    auto, better, _ = _auto_against_the_better_law("400M")
    assert auto <= better + AUTO_MARGIN


@functools.cache
def _calibration(size):
    """Share of the six held-out curves' points inside the 90% band, and how many final losses
    it holds: lr_annealing's band with multi_power as the other law (as ``auto`` builds it)."""
    runs = [load_run(size, name) for name in FITTING]
    result = fit_law(LAW, runs)
    uncertainty = estimate_uncertainty(
        LAW, result, runs, cross_validate(LAW, runs), [other_law_fit(size)]
    )
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
    assert points >= 0.80, points  # measured: 1.000 (25M), 0.971 (400M)


def test_ninety_percent_bands_hold_five_of_six_final_losses_at_25m():
    _, finals = _calibration("25M")
    assert finals >= 5, finals
