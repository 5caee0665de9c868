"""The compiled executables a kernel keeps are bounded (fitting.compiled), and runs of any length
map to a few padded shapes (fitting.padding): a long-lived server must not accumulate
executables (each holds hundreds of memory mappings) until it dies at vm.max_map_count."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fitting import intervals
from fitting.compiled import KERNELS, MAX_EXECUTABLES, bounded_jit
from fitting.fit import COMPILATIONS, Run, _batch, count_traces, predict_losses
from fitting.laws import get_law
from fitting.padding import MIN_LENGTH, fit_shape, length_bucket, prediction_shape
from fitting.schedules import learning_rates

LAW = get_law("lr_annealing")
PARAMS = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0, "decay": 0.998}


def test_a_bounded_kernel_evicts_its_least_recently_used_signature():
    traces = []

    @bounded_jit(capacity=3, name="test.double")
    def double(x):
        traces.append(x.shape)
        return 2 * x

    for size in range(1, 7):
        np.testing.assert_array_equal(double(jnp.ones(size)), 2 * np.ones(size))
    assert double.signatures == 3 and double.executables() == 3
    assert double.evictions == 3
    double(jnp.ones(6))  # held: no new trace
    assert len(traces) == 6
    double(jnp.ones(1))  # evicted: traced and compiled again, evicting the oldest held (4,)
    assert traces[-1] == (1,) and double.evictions == 4
    double(jnp.ones(5))
    assert len(traces) == 7
    double.clear_cache()
    assert double.signatures == 0 and double.executables() == 0


def test_predictions_of_many_shapes_keep_at_most_the_bound_loaded():
    kernel = KERNELS["predict"]
    lr = learning_rates({"type": "cosine", "peak_lr": 3e-4, "total_steps": 4000})
    before, evicted = COMPILATIONS["predict"], kernel.evictions
    shapes = set()
    # Distinct (points, candidates) buckets on one short schedule: cheap to compile.
    for points in (300, 700, 1500):
        for count in (1, 3, 5, 9):
            steps = np.linspace(1, 3999, points).astype(np.int64)
            predicted = predict_losses(LAW, PARAMS, [lr] * count, [steps] * count)
            assert all(np.all(np.isfinite(p)) for p in predicted)
            shapes.add(prediction_shape(lr.size, points, count))
            assert kernel.signatures <= MAX_EXECUTABLES
            assert kernel.executables() <= MAX_EXECUTABLES
    assert len(shapes) > MAX_EXECUTABLES
    # Each shape not already held compiled once; what went past the bound was evicted.
    assert COMPILATIONS["predict"] - before <= len(shapes)
    assert kernel.evictions - evicted >= len(shapes) - MAX_EXECUTABLES


def test_the_fit_and_prediction_kernels_are_bounded():
    assert (
        intervals._log_prediction_and_jacobian is KERNELS["intervals.log_prediction_and_jacobian"]
    )
    for name in ("fit.value_and_grad", "fit.starts", "predict"):
        assert KERNELS[name].capacity == MAX_EXECUTABLES
    assert KERNELS["intervals.log_prediction_and_jacobian"].capacity == MAX_EXECUTABLES


def test_runs_of_100_to_200000_steps_map_to_seven_fit_lengths():
    lengths = np.unique(np.round(np.geomspace(100, 200_000, 400)).astype(int))
    buckets = {length_bucket(n) for n in lengths}
    assert sorted(buckets) == [MIN_LENGTH * 2**k for k in range(7)]
    for n in lengths[lengths > MIN_LENGTH]:
        assert n <= length_bucket(n) < 2 * n  # at most twice the work
    # Sparse (every 100 steps) and dense (every step) runs: a few points buckets per length.
    shapes = {fit_shape(n, max(1, n // 100), 1) for n in lengths}
    shapes |= {fit_shape(n, n - 1, 1) for n in lengths}
    assert len(shapes) <= 24
    assert all(points <= length for length, points, _ in shapes)


def test_a_fit_of_one_run_and_its_forecast_share_prediction_shapes():
    lr = learning_rates({"type": "cosine", "peak_lr": 3e-4, "total_steps": 30_000})
    steps = np.arange(100, 30_000, 100)
    run = Run(lr, steps, np.full(steps.size, 3.0))
    batch = _batch([run], "include")
    assert batch["lr"].shape == (1, 32_768) and batch["steps"].shape == (1, 512)
    # The fit's own prediction of its run (1 row) and a forecast (2 rows, 300-point curve).
    assert prediction_shape(lr.size, steps.size, 1) == prediction_shape(lr.size, 300, 2)


def test_count_traces_still_counts_each_compilation_of_a_bounded_kernel():
    @bounded_jit(static_argnums=0, capacity=1, name="test.scaled")
    @count_traces("test.scaled")
    def scaled(factor, x):
        return factor * x

    before = COMPILATIONS["test.scaled"]
    scaled(2.0, jnp.ones(2))
    scaled(2.0, jnp.ones(2))
    scaled(3.0, jnp.ones(2))  # another static argument: another executable, the first evicted
    scaled(2.0, jnp.ones(2))
    assert COMPILATIONS["test.scaled"] - before == 3
