"""Evaluate: the numbers clinicians ask for, at a threshold chosen for sensitivity.

Sensitivity comes first (a missed pneumonia costs more than a false alarm), so the decision
threshold is the highest one that still catches ``target`` (default 95 %) of the pneumonias
on the *validation* split; every other number is reported at that threshold. Evaluating new
data reuses the threshold stored in the model card: choosing it again on the data being
scored would flatter the result.

CLI::

    python -m model.evaluate --model var/models/<version> --data DIR [--out FILE]

``DIR`` may hold ``test/``, a bare ``NORMAL/`` + ``PNEUMONIA/``, or only ``train/`` (then the
model's own held-out patients are rebuilt from the split recorded in its card).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

TARGET_SENSITIVITY = 0.95
METRIC_KEYS = (
    "roc_auc",
    "pr_auc",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "accuracy",
    "confusion_matrix",
    "threshold",
    "threshold_target_sensitivity",
    "n",
)


def threshold_for_sensitivity(y_true, scores, target: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold t with sensitivity(score >= t) >= target.

    Highest, because among the thresholds that meet the sensitivity target it gives the best
    specificity. Without positives there is nothing to aim at: 0.5.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    positives = np.sort(scores[y_true == 1])[::-1]
    if positives.size == 0:
        return 0.5
    k = int(np.ceil(target * positives.size - 1e-9))  # positives that must be caught
    return float(positives[max(k, 1) - 1])


def metrics_at(y_true, scores, threshold: float, target: float = TARGET_SENSITIVITY) -> dict:
    """Every metric of the model card at one threshold (prediction: score >= threshold)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    pred = (scores >= threshold).astype(int)
    tp = int(((pred == 1) & (y_true == 1)).sum())
    tn = int(((pred == 0) & (y_true == 0)).sum())
    fp = int(((pred == 1) & (y_true == 0)).sum())
    fn = int(((pred == 0) & (y_true == 1)).sum())
    both = len(set(y_true.tolist())) == 2
    sens = tp / (tp + fn) if tp + fn else 0.0
    prec = tp / (tp + fp) if tp + fp else 0.0
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else None,
        "pr_auc": float(average_precision_score(y_true, scores)) if both else None,
        "sensitivity": sens,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "precision": prec,
        "f1": 2 * prec * sens / (prec + sens) if prec + sens else 0.0,
        "accuracy": (tp + tn) / len(y_true) if len(y_true) else 0.0,
        # rows: true NORMAL, PNEUMONIA; columns: predicted NORMAL, PNEUMONIA (sklearn order)
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "threshold": float(threshold),
        "threshold_target_sensitivity": float(target),
        "n": len(y_true),
    }


def plot_curves(
    y_true, scores, path: Path, title: str = "", threshold: float | None = None
) -> Path:
    """ROC and precision-recall curves side by side, as a PNG, with the operating point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.5))
    roc_ax.plot(fpr, tpr)
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc_ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    pr_ax.plot(recall, precision)
    pr_ax.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall")
    if threshold is not None:  # where the model actually operates
        m = metrics_at(y_true, scores, threshold)
        label = f"threshold {threshold:.3f}"
        roc_ax.plot([1 - m["specificity"]], [m["sensitivity"]], "o", color="red", label=label)
        pr_ax.plot([m["sensitivity"]], [m["precision"]], "o", color="red", label=label)
        roc_ax.legend(loc="lower right")
        pr_ax.legend(loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predict(model, split, size: int, batch_size: int = 64, desc: str = "predict") -> np.ndarray:
    """Scores for every image of a split, streamed through the training pipeline."""
    from tqdm import tqdm

    from model.training.data import dataset

    ds = dataset(split, size).batch(batch_size)
    out = []
    with tqdm(total=len(split), desc=desc, unit="img", file=sys.stderr) as bar:
        for images, _ in ds:
            out.append(np.asarray(model(images, training=False)).reshape(-1))
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def evaluate_dir(model_dir: Path, data: str | None, target: float | None = None) -> tuple:
    """Load a model directory and score its evaluation split: (report, split, scores)."""
    import keras

    from model.training.data import evaluation_split, resolve_root

    card = json.loads((model_dir / "model_card.json").read_text())
    name, split = evaluation_split(resolve_root(data), card)
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    scores = predict(model, split, int(card["input_size"]), desc=f"evaluate {name}")
    target = target or card.get("metrics", {}).get(
        "threshold_target_sensitivity", TARGET_SENSITIVITY
    )
    report = {
        "model_version": card.get("version"),
        "split": name,
        "counts": split.counts(),
        "metrics": metrics_at(split.labels, scores, float(card["threshold"]), target),
        # What the threshold would be if chosen on this data: shows how far it has drifted.
        "threshold_if_chosen_here": threshold_for_sensitivity(split.labels, scores, target),
    }
    return report, split, scores


def main(argv: list[str] | None = None) -> int:
    """CLI: evaluate a trained model on a Kermany-layout folder."""
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="directory with model.keras + model_card.json"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="Kermany-layout folder (default: $PNEUMONIA_DATA or ../shared/data/chest_xray_224)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON report (default: <model>/evaluation-<split>.json)",
    )
    parser.add_argument("--target-sensitivity", type=float, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model.training.data import DataError

    try:
        report, split, scores = evaluate_dir(args.model, args.data, args.target_sensitivity)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.model / f"evaluation-{report['split']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if report["metrics"]["roc_auc"] is not None:
        plot_curves(
            split.labels,
            scores,
            out.with_suffix(".png"),
            f"{report['model_version']} on {report['split']}",
            report["metrics"]["threshold"],
        )
    print(json.dumps(report["metrics"], indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
