"""Evaluate: the numbers clinicians ask for, at a threshold chosen for sensitivity.

Sensitivity comes first (a missed pneumonia costs more than a false alarm), so the decision
threshold is the highest one that still catches ``target`` (default 95 %) of the pneumonias
on the *validation* split; every other number is reported at that threshold. Evaluating new
data reuses the threshold stored in the model card: choosing it again on the data being
scored would flatter the result.

CLI::

    python -m model.evaluate --model var/models/<version> --data DIR [--out FILE]

``DIR`` may hold ``test/``, a bare ``NORMAL/`` + ``PNEUMONIA/``, or only ``train/`` (then the
model's own held-out patients are rebuilt from the split recorded in its card; ``--split
shift_test`` for the latest patients). Every figure comes with a bootstrap 95 % interval, and
the probability is calibrated as served. Scoring any other folder records an *external
evaluation* in the model card (name, date, counts, figures), shown apart from the in-dataset
figures in the UI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TARGET_SENSITIVITY = 0.95
BOOTSTRAP_SAMPLES = 1000
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


def _auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half: fast enough to
    run a thousand times."""
    from scipy.stats import rankdata

    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    ranks = rankdata(scores)
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_intervals(
    y_true, scores, threshold: float, n: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> dict:
    """95 % percentile-bootstrap intervals of ROC AUC, sensitivity and specificity.

    Resamples images with replacement *within each class* (the class counts stay those of the
    split, so sensitivity and specificity are always defined). A few hundred test images give
    intervals several points wide: the card shows them so nobody reads 0.99 as a certainty.
    """
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    if not pos.size or not neg.size or n <= 0:
        return {}
    rng = np.random.default_rng(seed)
    draws = {"roc_auc": [], "sensitivity": [], "specificity": []}
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        y, s = y_true[idx], scores[idx]
        draws["roc_auc"].append(_auc(y, s))
        draws["sensitivity"].append(float((s[y == 1] >= threshold).mean()))
        draws["specificity"].append(float((s[y == 0] < threshold).mean()))
    return {
        k: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]
        for k, v in draws.items()
    }


def metrics_with_intervals(
    y_true, scores, threshold: float, target: float = TARGET_SENSITIVITY, n: int = 1000
) -> dict:
    """:func:`metrics_at` plus ``ci95``: bootstrap intervals of AUC, sensitivity, specificity."""
    out = metrics_at(y_true, scores, threshold, target)
    out["ci95"] = bootstrap_intervals(y_true, scores, threshold, n)
    out["ci95_method"] = f"percentile bootstrap, {n} resamples stratified by class"
    return out


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


def evaluate_dir(
    model_dir: Path, data: str | None, target: float | None = None, which: str = "test"
) -> tuple:
    """Load a model directory and score an evaluation split: (report, split, scores).

    Scores are calibrated with the card's map (what the worker serves) and judged at the
    card's threshold, with bootstrap 95 % intervals. ``report["external"]`` is True unless
    the split was rebuilt from the model's own training folder (its held-out carve-outs).
    """
    import keras

    from model import calibration
    from model.training.data import evaluation_split, resolve_root

    card = json.loads((model_dir / "model_card.json").read_text())
    root = resolve_root(data)
    name, split = evaluation_split(root, card, which)
    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    raw = predict(model, split, int(card["input_size"]), desc=f"evaluate {name}")
    scores = calibration.apply(card.get("calibration"), raw)
    target = target or card.get("metrics", {}).get(
        "threshold_target_sensitivity", TARGET_SENSITIVITY
    )
    metrics = metrics_with_intervals(split.labels, scores, float(card["threshold"]), target)
    summary = calibration.summary(split.labels, raw, scores)
    metrics["calibration"] = {k: v for k, v in summary.items() if k != "reliability"}
    external = not (root / "train").is_dir() or has_own_test(root)
    report = {
        "model_version": card.get("version"),
        "split": name,
        "external": external,
        "counts": split.counts(),
        "metrics": metrics,
        # What the threshold would be if chosen on this data: shows how far it has drifted.
        "threshold_if_chosen_here": threshold_for_sensitivity(split.labels, scores, target),
    }
    return report, split, scores


def has_own_test(root: Path) -> bool:
    """A folder with its own test/ split (the published layout): not our carve-out."""
    from model.training.data import has_classes

    return has_classes(root / "test")


def record_external(model_dir: Path, report: dict, name: str) -> dict:
    """Add (or replace, by name) an external evaluation in the model's card and rewrite it.

    The card then shows, apart from the in-dataset figures, how the model did on data it
    was not trained on: name, date, counts and figures with intervals. A worker serving
    this version shows it once it (re)loads the version.
    """
    from model import card as model_card

    path = model_dir / "model_card.json"
    card = json.loads(path.read_text())
    entry = {
        "name": name,
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "split": report["split"],
        "counts": report["counts"],
        "metrics": report["metrics"],
        "threshold_if_chosen_here": report["threshold_if_chosen_here"],
    }
    others = [e for e in card.get("external_evaluations", []) if e.get("name") != name]
    card["external_evaluations"] = [*others, entry]
    model_card.write(card, model_dir)
    return entry


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
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "shift_test", "shift_val", "val", "calib"),
        help="for the training folder itself: which held-out carve-out to rebuild and score",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="name of an external evaluation in the card (default: the data folder's name)",
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not record an external evaluation in the model card",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model.training.data import DataError

    try:
        report, split, scores = evaluate_dir(
            args.model, args.data, args.target_sensitivity, args.split
        )
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
    if report["external"] and not args.no_record:
        name = args.name or _data_name(args.data, report["split"])
        record_external(args.model, report, name)
        print(f"recorded external evaluation {name!r} in {args.model / 'model_card.json'}")
    return 0


def _data_name(data: str | None, split: str) -> str:
    """A readable name for an evaluation folder: its own name (and the split's)."""
    from model.training.data import resolve_root

    root = resolve_root(data)
    return root.name if split == root.name else f"{root.name}/{split}"


if __name__ == "__main__":
    sys.exit(main())
