"""The benchmark's numpy yardstick for the multi-power law (bench/reference_multi_power.py) agrees
with losscast's kernel, so that ``make bench`` compares like with like."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from bench import reference_multi_power
from bench.reference import ramp_end
from fitting.fit import predict_losses
from fitting.laws import get_law
from tests.curves import load_run

LAW = get_law("multi_power")
# Round values near the 25M fit of the split (cosine_24000, constant_24000, wsdcon_9).
PARAMS = {
    "L0": 3.02,
    "A": 0.534,
    "alpha": 0.505,
    "B": 0.135,
    "C": 0.087,
    "beta": 0.35,
    "gamma": 0.49,
    "lr_ref": 3e-4,
}


@pytest.mark.parametrize("warmup", ["include", "exclude"])
def test_numpy_reference_predicts_wsdcon_9_like_predict_losses_within_1e_5(warmup):
    run = load_run("25M", "wsdcon_9")
    ours = predict_losses(LAW, PARAMS, [run.lr], [run.steps], warmup)[0]
    reference = reference_multi_power.reference_predict(
        PARAMS, run.lr, run.steps, ramp_end(run.lr, warmup)
    )
    assert np.max(np.abs(ours - reference) / reference) <= 1e-5


def test_numpy_reference_prior_equals_the_laws_penalty():
    vector = jnp.asarray([PARAMS[name] for name in LAW.names])
    assert reference_multi_power.prior_penalty(PARAMS) == pytest.approx(
        float(LAW.penalty(vector)), rel=1e-12
    )
