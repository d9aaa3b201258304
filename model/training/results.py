"""Evaluate and describe a trained model: metrics per split, the serving file, the card."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from model import card as model_card
from model.training.config import TrainConfig


def evaluate_splits(model, config: TrainConfig, splits, out_dir: Path) -> dict:
    """Threshold on val for the target sensitivity; metrics on val and on the held-out test."""
    from model.evaluate import metrics_at, plot_curves, predict, threshold_for_sensitivity

    report = {}
    size, target = config.img_size, config.target_sensitivity
    val_scores = predict(model, splits["val"], size, desc="evaluate val")
    threshold = threshold_for_sensitivity(splits["val"].labels, val_scores, target)
    for name in ("val", "test"):
        split = splits[name]
        if not split.paths:
            continue
        scores = (
            val_scores if name == "val" else predict(model, split, size, desc=f"evaluate {name}")
        )
        report[name] = metrics_at(split.labels, scores, threshold, target)
        report[name]["counts"] = split.counts()
        if report[name]["roc_auc"] is not None:
            title = f"ResNet50, {name} split"
            plot_curves(split.labels, scores, out_dir / f"roc_pr_{name}.png", title, threshold)
    return report


def save_for_serving(model, path: Path) -> Path:
    """Architecture and weights only: Adam's two moments would triple the file (~290 MB)."""
    serving = keras.Model.from_config(model.get_config())  # same graph, never compiled
    serving.set_weights(model.get_weights())
    serving.save(path)
    return path


def build_card(
    config: TrainConfig, sha: str, root, splits, report, epochs_run, fit_seconds, gpu
) -> dict:
    """The card of a finished run (:data:`model.card.REQUIRED` and the hyperparameters)."""
    schedule = config.schedule
    return {
        "name": "ResNet50 pneumonia classifier",
        "version": config.version,
        "architecture": (
            "keras.applications.ResNet50 (no top) -> GlobalAveragePooling -> "
            "[Dense 256 L2(1e-3) -> BatchNorm -> ReLU -> Dropout 0.3] x 2 -> Dense 1 sigmoid; "
            "Rescaling and augmentation layers inside the model"
        ),
        "input_size": config.img_size,
        "preprocessing": model_card.PREPROCESSING,
        "weights": (
            f"fine-tuned from {config.weights} (last {config.fine_tune_layers} base layers)"
            if config.pretrained
            else "trained from scratch (random init, no ImageNet weights)"
        ),
        "threshold": report["val"]["threshold"],
        "training_data": {
            "name": model_card.DATA_NAME,
            "credit": model_card.DATA_CREDIT,
            "path": str(root),
            "splits": {k: v.counts() for k, v in splits.items() if v.paths},
            "split": {
                "method": "by patient, stratified by class, seeded",
                "seed": config.seed,
                "val_fraction": config.val_fraction,
                "test_fraction": config.test_fraction,
            },
        },
        "metrics": {k: v for k, v in report["val"].items() if k != "counts"},
        "test_metrics": {k: v for k, v in report.get("test", {}).items() if k != "counts"},
        "training_time_seconds": round(fit_seconds, 1),
        "hardware": model_card.hardware(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_sha": sha,
        "keras_version": keras.__version__,
        "epochs": epochs_run,
        "hyperparameters": {
            "batch_size": config.batch_size,
            "learning_rate": schedule.learning_rate,
            "decay_steps": schedule.decay_steps,
            "decay_rate": schedule.decay_rate,
            "augment": config.augment,
            "mixed_precision": gpu,
            "xla": gpu,
        },
    }


def summary(metrics: dict) -> str:
    """One log line of the headline metrics of a split."""
    if not metrics:
        return "-"
    keys = ("roc_auc", "sensitivity", "specificity", "precision", "accuracy", "threshold")
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if metrics.get(k) is not None)


def jsonable(history: dict) -> dict:
    """Keras history (numpy floats) as plain JSON numbers."""
    return {k: [float(x) for x in v] for k, v in history.items()}
