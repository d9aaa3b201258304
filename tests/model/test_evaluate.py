"""Threshold selection and the metrics of the evaluation report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model import evaluate


def test_threshold_is_the_highest_that_meets_the_sensitivity_target():
    y = np.array([0] * 10 + [1] * 20)
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 0.6, 10), rng.uniform(0.3, 1.0, 20)])
    t = evaluate.threshold_for_sensitivity(y, scores, 0.95)
    m = evaluate.metrics_at(y, scores, t)
    assert m["sensitivity"] >= 0.95
    # any higher threshold (the next positive score up) misses the target
    higher = np.min(scores[(y == 1) & (scores > t)])
    assert evaluate.metrics_at(y, scores, higher)["sensitivity"] < 0.95


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_threshold_meets_any_target(target):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    scores = rng.uniform(0, 1, 200)
    t = evaluate.threshold_for_sensitivity(y, scores, target)
    assert evaluate.metrics_at(y, scores, t)["sensitivity"] >= target


def test_without_positives_the_threshold_is_neutral():
    assert evaluate.threshold_for_sensitivity([0, 0], [0.1, 0.9]) == 0.5


def test_metrics_at_a_threshold():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.8, 0.4, 0.7, 0.8, 0.9]
    m = evaluate.metrics_at(y, scores, 0.5, target=0.9)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["sensitivity"] == m["specificity"] == m["precision"] == m["accuracy"] == 0.75
    assert m["f1"] == pytest.approx(0.75)
    assert m["roc_auc"] == pytest.approx(13.5 / 16)  # 13 wins + 1 tie of 16 pairs
    assert m["threshold"] == 0.5 and m["threshold_target_sensitivity"] == 0.9
    assert set(evaluate.METRIC_KEYS) <= set(m)
    json.dumps(m)  # plain JSON types only


def test_single_class_data_has_no_auc():
    m = evaluate.metrics_at([1, 1, 1], [0.2, 0.6, 0.9], 0.5)
    assert m["roc_auc"] is None and m["sensitivity"] == pytest.approx(2 / 3)


def test_roc_pr_plot_is_a_png(tmp_path):
    path = evaluate.plot_curves([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], tmp_path / "c.png", "t", 0.5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bootstrap_intervals_hold_the_estimate_and_shrink_with_more_images():
    rng = np.random.default_rng(3)

    def sample(n):
        y = rng.integers(0, 2, n)
        return y, np.clip(0.35 * y + rng.normal(0.35, 0.2, n), 0, 1)

    small = evaluate.metrics_with_intervals(*sample(120), 0.5, n=400)
    large = evaluate.metrics_with_intervals(*sample(3000), 0.5, n=400)
    for m in (small, large):
        for key in ("roc_auc", "sensitivity", "specificity"):
            lo, hi = m["ci95"][key]
            assert lo <= m[key] <= hi
    width = {k: large["ci95"][k][1] - large["ci95"][k][0] for k in large["ci95"]}
    for key, (lo, hi) in small["ci95"].items():
        assert hi - lo > 2 * width[key]  # 25x the images: about 5x narrower


def test_bootstrap_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.uniform(0, 1, 300), 2)  # ties included
    assert evaluate._auc(y, s) == pytest.approx(roc_auc_score(y, s))
