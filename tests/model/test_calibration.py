"""Calibration: the served probability should mean what it says."""

from __future__ import annotations

import numpy as np
import pytest

from model import calibration


def miscalibrated(n=2000, seed=0):
    """Labels and an over-confident, shifted score, as class-weighted training produces."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(0, 1, n) < true_p).astype(int)
    raw = calibration.sigmoid(3.0 * calibration.logit(true_p) + 1.5)
    return y, raw, true_p


def test_calibration_reduces_brier_and_ece_on_held_out_scores():
    y_fit, raw_fit, _ = miscalibrated(seed=0)
    y, raw, _ = miscalibrated(seed=1)  # fitted on one split, judged on another
    fitted = calibration.fit(y_fit, raw_fit)
    calibrated = calibration.apply(fitted, raw)
    assert calibration.brier(y, calibrated) < calibration.brier(y, raw) - 0.01
    assert calibration.ece(y, calibrated) < 0.04 < calibration.ece(y, raw)
    # it recovers the map that made the score over-confident: a ~ 1/3, b ~ -0.5
    assert fitted["a"] == pytest.approx(1 / 3, abs=0.08)
    assert fitted["b"] == pytest.approx(-0.5, abs=0.2)


def test_calibration_keeps_the_ranking_and_the_decision():
    y, raw, _ = miscalibrated(seed=2)
    calibrated = calibration.apply(calibration.fit(y, raw), raw)
    assert np.array_equal(np.argsort(raw, kind="stable"), np.argsort(calibrated, kind="stable"))


def test_a_card_without_calibration_serves_the_network_output():
    raw = np.array([0.01, 0.5, 0.99])
    assert np.allclose(calibration.apply(None, raw), raw)


def test_degenerate_inputs_do_not_break_the_fit():
    assert calibration.fit([1, 1, 1], [0.2, 0.9, 1.0])["a"] == 1.0
    fitted = calibration.fit([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0])  # separable, saturated
    assert np.isfinite([fitted["a"], fitted["b"]]).all()


def test_reliability_diagram_is_written(tmp_path):
    y, raw, _ = miscalibrated(n=300)
    calibrated = calibration.apply(calibration.fit(y, raw), raw)
    path = calibration.plot_reliability(y, raw, calibrated, tmp_path / "rel.png", "test")
    assert path.stat().st_size > 5000
    table = calibration.summary(y, raw, calibrated)["reliability"]
    assert sum(row["n"] for row in table) == 300
