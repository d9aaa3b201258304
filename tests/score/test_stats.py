"""The figures pneumonia-score prints for a labelled folder."""

from __future__ import annotations

import numpy as np
import pytest

from pneumonia_score import stats


def test_auc_matches_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) * 0.5 + truth * 0.3, 2)  # rounding makes ties
    assert stats.auc(truth, score) == pytest.approx(metrics.roc_auc_score(truth, score))


def test_perfect_and_useless_models():
    truth = np.array([0, 0, 0, 1, 1, 1])
    perfect = stats.summary(
        truth, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1], resamples=200
    )
    assert perfect["auc"] == (1.0, 1.0, 1.0)
    assert perfect["sensitivity"][0] == 1.0 and perfect["specificity"][0] == 1.0
    flat = stats.summary(truth, [0.5] * 6, [1] * 6, resamples=200)
    assert flat["auc"][0] == 0.5 and flat["specificity"][0] == 0.0
    assert (flat["n_pneumonia"], flat["n_normal"]) == (3, 3)


def test_interval_narrows_with_more_images_and_holds_the_estimate():
    rng = np.random.default_rng(2)

    def width(n):
        truth = rng.integers(0, 2, n)
        score = rng.random(n) * 0.6 + truth * 0.4
        s = stats.summary(truth, score, score > 0.5, resamples=500)
        value, low, high = s["auc"]
        assert low <= value <= high
        return high - low

    assert width(2000) < width(60) / 2


def test_one_class_only_has_no_auc():
    s = stats.summary([1, 1, 1], [0.2, 0.6, 0.9], [0, 1, 1], resamples=50)
    assert np.isnan(s["auc"][0]) and s["sensitivity"][0] == pytest.approx(2 / 3)
