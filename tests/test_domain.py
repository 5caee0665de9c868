"""The records users get (app/domain.py): one JSON form each, read back to the same record."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from app.domain import Curve, FitReport, Model
from fitting.fit import FitResult
from fitting.schedules import learning_rates


def test_a_stored_fit_reads_back_to_the_json_the_api_answered(client, mpl_fit):
    stored = client.get(f"/v1/fits/{mpl_fit['id']}").json()["result"]
    report = FitReport.from_json(stored)
    assert report.to_json() == stored
    assert report.law == "lr_annealing" and report.params == mpl_fit["params"]
    assert set(report.points_fitted) == set(mpl_fit["run_ids"])
    uncertainty, note = report.band_uncertainty()
    assert note is None and uncertainty.covariance.shape == (5, 5)
    model = Model.of_report(report, mpl_fit["id"])
    assert model.fitted.law.name == "lr_annealing" and model.no_band is None
    assert np.array_equal(model.fitted.uncertainty.covariance, uncertainty.covariance)
    assert dict(model.fitted.params) == mpl_fit["params"]


def test_every_fit_result_field_is_a_report_field():
    report_fields = [item.name for item in fields(FitReport)]
    result_fields = [item.name for item in fields(FitResult)]
    assert report_fields[: len(result_fields)] == result_fields


def test_a_report_stored_before_later_fields_existed_reads_with_their_defaults():
    old = {
        "law": "lr_annealing",
        "params": {"L0": 2.5, "A": 0.6, "alpha": 0.45, "C": 1.0, "decay": 0.998},
        "converged": True,
        "message": "CONVERGENCE",
    }
    report = FitReport.from_json(old)
    assert (report.warmup, report.min_step, report.metrics) == ("include", 0, {})
    assert report.points_fitted is None and report.identification == {}
    assert report.band_uncertainty() == (
        None,
        "no prediction intervals: this fit stored no uncertainty",
    )
    model = Model.of_report(report)
    assert model.fitted.uncertainty is None and "stored no uncertainty" in model.no_band


@pytest.mark.parametrize(
    ("uncertainty", "why"),
    [
        ({"noise": 0.01}, "unreadable"),
        (
            {
                "covariance": [[0.0]],
                "noise": 0.01,
                "autocorrelation": 0.2,
                "alternatives": [{"law": "retired_law", "params": {}}],
            },
            "laws no longer registered (['retired_law'])",
        ),
    ],
)
def test_a_stored_uncertainty_that_cannot_make_a_band_says_why(uncertainty, why):
    report = FitReport.from_json(
        {"law": "lr_annealing", "params": {}, "uncertainty": uncertainty, "converged": True}
    )
    found, note = report.band_uncertainty()
    assert found is None and why in note
    assert report.to_json()["uncertainty"] == uncertainty  # kept as stored


def test_a_curve_reads_back_from_its_json():
    lr = learning_rates(
        {"type": "cosine", "peak_lr": 3e-4, "total_steps": 1000, "num_warmup_steps": 100}
    )
    steps = np.array([101, 500, 999])
    loss = np.array([3.1, 2.9, 2.8])
    band = (loss - 0.1, loss + 0.1)
    curve = Curve.on_schedule(lr, steps, loss, band, "cosine")
    assert (curve.total_steps, curve.warmup_end) == (1000, 99)
    assert curve.lr.tolist() == lr[steps].tolist()
    json = curve.to_json()
    assert list(json) == [
        "name",
        "steps",
        "loss",
        "lower",
        "upper",
        "lr",
        "total_steps",
        "warmup_end",
    ]
    again = Curve.from_json(json)
    assert again.to_json() == json and again.upper.tolist() == [3.2, 3.0, 2.9]
    bandless = Curve.on_schedule(lr, steps, loss)
    assert Curve.from_json(bandless.to_json()).lower is None
