"""The multi-power law: its drop sum against the textbook double sum, and its held-out accuracy
on the MPL curves (fitted on three, predicting six)."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fitting.fit import fit_law, predict_losses, predict_runs
from fitting.laws import get_law
from fitting.laws.multi_power import (
    PRIOR_CENTRE,
    RATE_FLOOR,
    drop_sum,
    exact_drop_sum,
    far_field_blocks,
    paper_parameters,
)
from fitting.metrics import curve_metrics
from fitting.padding import pad_schedule, schedule_length_bucket
from fitting.schedules import learning_rates, warmup_steps_of
from tests.curves import FITTING, HELD_OUT, SIZES, load_run, schedule_specs

LAW = get_law("multi_power")


def textbook_drop_sum(lr, step, ramp_end, c, beta, gamma, lr_ref):
    """``sum_{ramp_end < k <= step} (u[k-1] - u[k]) G(u[k]**(-gamma) sum_{k<=t<=step} u[t])``."""
    u = np.asarray(lr, dtype=np.float64) / lr_ref
    k = np.arange(1, step + 1)
    k = k[k > ramp_end]
    tail = np.cumsum(u[: step + 1][::-1])[::-1]  # tail[k] = sum_{k <= t <= step} u[t]
    x = np.maximum(u[k], RATE_FLOOR) ** (-gamma) * tail[k]
    return float(np.sum((u[k - 1] - u[k]) * (1.0 - (1.0 + c * x) ** (-beta))))


def far_field_error_bound(lr, step, ramp_end, c, beta, gamma, lr_ref, sizes, separation):
    """``sum over expanded blocks of |d|-mass * (g(u_max, y_min) - g(u_min, y_max))``.

    ``g = (1 + C u**(-gamma) y)**(-beta)`` rises with the rate ``u`` and falls with the area ``y``
    since the drop, so every term of a block lies between those two values, and so do the exact
    block sum and the clipped expansion (divided by the mass).
    """
    u = np.asarray(lr, dtype=np.float64) / lr_ref
    d = np.zeros_like(u)
    d[1:] = u[:-1] - u[1:]
    d[: ramp_end + 1] = 0.0
    area = np.cumsum(u)
    blocks, _ = far_field_blocks(step, u.size, sizes, separation)
    bound = 0.0
    for start, stop in blocks:
        i = start + np.flatnonzero(d[start:stop])
        if i.size:
            rate = np.maximum(u[i], RATE_FLOOR)
            y = area[step] - area[i] + u[i]

            def g(rate, y):
                return (1.0 + c * rate ** (-gamma) * y) ** (-beta)

            bound += np.abs(d[i]).sum() * (g(rate.max(), y.min()) - g(rate.min(), y.max()))
    return bound


@st.composite
def schedules(draw):
    """Short schedules built like real ones: a warmup, flat stretches, smooth decays, jumps."""
    length = 256
    rate = draw(st.integers(13, 64)) / 64
    lr = []
    warmup = draw(st.integers(0, length // 4))
    lr += list(np.linspace(0.0, rate, warmup)) if warmup > 1 else []
    while len(lr) < length:
        span = draw(st.integers(1, length))
        kind = draw(st.sampled_from(["flat", "linear", "cosine", "jump"]))
        target = draw(st.integers(0, 64)) / 64  # 0, or at least 1/64 of the peak
        x = np.arange(1, span + 1) / span
        if kind == "flat":
            piece = np.full(span, rate)
        elif kind == "linear":
            piece = rate + (target - rate) * x
        elif kind == "cosine":
            piece = target + (rate - target) * (1 + np.cos(np.pi * x)) / 2
        else:
            piece = np.full(span, target)
        lr += list(piece)
        rate = float(piece[-1])
    lr = np.asarray(lr[:length]) * 3e-4
    if not lr.max() > 0:
        lr[0] = 3e-4
    return lr


parameters = st.tuples(
    st.floats(1e-3, 10.0),  # C
    st.floats(0.05, 3.0),  # beta
    st.floats(0.0, 1.5),  # gamma
)


@settings(max_examples=30, deadline=None)
@given(schedules(), parameters, st.data())
def test_summed_exactly_the_drop_sum_is_the_textbook_double_sum(lr, params, data):
    c, beta, gamma = params
    ramp_end = data.draw(st.integers(0, lr.size - 1))
    steps = np.array(data.draw(st.lists(st.integers(0, lr.size - 1), min_size=8, max_size=8)))
    lr_ref = float(lr.max())
    got = drop_sum(lr, steps, ramp_end, c, beta, gamma, lr_ref, sizes=(lr.size,))
    want = [textbook_drop_sum(lr, s, ramp_end, c, beta, gamma, lr_ref) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # The planner's exact evaluation (the law's exact_predict) is the same sum.
    exact = exact_drop_sum(lr, steps, ramp_end, c, beta, gamma, lr_ref)
    np.testing.assert_allclose(exact, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(schedules(), parameters, st.data())
def test_block_expansion_stays_within_its_error_bound(lr, params, data):
    c, beta, gamma = params
    ramp_end = data.draw(st.sampled_from([0, warmup_steps_of(lr)]))
    sizes, separation = data.draw(st.sampled_from([((8, 32, 128), 1), ((16, 64), 2)]))
    steps = np.array(data.draw(st.lists(st.integers(0, lr.size - 1), min_size=8, max_size=8)))
    lr_ref = float(lr.max())
    got = drop_sum(lr, steps, ramp_end, c, beta, gamma, lr_ref, sizes=sizes, separation=separation)
    for s, value in zip(steps, np.asarray(got), strict=True):
        want = textbook_drop_sum(lr, s, ramp_end, c, beta, gamma, lr_ref)
        bound = far_field_error_bound(lr, s, ramp_end, c, beta, gamma, lr_ref, sizes, separation)
        assert abs(value - want) <= bound * (1 + 1e-9) + 1e-11


@pytest.mark.parametrize("length", [64, 1000, 24_000, 100_000])
def test_expanded_and_exact_blocks_tile_every_step(length):
    padded = schedule_length_bucket(length)
    for step in np.linspace(0, length - 1, 37).astype(int):
        blocks, first_exact = far_field_blocks(int(step), padded)
        covered = sorted(blocks)
        edges = [0] + [stop for _, stop in covered]
        assert [start for start, _ in covered] == edges[:-1]
        assert edges[-1] == first_exact <= step


@pytest.mark.parametrize(
    ("name", "warmup_included"),
    [("cosine_24000", True), ("wsd_20000_24000", True), ("wsd_20000_24000", False)],
)
def test_on_the_mpl_schedules_the_expansion_is_within_1e5_of_the_exact_sum(name, warmup_included):
    lr = learning_rates(schedule_specs()[name])
    padded = pad_schedule(lr, schedule_length_bucket(lr.size))
    ramp_end = 0 if warmup_included else warmup_steps_of(lr)
    steps = np.arange(2160, lr.size, 97)
    c, beta, gamma = PRIOR_CENTRE["C"], PRIOR_CENTRE["beta"], PRIOR_CENTRE["gamma"]
    got = drop_sum(padded, steps, ramp_end, c, beta, gamma, 3e-4)
    exact = drop_sum(padded, steps, ramp_end, c, beta, gamma, 3e-4, sizes=(padded.size,))
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5)  # LD = B * this: B ~ 0.2


def test_prediction_does_not_depend_on_the_chunk_size():
    lr = pad_schedule(learning_rates(schedule_specs()["cosine_24000"]), 24_576)
    steps = np.arange(0, 24_000, 11)
    args = (lr, steps, 0, 0.1, 0.5, 0.6, 3e-4)
    whole = np.asarray(drop_sum(*args, chunk=steps.size))
    ragged = np.asarray(drop_sum(*args, chunk=500))  # the last of 5 chunks is padded
    np.testing.assert_allclose(ragged, whole, rtol=1e-13)


def test_lr_ref_is_a_unit_only():
    lr = learning_rates(schedule_specs()["wsdcon_3"])
    params = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "B": 0.15, "C": 0.1, "beta": 0.6, "gamma": 0.6}
    base = predict_losses(LAW, {**params, "lr_ref": 3e-4}, [lr], [np.arange(2160, 16000, 500)])[0]
    scale = 7.0  # the same law in another unit: B and C rescale with lr_ref
    rescaled = {
        **params,
        "B": params["B"] * scale,
        "C": params["C"] * scale ** (1 - params["gamma"]),
        "lr_ref": 3e-4 * scale,
    }
    again = predict_losses(LAW, rescaled, [lr], [np.arange(2160, 16000, 500)])[0]
    np.testing.assert_allclose(again, base, rtol=1e-12)
    assert paper_parameters(rescaled)["B"] == pytest.approx(
        paper_parameters({**params, "lr_ref": 3e-4})["B"]
    )


def test_paper_parameters_reproduce_the_published_held_out_error_at_400m():
    # Luo et al.'s fitted 400M parameters, in the paper's units (their README): with the warmup
    # ramp in LD, as their code, the published average held-out PredE 0.00168 and WorstE 0.00995.
    paper = {"L0": 2.375, "A": 0.654, "alpha": 0.429, "B": 523.425, "C": 2.025, "beta": 0.594}
    gamma, lr_ref = 0.635, 3e-4
    params = {
        **paper,
        "gamma": gamma,
        "B": paper["B"] * lr_ref,
        "C": paper["C"] * lr_ref ** (1 - gamma),
        "lr_ref": lr_ref,
    }
    held = [load_run("400M", name) for name in HELD_OUT]
    metrics = [
        curve_metrics(p, r.loss)
        for p, r in zip(predict_runs(LAW, params, held, "include"), held, strict=True)
    ]
    assert np.mean([m["pred_e"] for m in metrics]) == pytest.approx(0.00168, abs=5e-6)
    assert np.mean([m["worst_e"] for m in metrics]) == pytest.approx(0.00995, abs=3e-5)


# ---------------------------------------------------------------------------------------------
# Fitting on the real curves.


# The paper's own averages over the six held-out curves (its code, its fit; README of ../shared/
# data) are 0.00110 and 0.00168; our fit with the prior reaches 0.00117 and 0.00217: better on
# the WSD curves, worse on the 72k-step ones. The paper's parameters are not an optimum of any
# fitting objective (they fit the fitting runs 4x worse than ours; with them held fixed and L0,
# A, B refitted, 400M gives 0.00232): its AdamW stopped early, and that happens to extrapolate
# the long curves well. The live-forecast issue restated what we promise: `auto` within 0.0001
# of the better law (tests/test_intervals.py).
# What this fit reaches, with a margin for rounding across platforms.
REACHED_PRED_E = {"25M": 0.00120, "400M": 0.00222}


@functools.cache
def fitted(size: str):
    return fit_law(LAW, [load_run(size, name) for name in FITTING])


def held_out_pred_e(size: str) -> float:
    result = fitted(size)
    held = [load_run(size, name) for name in HELD_OUT]
    predictions = predict_runs(LAW, result.params, held, result.warmup)
    return float(
        np.mean(
            [curve_metrics(p, r.loss)["pred_e"] for p, r in zip(predictions, held, strict=True)]
        )
    )


@pytest.mark.parametrize("size", SIZES)
def test_fit_on_three_mpl_runs_predicts_the_six_held_out_curves(size):
    result = fitted(size)
    assert result.converged, result.message
    assert result.at_bounds == []
    assert result.params["lr_ref"] == 3e-4
    assert held_out_pred_e(size) <= REACHED_PRED_E[size]


def test_prior_keeps_the_25m_shape_away_from_the_degenerate_corner():
    # Without the prior, beta -> 0.11 and gamma -> 0.79, and the held-out error is 0.00130.
    params = fitted("25M").params
    assert 0.2 < params["beta"] < 1.0 and 0.3 < params["gamma"] < 0.7


def test_a_warm_fit_takes_seconds_not_minutes():
    runs = [load_run("400M", name) for name in FITTING]
    fitted("400M")  # compiled
    began = time.perf_counter()
    fit_law(LAW, runs)
    assert time.perf_counter() - began < 10.0  # ~1 s on an idle 2-core machine
