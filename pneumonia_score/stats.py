"""AUC, sensitivity and specificity of a scored, labelled folder, with bootstrap intervals.

Sensitivity and specificity are those of the label the API returned (its threshold, served with
the model); the AUC uses the probability. Intervals are percentile bootstraps over images
(resampled with replacement, a fixed seed so a rerun prints the same figures).
"""

from __future__ import annotations

import numpy as np


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); NaN without both classes."""
    pos = truth.sum()
    neg = len(truth) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    return float((ranks[truth == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _rate(hit: np.ndarray, among: np.ndarray) -> float:
    n = among.sum()
    return float((hit & among).sum() / n) if n else float("nan")


def point(truth: np.ndarray, score: np.ndarray, called: np.ndarray) -> dict[str, float]:
    positive, negative = truth == 1, truth == 0
    return {
        "auc": auc(truth, score),
        "sensitivity": _rate(called == 1, positive),
        "specificity": _rate(called == 0, negative),
    }


def summary(truth, score, called, resamples: int = 2000, seed: int = 0, level: float = 0.95):
    """``{metric: (estimate, low, high)}`` plus the counts, for 1 = pneumonia, 0 = normal."""
    truth, score, called = (np.asarray(a, dtype=float) for a in (truth, score, called))
    truth, called = truth.astype(int), called.astype(int)
    estimates = point(truth, score, called)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in estimates}
    for _ in range(resamples):
        idx = rng.integers(0, len(truth), len(truth))
        for key, value in point(truth[idx], score[idx], called[idx]).items():
            if not np.isnan(value):
                draws[key].append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for key, value in estimates.items():
        sample = draws[key]
        low, high = np.percentile(sample, [tail, 100 - tail]) if sample else (np.nan, np.nan)
        out[key] = (value, float(low), float(high))
    out["n_pneumonia"] = int(truth.sum())
    out["n_normal"] = int(len(truth) - truth.sum())
    return out
