"""Schedules: the real MPL curves' rates, each family's shape, and the errors users see."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fitting import schedules
from fitting.schedules import (
    MAX_TOTAL_STEPS,
    SCHEDULE_TYPES,
    cosine_schedule,
    describe_schedule_types,
    learning_rates,
    warmup_steps_of,
    with_warmup,
)

MPL = Path(__file__).parent / "data" / "mpl"
MPL_SPECS = json.loads((MPL / "schedules.json").read_text())
MPL_CURVES = sorted(MPL.glob("*/*.csv"))


def logged_step_lr(path: Path) -> tuple[np.ndarray, np.ndarray]:
    header = path.read_text().splitlines()[0]
    assert header == "step,lr,loss"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, 0].astype(np.int64), table[:, 1]


# --------------------------------------------------------------------------------------------
# The real data: Luo et al. 2025's schedules, rebuilt from schedules.json.


@pytest.mark.parametrize("path", MPL_CURVES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_spec_reproduces_the_logged_lr_of_every_mpl_curve(path):
    steps, logged = logged_step_lr(path)
    lr = learning_rates(MPL_SPECS[path.stem])
    assert steps[-1] < lr.size
    np.testing.assert_allclose(lr[steps], logged, rtol=0, atol=1e-12)


def test_mpl_specs_name_exactly_the_curves_on_disk():
    assert len(MPL_CURVES) == 18
    assert {path.stem for path in MPL_CURVES} == set(MPL_SPECS)


def test_mpl_schedule_lengths_match_the_curve_names():
    lengths = {name: learning_rates(spec).size for name, spec in MPL_SPECS.items()}
    assert lengths == {
        "constant_24000": 24000,
        "constant_72000": 72000,
        "cosine_24000": 24000,
        "cosine_72000": 72000,
        "wsd_20000_24000": 24000,
        "wsdld_20000_24000": 24000,
        "wsdcon_3": 16000,
        "wsdcon_9": 16000,
        "wsdcon_18": 16000,
    }


@pytest.mark.parametrize("name", sorted(MPL_SPECS))
def test_mpl_warmup_is_numpy_linspace_bit_for_bit_and_ends_at_2159(name):
    lr = learning_rates(MPL_SPECS[name])
    np.testing.assert_array_equal(lr[:2160], np.linspace(0, 3e-4, 2160))
    assert warmup_steps_of(lr) == 2159


def test_mpl_wsd_cooldowns_start_at_step_20000():
    for name in ("wsd_20000_24000", "wsdld_20000_24000"):
        lr = learning_rates(MPL_SPECS[name])
        assert np.all(lr[2159:20001] == 3e-4)
        assert lr[20001] < 3e-4
        assert lr[-1] == pytest.approx(3e-5, rel=3e-3)  # one step short of x = 1


def test_mpl_wsdcon_drops_once_at_step_8000():
    for k in (3, 9, 18):
        lr = learning_rates(MPL_SPECS[f"wsdcon_{k}"])
        assert np.all(lr[2159:8000] == 3e-4)
        assert np.all(lr[8000:] == pytest.approx(k * 1e-5, abs=1e-18))


# --------------------------------------------------------------------------------------------
# Each family: warmup ramp, peak at W, monotone decay, end value at step T.

PEAK, TOTAL, WARMUP = 1e-3, 1000, 100
BASE = {"peak_lr": PEAK, "total_steps": TOTAL, "num_warmup_steps": WARMUP}

# (id, spec, value at step T or None where the family has no end value, decays monotonically)
FAMILIES = [
    ("constant", {"type": "constant"}, PEAK, True),
    ("linear_to_zero", {"type": "linear"}, 0.0, True),
    ("linear_end_value", {"type": "linear", "end_value": 1e-4}, 1e-4, True),
    ("linear_ratio", {"type": "linear", "min_lr_ratio": 0.1}, 1e-4, True),
    ("cosine_min_lr", {"type": "cosine", "min_lr": 1e-4}, 1e-4, True),
    ("cosine_ratio", {"type": "cosine", "min_lr_ratio": 0.05}, 5e-5, True),
    ("cosine_init", {"type": "cosine", "warmup_init_value": 1e-4}, 0.0, True),
    *(
        (
            f"wsd_{decay}",
            {"type": "wsd", "decay_type": decay, "decay_fraction": 0.2, "min_lr": 1e-5},
            1e-5,
            True,
        )
        for decay in ("linear", "cosine", "1-sqrt", "exponential")
    ),
    ("wsd_steps", {"type": "wsd", "num_decay_steps": 300, "min_lr_ratio": 0.0}, 0.0, True),
    (
        "multistep_gamma",
        {"type": "multistep", "milestones": [0.8, 0.9], "gamma": 0.316},
        None,
        True,
    ),
    (
        "multistep_values",
        {"type": "multistep", "milestones": [500, 750], "values": [3e-4, 1e-4]},
        1e-4,
        True,
    ),
    ("inverse_sqrt", {"type": "inverse_sqrt", "timescale": 50}, None, True),
    (
        "exponential",
        {"type": "exponential", "decay_rate": 0.5, "transition_steps": 100},
        None,
        True,
    ),
    (
        "exponential_floor",
        {"type": "exponential", "decay_rate": 0.9, "staircase": True, "end_value": 2e-4},
        2e-4,
        True,
    ),
    ("polynomial_2", {"type": "polynomial", "power": 2.0, "end_value": 1e-5}, 1e-5, True),
    ("polynomial_half", {"type": "polynomial", "power": 0.5}, 0.0, True),
    ("rex", {"type": "rex"}, 0.0, True),
    ("rex_ratio", {"type": "rex", "min_lr_ratio": 0.1}, 1e-4, True),
    (
        "restarts",
        {"type": "cosine_with_restarts", "num_cycles": 3, "cycle_decay": 0.5, "min_lr": 1e-5},
        1e-5,
        False,
    ),
]
PIECEWISE = [
    (
        f"piecewise_{kind}",
        {
            "type": "piecewise",
            "total_steps": TOTAL,
            "num_warmup_steps": WARMUP,
            "steps": [100, 400, 1000],
            "values": [PEAK, 5e-4, 1e-4],
            "interpolation": kind,
        },
        1e-4,
        True,
    )
    for kind in ("linear", "step")
]
CASES = [(name, {**BASE, **spec}, end, decays) for name, spec, end, decays in FAMILIES] + PIECEWISE
DECAYING = [case for case in CASES if case[3]]
ENDING = [case for case in CASES if case[2] is not None]


def ids(cases):
    return [case[0] for case in cases]


def build(spec):
    params = {name: value for name, value in spec.items() if name != "type"}
    return SCHEDULE_TYPES[spec["type"]](**params)


@pytest.mark.parametrize(("name", "spec", "end", "decays"), CASES, ids=ids(CASES))
def test_family_ramps_to_the_peak_then_starts_from_it(name, spec, end, decays):
    lr = learning_rates(spec)
    assert lr.dtype == np.float64 and lr.shape == (TOTAL,)
    assert np.all(np.isfinite(lr)) and np.all(lr >= 0)
    init = spec.get("warmup_init_value", 0.0)
    np.testing.assert_array_equal(lr[:WARMUP], np.linspace(init, PEAK, WARMUP))
    assert lr[WARMUP] == pytest.approx(PEAK, rel=1e-15)
    assert lr.max() == pytest.approx(PEAK, rel=1e-15)
    assert warmup_steps_of(lr) == WARMUP - 1


@pytest.mark.parametrize(("name", "spec", "end", "decays"), DECAYING, ids=ids(DECAYING))
def test_decaying_family_never_rises_after_warmup(name, spec, end, decays):
    assert np.all(np.diff(learning_rates(spec)[WARMUP:]) <= 1e-15 * PEAK)


@pytest.mark.parametrize(("name", "spec", "end", "decays"), ENDING, ids=ids(ENDING))
def test_family_reaches_its_end_value_at_step_total(name, spec, end, decays):
    schedule = build(spec)
    assert float(schedule(TOTAL)) == pytest.approx(end, rel=1e-12, abs=1e-18)
    assert float(schedule(10 * TOTAL)) == pytest.approx(end, rel=1e-12, abs=1e-18)
    lr = learning_rates(spec)
    assert end - 1e-18 <= lr[-1] <= lr[-2] + 1e-18


@pytest.mark.parametrize(("name", "spec", "end", "decays"), CASES, ids=ids(CASES))
def test_schedule_function_is_vectorised_over_integer_arrays(name, spec, end, decays):
    schedule = build(spec)
    lr = learning_rates(spec)
    grid = np.arange(TOTAL).reshape(10, 100)
    np.testing.assert_array_equal(schedule(grid), lr.reshape(10, 100))
    assert float(schedule(np.int64(WARMUP + 7))) == lr[WARMUP + 7]


def test_cosine_is_the_documented_formula():
    lr = learning_rates({**BASE, "type": "cosine", "min_lr": 1e-4})
    x = (np.arange(WARMUP, TOTAL) - WARMUP) / (TOTAL - WARMUP)
    np.testing.assert_allclose(lr[WARMUP:], 1e-4 + 0.5 * (PEAK - 1e-4) * (1 + np.cos(np.pi * x)))


def test_rex_is_chen_et_al_formula():
    lr = learning_rates({**BASE, "type": "rex"})
    x = (np.arange(WARMUP, TOTAL) - WARMUP) / (TOTAL - WARMUP)
    np.testing.assert_allclose(lr[WARMUP:], PEAK * (1 - x) / (0.5 + 0.5 * (1 - x)), rtol=1e-14)


def test_wsd_is_stable_until_the_last_d_steps_and_fraction_equals_steps():
    by_fraction = learning_rates({**BASE, "type": "wsd", "decay_fraction": 0.25})
    by_steps = learning_rates({**BASE, "type": "wsd", "num_decay_steps": 250})
    np.testing.assert_array_equal(by_fraction, by_steps)
    assert np.all(by_steps[WARMUP - 1 : 751] == PEAK)
    assert by_steps[751] < PEAK


def test_wsd_exponential_cooldown_is_geometric_interpolation():
    lr = learning_rates(
        {**BASE, "type": "wsd", "num_decay_steps": 200, "decay_type": "exponential", "min_lr": 1e-5}
    )
    x = np.arange(200) / 200
    np.testing.assert_allclose(lr[800:], PEAK ** (1 - x) * 1e-5**x, rtol=1e-13)


def test_wsd_without_cooldown_is_constant():
    lr = learning_rates({**BASE, "type": "wsd", "decay_fraction": 0.0})
    assert np.all(lr[WARMUP - 1 :] == PEAK)


def test_multistep_fractions_mean_the_same_as_steps():
    eight_one_one = {**BASE, "type": "multistep", "gamma": 0.316}
    by_fraction = learning_rates({**eight_one_one, "milestones": [0.8, 0.9]})
    by_steps = learning_rates({**eight_one_one, "milestones": [800, 900]})
    np.testing.assert_array_equal(by_fraction, by_steps)
    assert by_steps[799] == PEAK
    assert by_steps[800] == PEAK * 0.316
    assert by_steps[900:] == pytest.approx(PEAK * 0.316**2, rel=1e-15)


def test_inverse_sqrt_halves_after_three_timescales_and_defaults_to_warmup():
    lr = learning_rates({**BASE, "type": "inverse_sqrt"})  # timescale = W = 100
    assert lr[WARMUP + 300] == pytest.approx(PEAK / 2, rel=1e-15)
    no_warmup = {"type": "inverse_sqrt", "peak_lr": PEAK, "total_steps": 40_001}
    assert learning_rates(no_warmup)[30_000] == pytest.approx(PEAK / 2, rel=1e-15)


def test_exponential_staircase_holds_within_each_transition():
    lr = learning_rates(
        {
            **BASE,
            "type": "exponential",
            "decay_rate": 0.5,
            "transition_steps": 300,
            "staircase": True,
        }
    )
    assert np.all(lr[WARMUP : WARMUP + 300] == PEAK)
    assert np.all(lr[WARMUP + 300 : WARMUP + 600] == PEAK / 2)
    assert np.all(lr[WARMUP + 600 :] == PEAK / 4)


def test_restarts_begin_each_cycle_at_a_decayed_peak_and_decay_within_it():
    lr = learning_rates(
        {**BASE, "type": "cosine_with_restarts", "num_cycles": 3, "cycle_decay": 0.5}
    )
    for cycle, start in enumerate((100, 400, 700)):
        assert lr[start] == pytest.approx(PEAK * 0.5**cycle, rel=1e-15)
        assert np.all(np.diff(lr[start : start + 300]) <= 0)
    assert lr[400] > lr[399]


def test_piecewise_linear_and_step_pass_through_their_points():
    spec = PIECEWISE[0][1]
    linear = learning_rates(spec)
    step = learning_rates({**spec, "interpolation": "step"})
    assert linear[[100, 400, 250]].tolist() == pytest.approx([PEAK, 5e-4, 7.5e-4], rel=1e-15)
    assert step[[100, 399, 400, 999]].tolist() == [PEAK, PEAK, 5e-4, 5e-4]


def test_a_one_step_warmup_is_no_warmup():
    with_one = learning_rates({**BASE, "type": "cosine", "num_warmup_steps": 1})
    assert with_one[0] == PEAK
    assert warmup_steps_of(with_one) == 0


def test_with_warmup_composes_onto_any_schedule():
    ramped = with_warmup(lambda step: np.full(np.shape(step), 2.0), 2.0, 3, 0.5)
    assert ramped(np.arange(5)).tolist() == [0.5, 1.25, 2.0, 2.0, 2.0]
    plain = cosine_schedule(1.0, 10)
    assert with_warmup(plain, 1.0, 0) is plain


# --------------------------------------------------------------------------------------------
# Explicit arrays and warmup_steps_of.


def test_explicit_array_round_trips_exactly():
    cosine = learning_rates(MPL_SPECS["cosine_24000"])
    again = learning_rates({"type": "explicit", "lr_per_step": cosine.tolist()})
    np.testing.assert_array_equal(again, cosine)


@pytest.mark.parametrize(("name", "spec", "end", "decays"), CASES, ids=ids(CASES))
def test_warmup_steps_of_agrees_for_family_spec_and_its_explicit_array(name, spec, end, decays):
    lr = learning_rates(spec)
    explicit = learning_rates({"type": "explicit", "lr_per_step": lr.tolist()})
    assert warmup_steps_of(explicit) == warmup_steps_of(lr) == WARMUP - 1


@pytest.mark.parametrize(
    ("lr", "expected"),
    [
        ([3e-4, 3e-4, 1e-4], 0),  # no ramp
        ([1.0], 0),
        ([0.0, 0.5, 1.0, 0.5], 2),
        ([0.0, 0.5, 1.0, 1.0 + 1e-16, 0.5], 2),  # a rounding error above the ramp's end
        ([0.1, 0.2, 0.3], 2),  # still rising at the end
        ([0.0, 1.0, 0.5, 1.0], 1),  # the first peak
    ],
)
def test_warmup_steps_of_arrays(lr, expected):
    assert warmup_steps_of(np.array(lr)) == expected


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, float("nan")]])
def test_warmup_steps_of_refuses_what_is_not_a_schedule(bad):
    with pytest.raises(ValueError, match="warmup_steps_of"):
        warmup_steps_of(np.array(bad))


# --------------------------------------------------------------------------------------------
# Properties over random schedules.

DECAYING_SPECS = st.sampled_from(
    [
        {"type": "linear"},
        {"type": "cosine"},
        {"type": "polynomial", "power": 1.5},
        {"type": "rex"},
        {"type": "wsd", "decay_fraction": 0.3, "decay_type": "1-sqrt"},
        {"type": "wsd", "decay_fraction": 0.1, "decay_type": "exponential"},
    ]
)


@st.composite
def decaying_schedules(draw):
    spec = dict(draw(DECAYING_SPECS))
    total = draw(st.integers(2, 3000))
    fraction = spec.get("decay_fraction", 0.0)
    warmup = draw(st.integers(0, int(total * (1 - fraction)) - 1))
    peak = draw(st.floats(1e-6, 10.0))
    ratio = draw(st.floats(0.001, 1.0))
    floor_key = "end_value" if spec["type"] in ("linear", "polynomial") else "min_lr"
    init = draw(st.floats(0.0, 0.99)) * peak
    spec |= {
        "peak_lr": peak,
        "total_steps": total,
        "num_warmup_steps": warmup,
        "warmup_init_value": init,
        floor_key: ratio * peak,
    }
    return spec


@settings(max_examples=60, deadline=None)
@given(decaying_schedules())
def test_random_decaying_schedule_peaks_once_then_stays_between_peak_and_floor(spec):
    lr = learning_rates(spec)
    warmup, peak = spec["num_warmup_steps"], spec["peak_lr"]
    floor = spec.get("min_lr", spec.get("end_value"))
    assert lr.shape == (spec["total_steps"],)
    assert lr.max() == pytest.approx(peak, rel=1e-14)
    assert np.all(lr[warmup:] >= floor * (1 - 1e-14))
    assert np.all(np.diff(lr[warmup:]) <= 1e-14 * peak)
    assert warmup_steps_of(lr) == max(warmup - 1, 0)
    explicit = learning_rates({"type": "explicit", "lr_per_step": lr.tolist()})
    assert warmup_steps_of(explicit) == warmup_steps_of(lr)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200).filter(lambda v: max(v) > 0))
def test_random_explicit_array_round_trips_and_its_warmup_is_its_first_peak(values):
    lr = learning_rates({"type": "explicit", "lr_per_step": values})
    assert lr.tolist() == values
    first_peak = warmup_steps_of(lr)
    assert first_peak <= np.argmax(lr)
    assert lr[first_peak] >= lr.max() * (1 - 1e-12)  # at the maximum, up to rounding
    assert np.all(lr[:first_peak] < lr.max() * (1 - 1e-12))


# --------------------------------------------------------------------------------------------
# Bad specs fail at construction, naming the parameter and its value.

COSINE = {"type": "cosine", "peak_lr": 3e-4, "total_steps": 24000}
WSD = {**COSINE, "type": "wsd", "decay_fraction": 0.2}
STEPS = {**COSINE, "type": "multistep", "milestones": [8000], "gamma": 0.1}
PIECES = {"type": "piecewise", "total_steps": 100, "steps": [0, 100], "values": [1.0, 0.1]}

BAD_SPECS = [
    ({**COSINE, "peak_lr": 0.0}, ["cosine", "peak_lr > 0", "peak_lr=0.0"]),
    ({**COSINE, "peak_lr": -1e-3}, ["peak_lr", "-0.001"]),
    ({**COSINE, "peak_lr": float("nan")}, ["finite peak_lr", "nan"]),
    ({**COSINE, "peak_lr": "3e-4"}, ["real number peak_lr", "'3e-4'"]),
    ({**COSINE, "total_steps": 0}, ["total_steps >= 1", "total_steps=0"]),
    ({**COSINE, "total_steps": 100.5}, ["integer total_steps", "100.5"]),
    ({**COSINE, "total_steps": True}, ["integer total_steps", "True"]),
    ({**COSINE, "total_steps": MAX_TOTAL_STEPS + 1}, ["MAX_TOTAL_STEPS", "10000001"]),
    (
        {**COSINE, "total_steps": 100, "num_warmup_steps": 200},
        [
            "cosine: requires total_steps > num_warmup_steps, "
            "got total_steps=100, num_warmup_steps=200"
        ],
    ),
    ({**COSINE, "num_warmup_steps": -1}, ["num_warmup_steps >= 0", "-1"]),
    ({**COSINE, "num_warmup_steps": 10, "warmup_init_value": 1.0}, ["warmup_init_value", "1.0"]),
    ({**COSINE, "min_lr": 1e-3}, ["min_lr <= peak_lr", "min_lr=0.001"]),
    ({**COSINE, "min_lr_ratio": 1.5}, ["min_lr_ratio in [0, 1]", "1.5"]),
    ({**COSINE, "min_lr": 1e-5, "min_lr_ratio": 0.1}, ["only one of min_lr or min_lr_ratio"]),
    ({**COSINE, "alpha": 0.1}, ["unknown parameter 'alpha'", "min_lr_ratio"]),
    ({**COSINE, "type": "linear", "min_lr": 0.0}, ["unknown parameter 'min_lr'", "end_value"]),
    ({"type": "cosine", "peak_lr": 3e-4}, ["missing", "total_steps"]),
    ({"type": "warmup_stable_decay"}, ["unknown type", "'wsd'"]),
    ({"type": "triangle"}, ["unknown type 'triangle'"]),
    ({"peak_lr": 3e-4}, ["'type'"]),
    ({**WSD, "decay_fraction": 1.2}, ["decay_fraction in [0, 1]", "1.2"]),
    ({**WSD, "decay_fraction": None}, ["requires one of decay_fraction or num_decay_steps"]),
    ({**WSD, "num_decay_steps": 100}, ["only one of decay_fraction or num_decay_steps"]),
    ({**WSD, "decay_fraction": 1.0, "num_warmup_steps": 10}, ["decay_steps=24000"]),
    ({**WSD, "decay_type": "step"}, ["decay_type in", "'step'"]),
    ({**WSD, "decay_type": "exponential"}, ["min_lr > 0", "exponential"]),
    ({**STEPS, "milestones": [0.5, 8000]}, ["milestones", "[0.5, 8000.0]"]),
    ({**STEPS, "milestones": [9000, 8000]}, ["strictly increasing", "[9000, 8000]"]),
    ({**STEPS, "milestones": [24000]}, ["< total_steps", "milestones=[24000]"]),
    (
        {**STEPS, "milestones": [100], "num_warmup_steps": 200},
        ["max(1, num_warmup_steps)", "[100]"],
    ),
    ({**STEPS, "milestones": [0.00001]}, [">= max(1, num_warmup_steps)", "milestones=[0]"]),
    ({**STEPS, "gamma": 1.5}, ["gamma in [0, 1]", "1.5"]),
    ({**STEPS, "gamma": None, "values": [1e-3]}, ["values in [0, peak_lr]", "0.001"]),
    ({**STEPS, "gamma": None, "values": [1e-4, 1e-5]}, ["one value per milestone"]),
    ({**STEPS, "gamma": None}, ["requires one of gamma or values"]),
    ({**STEPS, "milestones": "8000"}, ["list of numbers", "'8000'"]),
    ({**COSINE, "type": "inverse_sqrt", "timescale": 0}, ["timescale > 0", "timescale=0"]),
    ({**COSINE, "type": "exponential", "decay_rate": 0.0}, ["decay_rate in (0, 1]", "0.0"]),
    ({**COSINE, "type": "exponential", "decay_rate": 1.1}, ["decay_rate", "1.1"]),
    (
        {**COSINE, "type": "exponential", "decay_rate": 0.5, "transition_steps": 0},
        ["transition_steps >= 1", "transition_steps=0"],
    ),
    (
        {**COSINE, "type": "exponential", "decay_rate": 0.5, "staircase": "yes"},
        ["boolean staircase", "'yes'"],
    ),
    ({**COSINE, "type": "polynomial", "power": 0}, ["power > 0", "power=0"]),
    ({**COSINE, "type": "polynomial", "end_value": 1.0}, ["end_value <= peak_lr", "1.0"]),
    ({**COSINE, "type": "cosine_with_restarts", "num_cycles": 0}, ["num_cycles >= 1"]),
    ({**COSINE, "type": "cosine_with_restarts", "cycle_decay": 0}, ["cycle_decay in (0, 1]"]),
    (
        {
            **COSINE,
            "type": "cosine_with_restarts",
            "num_cycles": 3,
            "cycle_decay": 0.1,
            "min_lr": 1e-4,
        },
        ["last cycle's peak", "floor=0.0001"],
    ),
    ({**COSINE, "type": "rex", "min_lr_ratio": -0.1}, ["min_lr_ratio in [0, 1]", "-0.1"]),
    ({**PIECES, "steps": [50, 10]}, ["strictly increasing", "[50.0, 10.0]"]),
    ({**PIECES, "steps": [0, 200]}, ["steps <= total_steps", "200.0"]),
    ({**PIECES, "values": [1.0]}, ["one value per step"]),
    ({**PIECES, "values": [1.0, -0.1]}, ["values >= 0", "-0.1"]),
    ({**PIECES, "interpolation": "cubic"}, ["interpolation in", "'cubic'"]),
    ({**PIECES, "num_warmup_steps": 5}, ["num_warmup_steps <= steps"]),
    ({"type": "explicit", "lr_per_step": []}, ["lr_per_step", "non-empty"]),
    ({"type": "explicit", "lr_per_step": [1e-3, -1e-3]}, ["lr_per_step >= 0", "lr_per_step[1]"]),
    ({"type": "explicit", "lr_per_step": [1e-3, float("inf")]}, ["finite", "lr_per_step[1]=inf"]),
    ({"type": "explicit", "lr_per_step": [0.0, 0.0]}, ["some lr_per_step > 0"]),
    ({"type": "explicit", "lr_per_step": [1e-3], "total_steps": 1}, ["unknown", "total_steps"]),
]


@pytest.mark.parametrize(
    ("spec", "fragments"), BAD_SPECS, ids=[str(i) for i in range(len(BAD_SPECS))]
)
def test_bad_spec_raises_value_error_naming_the_parameter(spec, fragments):
    with pytest.raises(ValueError) as raised:
        learning_rates(spec)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_builders_check_their_arguments_when_called():
    with pytest.raises(ValueError, match=r"total_steps=100, num_warmup_steps=200"):
        cosine_schedule(3e-4, 100, num_warmup_steps=200)
    with pytest.raises(ValueError, match=r"warmup: requires .*num_warmup_steps=-3"):
        with_warmup(lambda step: step, 1.0, -3)


def test_learning_rates_refuses_a_spec_that_is_not_a_mapping():
    with pytest.raises(ValueError, match="mapping"):
        learning_rates([("type", "cosine")])


# --------------------------------------------------------------------------------------------
# The registry and its description for the web layer.

MINIMAL = {
    "constant": {"peak_lr": 1.0, "total_steps": 10},
    "linear": {"peak_lr": 1.0, "total_steps": 10},
    "cosine": {"peak_lr": 1.0, "total_steps": 10},
    "wsd": {"peak_lr": 1.0, "total_steps": 10, "num_decay_steps": 2},
    "multistep": {"peak_lr": 1.0, "total_steps": 10, "milestones": [5], "gamma": 0.1},
    "inverse_sqrt": {"peak_lr": 1.0, "total_steps": 10},
    "exponential": {"peak_lr": 1.0, "total_steps": 10, "decay_rate": 0.9},
    "polynomial": {"peak_lr": 1.0, "total_steps": 10},
    "cosine_with_restarts": {"peak_lr": 1.0, "total_steps": 10},
    "rex": {"peak_lr": 1.0, "total_steps": 10},
    "piecewise": {"total_steps": 10, "steps": [0, 10], "values": [1.0, 0.0]},
    "explicit": {"lr_per_step": [1.0, 0.5]},
}
DESCRIBED = describe_schedule_types()


def test_describe_lists_every_type_and_is_json():
    assert set(DESCRIBED) == set(SCHEDULE_TYPES) == set(MINIMAL)
    assert json.loads(json.dumps(DESCRIBED)) == DESCRIBED
    assert DESCRIBED["cosine"]["required"] == ["peak_lr", "total_steps"]
    assert DESCRIBED["cosine"]["defaults"] == {
        "min_lr": None,
        "min_lr_ratio": None,
        "num_warmup_steps": 0,
        "warmup_init_value": 0.0,
    }
    assert DESCRIBED["wsd"]["exactly_one_of"] == [["decay_fraction", "num_decay_steps"]]
    assert DESCRIBED["explicit"] == {
        "summary": "A given per-step array, used as is (its own warmup included).",
        "parameters": ["lr_per_step"],
        "required": ["lr_per_step"],
        "defaults": {},
        "exactly_one_of": [],
        "at_most_one_of": [],
    }
    for kind, description in DESCRIBED.items():
        if kind != "explicit":
            assert description["defaults"]["num_warmup_steps"] == 0
            assert description["defaults"]["warmup_init_value"] == 0.0


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_described_parameters_are_what_learning_rates_accepts(kind):
    description = DESCRIBED[kind]
    minimal = {"type": kind, **MINIMAL[kind]}
    assert learning_rates(minimal).size == len(minimal.get("lr_per_step", range(10)))
    for name in description["required"]:
        without = {key: value for key, value in minimal.items() if key != name}
        with pytest.raises(ValueError, match=f"missing required parameter.*{name}"):
            learning_rates(without)
    for group in description["exactly_one_of"]:
        without = {key: value for key, value in minimal.items() if key not in group}
        with pytest.raises(ValueError, match="requires one of " + " or ".join(group)):
            learning_rates(without)
    for group in description["exactly_one_of"] + description["at_most_one_of"]:
        both = {**minimal, group[0]: 0.1 if "ratio" not in group[0] else 0.0, group[1]: 0.1}
        both = {key: [0.1] if key == "values" else value for key, value in both.items()}
        with pytest.raises(ValueError, match="only one of " + " or ".join(group)):
            learning_rates(both)


def test_docstring_examples_run():
    failures, attempted = doctest.testmod(schedules, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted >= len(SCHEDULE_TYPES) and failures == 0


def test_max_total_steps_is_ten_million():
    assert MAX_TOTAL_STEPS == 10_000_000
    assert math.isclose(learning_rates({**COSINE, "total_steps": 10})[0], 3e-4)
