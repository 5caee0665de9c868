"""The continual-pre-training law (fitting.laws.cpt) on the real curves of tests/data/tinycpt:
its base-only case is the LR-annealing law, replay lowers forgetting, and a fit on two branches
predicts a third."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.cpt import cpt_runs, load_study
from fitting.continual import continual_run, continual_schedule, history_shares
from fitting.errors import InvalidInput
from fitting.fit import fit_law, predict_losses, predict_runs
from fitting.laws import get_law
from fitting.laws.cpt import CPT, REPLAY_PRIOR, cpt_bounds
from fitting.metrics import curve_metrics

DATA = Path(__file__).parent / "data" / "tinycpt"
LR_ANNEALING = get_law("lr_annealing")

# Round values of the fit of ``cpt`` (every parameter free) to the base run and all five
# branches, both domains.
FITTED = {
    "L0_old": 0.0,
    "A_old": 1.552,
    "alpha_old": 0.1711,
    "C_old": 7.535,
    "B_old": 0.0920,
    "E_old": 3138.0,
    "L0_new": 3.065,
    "A_new": 0.0401,
    "alpha_new": 0.736,
    "C_new": 6.02,
    "B_new": -2.014,
    "E_new": 466.0,
    "beta_new": 0.183,
    "Ccpt": 4.93,
    "decay": 0.9476,
    "K_replay": 17.1,
    "gamma_old": 1.144,
    "gamma_new": 0.733,
}


@pytest.fixture(scope="module")
def study():
    return load_study(DATA)


@pytest.mark.parametrize("domain", ["old", "new"])
def test_cpt_on_the_base_run_alone_is_the_lr_annealing_law(study, domain):
    base, _ = study
    steps, loss = base.logged[domain]
    suffix = f"_{domain}"
    annealing = {
        "L0": FITTED["L0" + suffix],
        "A": FITTED["A" + suffix],
        "alpha": FITTED["alpha" + suffix],
        "C": FITTED["C" + suffix],
        "decay": FITTED["decay"],
    }
    run = continual_run(base.lr, (), steps, loss, domain=domain)
    ours = predict_runs(CPT, FITTED, [run])[0]
    theirs = predict_losses(LR_ANNEALING, annealing, [base.lr], [steps - 1], "include")[0]
    assert np.max(np.abs(ours - theirs) / theirs) <= 1e-9
    # and it describes the base's real curve on that domain
    assert curve_metrics(ours, loss)["pred_e"] <= 0.008


def test_replay_lowers_predicted_forgetting_and_costs_a_little_on_the_new_domain(study):
    base, branches = study
    branch = branches["cos_1.5e-3_replay25"]
    finals = {}
    for replay in (0.0, 0.25):
        for domain in ("old", "new"):
            steps, loss = branch.logged[domain]
            run = continual_run(
                base.lr, branch.lr, steps, loss, domain=domain, replay=replay, name=domain
            )
            finals[replay, domain] = predict_runs(CPT, FITTED, [run])[0][[0, -1]]
    checkpoint = finals[0.0, "old"][0]
    assert checkpoint == pytest.approx(branch.logged["old"][1][0], rel=0.01)
    forgetting = {r: finals[r, "old"][1] - checkpoint for r in (0.0, 0.25)}
    assert forgetting[0.0] > 0.4  # without replay: about as much as the branches show (0.6-0.9)
    assert forgetting[0.25] < 0.5 * forgetting[0.0]
    # the measured final of the replay branch on the old domain, within 3% (2.1% in-sample)
    assert finals[0.25, "old"][1] == pytest.approx(branch.logged["old"][1][-1], rel=0.03)
    cost = finals[0.25, "new"][1] / finals[0.0, "new"][1] - 1
    assert 0.002 < cost < 0.05, cost


def test_fit_on_two_branches_predicts_the_third_on_both_domains(study):
    base, branches = study
    training = cpt_runs(base, None)
    for name in ("const_1.5e-3", "cos_3e-3"):
        training += cpt_runs(base, branches[name])
    # The base run's own shape and the old domain's shift held at the full fit's values: the fit
    # estimates the new domain's shift (E_new, beta_new, gamma_new) and every linear coefficient.
    held = ("alpha_old", "alpha_new", "decay", "E_old", "gamma_old")
    result = fit_law(CPT, training, fixed={name: FITTED[name] for name in held})
    assert result.converged, result.message
    assert result.bounds["K_replay"] == [REPLAY_PRIOR, REPLAY_PRIOR]  # no replay in these runs
    target = cpt_runs(base, branches["cos_7.5e-4"])
    # final within 1.5% (new) / 2.5% (old), PredE within 1.5% / 2% (measured: finals 1.04% /
    # 0.68%, PredE 1.09% / 0.66%)
    limits = {"new": (0.015, 0.015), "old": (0.025, 0.02)}
    for run, predicted in zip(target, predict_runs(CPT, result.params, target), strict=True):
        final, pred_e = limits[run.name.split("/")[1]]
        error = abs(predicted[-1] / run.loss[-1] - 1)
        print(run.name, error, curve_metrics(predicted, run.loss)["pred_e"])
        assert error <= final, (run.name, error)
        assert curve_metrics(predicted, run.loss)["pred_e"] <= pred_e, run.name


def test_history_encoding_and_bad_input():
    x = continual_schedule(np.array([1.0, 2.0]), np.array([3.0, 4.0]), domain="old", replay=0.25)
    assert x.tolist() == [1.0, 1.0, 2.0, 1.0, 3.0, 0.25, 4.0, 0.25]
    run = continual_run(np.ones(5), np.ones(3), np.array([0, 3]), np.ones(2), domain="new")
    assert run.steps.tolist() == [2 * 4 + 1, 2 * 7 + 1]  # the checkpoint is base index 4
    assert history_shares(1, 2, "new").tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(InvalidInput, match="domain"):
        history_shares(1, 1, "c")
    with pytest.raises(InvalidInput, match="replay"):
        continual_schedule(np.ones(2), np.ones(2), domain="old", replay=1.0)
    bounds = cpt_bounds([x], [np.array([7])])
    assert "K_replay" not in bounds  # a replayed run identifies it
    plain = continual_schedule(np.array([1.0, 2.0]), np.array([3.0, 4.0]), domain="old")
    assert cpt_bounds([plain], [np.array([7])])["K_replay"] == (REPLAY_PRIOR, REPLAY_PRIOR)
