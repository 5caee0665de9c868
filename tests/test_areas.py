"""The two areas against their textbook definitions."""

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fitting.areas import BLOCK, annealing_area, discounted_prefix_sum, forward_area
from fitting.padding import pad_schedule, schedule_length_bucket

# Random examples are padded to one shape so that the jitted kernels compile once.
PADDED = 4 * BLOCK
jit_annealing_area = jax.jit(annealing_area)
jit_forward_area = jax.jit(forward_area)


def textbook_annealing_area(lr, decay, ramp_end):
    """S2(s) = sum_{i <= s} sum_{k <= i} d_k decay^(i - k), d_k = lr[k-1] - lr[k] for k > ramp_end,
    summed term by term (no recurrence)."""
    drops = np.zeros_like(lr)
    drops[1:] = lr[:-1] - lr[1:]
    drops[: ramp_end + 1] = 0.0
    lag = np.arange(lr.size)[:, None] - np.arange(lr.size)[None, :]
    momentum = np.where(lag >= 0, decay ** np.maximum(lag, 0), 0.0) @ drops
    return np.cumsum(momentum)


schedules = arrays(
    np.float64,
    st.integers(1, 150),
    elements=st.floats(0.0, 1e-3, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=60, deadline=None)
@given(lr=schedules, decay=st.floats(0.5, 0.9999), data=st.data())
def test_annealing_area_equals_textbook_double_sum(lr, decay, data):
    ramp_end = data.draw(st.integers(0, lr.size - 1))
    padded = pad_schedule(lr, PADDED)
    got = np.asarray(jit_annealing_area(padded, np.arange(PADDED), decay, ramp_end))[: lr.size]
    want = textbook_annealing_area(lr, decay, ramp_end)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(lr=schedules)
def test_forward_area_is_the_cumulative_sum(lr):
    got = np.asarray(jit_forward_area(pad_schedule(lr, PADDED), np.arange(PADDED)))[: lr.size]
    np.testing.assert_allclose(got, np.cumsum(lr), rtol=1e-12, atol=1e-18)


@settings(max_examples=30, deadline=None)
@given(
    value=st.floats(1e-6, 1e-2),
    length=st.integers(1, 5000),
    decay=st.floats(0.9, 0.99999),
)
def test_constant_schedule_areas_are_exact(value, length, decay):
    lr = np.full(schedule_length_bucket(5000), value)
    steps = np.linspace(0, length - 1, 97).astype(int)
    np.testing.assert_allclose(
        np.asarray(jit_forward_area(lr, steps)), (steps + 1) * value, rtol=1e-12
    )
    assert np.all(np.asarray(jit_annealing_area(lr, steps, decay, 0)) == 0.0)


def test_one_drop_gives_the_closed_form():
    """A drop of size h at step t0 gives S2(s) = h * (1 - decay^(s - t0 + 1)) / (1 - decay)."""
    t0, h, decay = 1000, 2e-4, 0.995
    lr = np.r_[np.full(t0, 3e-4), np.full(3 * BLOCK * 20 - t0, 1e-4)]
    steps = np.arange(t0, lr.size, 37)
    want = h * (1 - decay ** (steps - t0 + 1)) / (1 - decay)
    np.testing.assert_allclose(np.asarray(annealing_area(lr, steps, decay)), want, rtol=1e-10)


def test_ramp_end_removes_the_warmup_ramp_only():
    warmup = np.linspace(0, 3e-4, 200)
    lr = np.r_[warmup, np.full(150, 3e-4), np.full(162, 1e-4)]
    steps = np.array([100, 199, 300, 400, 511])
    counted = np.asarray(annealing_area(lr, steps, 0.99, 0))
    excluded = np.asarray(annealing_area(lr, steps, 0.99, 199))
    assert counted[0] < 0 and excluded[0] == 0.0  # a rising rate makes S2 negative
    np.testing.assert_allclose(excluded, textbook_annealing_area(lr, 0.99, 199)[steps], rtol=1e-9)


def test_batched_rows_match_one_at_a_time():
    rng = np.random.default_rng(0)
    lr = np.cumsum(rng.uniform(0, 1e-5, (3, 4 * BLOCK)), axis=1)[:, ::-1].copy()
    steps = np.sort(rng.choice(4 * BLOCK, (3, 10), replace=False), axis=1)
    batched = np.asarray(discounted_prefix_sum(lr, steps, 0.97))
    for row in range(3):
        one = np.asarray(discounted_prefix_sum(lr[row], steps[row], 0.97))
        np.testing.assert_allclose(batched[row], one, rtol=1e-13)
