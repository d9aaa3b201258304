"""Calibration: make the served probability mean what it says.

The network is trained with class weights (both classes count equally), so its sigmoid output
is a ranking score, not the chance of pneumonia: the old card showed "58.7 % probability of
pneumonia" on images it called Normal, because its threshold was 60.8 %. A run therefore fits
a two-parameter logistic map on the logit (temperature scaling with a bias, Platt 1999):

    p_calibrated = sigmoid(a * logit(p_raw) + b)

on a *calibration* split of held-out patients, disjoint from the validation split that picks
the decision threshold (fitting both on one split would make the threshold look better than
it is). ``a`` is the inverse temperature; ``b`` absorbs the class weighting's shift of the
prior. The map is monotonic, so ROC AUC and the decision (threshold moved onto the same
scale) are unchanged: only the number shown changes. Isotonic regression was not used: on a
few hundred calibration images it makes a step function with many ties, which a monotonic
two-parameter map avoids.

The worker applies :func:`apply` to every raw output (model/serving/predictor.py); the card
records the parameters (``calibration``), the Brier score and the expected calibration error
before and after, per split, and ``reliability_<split>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EPS = 1e-6
METHOD = "temperature scaling with bias (Platt): sigmoid(a * logit(p) + b)"


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z) -> np.ndarray:
    z = np.clip(np.asarray(z, dtype=np.float64), -500, 500)
    return 1.0 / (1.0 + np.exp(-z))


def fit(labels, probs, l2: float = 1e-4) -> dict:
    """Fit ``a`` and ``b`` by maximum likelihood (L-BFGS; a tiny ridge keeps them finite)."""
    from scipy.optimize import minimize

    y = np.asarray(labels, dtype=np.float64)
    z = logit(probs)
    if y.size == 0 or y.min() == y.max():
        return {"method": METHOD, "a": 1.0, "b": 0.0, "n": int(y.size)}

    def nll(w):
        t = w[0] * z + w[1]
        loss = np.mean(np.logaddexp(0.0, t) - y * t) + l2 * (w @ w)
        p = sigmoid(t)
        grad = np.array([np.mean((p - y) * z), np.mean(p - y)]) + 2 * l2 * w
        return loss, grad

    w = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return {"method": METHOD, "a": float(w[0]), "b": float(w[1]), "n": int(y.size)}


def apply(calibration: dict | None, probs) -> np.ndarray:
    """Calibrated probabilities; the identity for a card without calibration (older models)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not calibration:
        return probs
    return sigmoid(calibration["a"] * logit(probs) + calibration["b"])


def brier(labels, probs) -> float:
    """Mean squared error of the probability against the 0/1 truth (lower is better)."""
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if y.size else 0.0


def reliability(labels, probs, bins: int = 10) -> list[dict]:
    """Per probability bin: its range, how many images, mean predicted and observed rate."""
    y, p = np.asarray(labels, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "range": [float(edges[b]), float(edges[b + 1])],
                    "n": int(mask.sum()),
                    "mean_predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return out


def ece(labels, probs, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted gap between predicted and observed."""
    table = reliability(labels, probs, bins)
    n = sum(row["n"] for row in table)
    if not n:
        return 0.0
    return float(sum(row["n"] * abs(row["mean_predicted"] - row["observed"]) for row in table) / n)


def summary(labels, raw, calibrated) -> dict:
    """Brier and ECE before and after calibration, plus the reliability table (calibrated)."""
    return {
        "brier": round(brier(labels, calibrated), 4),
        "ece": round(ece(labels, calibrated), 4),
        "brier_uncalibrated": round(brier(labels, raw), 4),
        "ece_uncalibrated": round(ece(labels, raw), 4),
        "reliability": reliability(labels, calibrated),
    }


def plot_reliability(labels, raw, calibrated, path: Path, title: str = "") -> Path:
    """Reliability diagram (observed rate against predicted probability), before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for probs, name, style in ((raw, "network output", "o-"), (calibrated, "calibrated", "s-")):
        table = reliability(labels, probs)
        ax.plot(
            [r["mean_predicted"] for r in table],
            [r["observed"] for r in table],
            style,
            label=f"{name} (Brier {brier(labels, probs):.3f}, ECE {ece(labels, probs):.3f})",
        )
    ax.set(
        xlabel="predicted probability of pneumonia",
        ylabel="observed fraction with pneumonia",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
