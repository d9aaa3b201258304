"""Evaluate and describe a trained model: metrics per split, the serving file, the card."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from model import card as model_card
from model.training.config import TrainConfig
from model.training.data import manifest_sha256
from model.training.fit import use_xla

# What each split is for, in the card and the UI: only "test" and "shift_test" are held out.
SPLIT_ROLES = {
    "val": "validation: picked the epoch and the decision threshold (in-dataset, not held out)",
    "calib": "calibration: the probability calibration was fitted on it (in-dataset)",
    "test": "held-out patients of the same period (in-dataset, random patient carve-out)",
    "shift_val": "latest patient ids, first half: recipes were compared on it (in-dataset)",
    "shift_test": "latest patient ids, second half: held out, patients who arrive later "
    "(in-dataset, shifted)",
}


def evaluate_splits(model, config: TrainConfig, splits, out_dir: Path) -> dict:
    """Calibrate on ``calib``, threshold on calibrated ``val``, then every split's figures.

    Every split gets ROC AUC, sensitivity, specificity (with bootstrap 95 % intervals),
    Brier and ECE before and after calibration, ROC/PR curves and a reliability diagram.
    ``report["calibration"]`` holds the fitted map (identity without a calib split).
    """
    from model import calibration
    from model.evaluate import (
        metrics_with_intervals,
        plot_curves,
        predict,
        threshold_for_sensitivity,
    )

    size, target = config.img_size, config.target_sensitivity
    names = [n for n in SPLIT_ROLES if splits.get(n) is not None and splits[n].paths]
    raw = {n: predict(model, splits[n], size, desc=f"evaluate {n}") for n in names}
    fitted = calibration.fit(splits["calib"].labels, raw["calib"]) if "calib" in raw else None
    calibrated = {n: calibration.apply(fitted, scores) for n, scores in raw.items()}
    threshold = threshold_for_sensitivity(splits["val"].labels, calibrated["val"], target)
    report: dict = {"calibration": fitted}
    for name in names:
        labels, scores = splits[name].labels, calibrated[name]
        report[name] = metrics_with_intervals(labels, scores, threshold, target, config.bootstrap)
        report[name]["counts"] = splits[name].counts()
        report[name]["role"] = SPLIT_ROLES[name]
        report[name]["calibration"] = calibration.summary(labels, raw[name], scores)
        if report[name]["roc_auc"] is not None:
            title = f"ResNet50, {name} split"
            plot_curves(labels, scores, out_dir / f"roc_pr_{name}.png", title, threshold)
            calibration.plot_reliability(
                labels, raw[name], scores, out_dir / f"reliability_{name}.png", title
            )
    return report


def fit_input_check(pipelines, size: int, limit: int = 3000) -> dict:
    """The out-of-distribution check (:mod:`model.ood`): fitted on train, thresholded on val,
    measured on the held-out test patients and on generated non-chest images."""
    import numpy as np

    from model import ood

    def pixels(name):
        chunks, n = [], 0
        for images, _ in pipelines[name].batch(256):
            chunks.append(images.numpy().astype(np.float32))
            n += len(chunks[-1])
            if n >= limit:
                break
        return np.concatenate(chunks)[:limit]

    params = ood.fit(pixels("train"), pixels("val"))
    held_out = pixels("test") if "test" in pipelines else pixels("val")
    return {
        "method": ood.METHOD,
        "threshold": params["threshold"],
        "evaluation": ood.evaluate(params, held_out, size),
        "params": params,
    }


QUALITY_IMAGES = 256  # the worker's QUALITY_CHECK_IMAGES default


def write_quality_set(split, size: int, path: Path, n: int = QUALITY_IMAGES) -> dict:
    """The ``quality.npz`` check set shipped with the version: up to ``n`` validation X-rays.

    ``INFERENCE_BACKEND=auto`` (model/serving/selection.py) scores each backend on it, so a
    worker without the training data (every AWS worker) can still check reduced precision.
    Validation images, never test ones: the held-out figures stay untouched. One channel of
    uint8 pixels at the model's input size, through the serving preprocessing.
    """
    import numpy as np

    from model.training.data import load_image

    order = np.random.default_rng(0).permutation(len(split.paths))[:n]
    images = np.stack([load_image(split.paths[i], size)[..., 0] for i in order])
    labels = np.asarray([split.labels[i] for i in order], np.int64)
    np.savez_compressed(path, images=images, labels=labels)
    return {"file": path.name, "images": len(labels), "pneumonia": int(labels.sum())}


def stopped_by(config: TrainConfig, history: dict, epochs_run: int) -> str:
    """Why training ended: the epoch ceiling, early stopping (patience) or the time budget."""
    if epochs_run >= config.total_epochs:
        return "epoch ceiling"
    aucs = history.get("val_auc", [])
    if aucs and len(aucs) - 1 - max(range(len(aucs)), key=aucs.__getitem__) >= config.patience:
        return f"early stopping (no better validation AUC for {config.patience} epochs)"
    return f"time budget ({config.max_minutes:g} minutes)"


def save_for_serving(model, path: Path) -> Path:
    """Architecture and weights only, in float32 whatever precision training used.

    Only the weights, not Adam's two moments (they would triple the file, ~290 MB). Mixed
    precision is a training decision: its float16 layer policies would otherwise survive in
    the saved config, and CPU workers would compute in float16 (slow, and not what was
    evaluated). The variables are float32 under mixed precision already, so this is exact.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        serving = keras.Model.from_config(float32_config(model.get_config()))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    serving.set_weights(model.get_weights())
    serving.save(path)
    return path


def float32_config(config):
    """A layer config with every mixed-precision dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            name = str(config.get("config", {}).get("name", ""))
            if name.startswith("mixed_"):
                return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: float32_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [float32_config(v) for v in config]
    return "float32" if isinstance(config, str) and config.startswith("mixed_") else config


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
            "manifest_sha256": manifest_sha256(root),  # the data set version; None: unverified
            "splits": {k: v.counts() for k, v in splits.items() if v.paths},
            "split": {
                "method": "by patient, stratified by class, seeded",
                "seed": config.seed,
                "val_fraction": config.val_fraction,
                "test_fraction": config.test_fraction,
                "shift_fraction": config.shift_fraction,
                "calib_fraction": config.calib_fraction,
                "shift_method": "latest patient ids of each file family, halved by patient",
            },
        },
        "metrics": _figures(report["val"]),
        "test_metrics": _figures(report.get("test", {})),
        "evaluations": {k: v for k, v in report.items() if k in SPLIT_ROLES},
        "figures_scope": model_card.IN_DATASET,
        "calibration": report.get("calibration"),
        "intended_use": model_card.INTENDED_USE,
        "limitations": model_card.LIMITATIONS,
        "training_time_seconds": round(fit_seconds, 1),
        "hardware": model_card.hardware(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_sha": sha,
        "keras_version": keras.__version__,
        "epochs": epochs_run,
        "recipe": config.recipe,
        "hyperparameters": {
            "batch_size": config.batch_size,
            "learning_rate": schedule.learning_rate,
            "decay_steps": schedule.decay_steps,
            "decay_rate": schedule.decay_rate,
            "augment": config.augment,
            "intensity_augment": config.intensity_augment,
            "label_smoothing": config.label_smoothing,
            "epochs_ceiling": config.total_epochs,
            "patience": config.patience,
            "max_minutes": config.max_minutes,
            "mixed_precision": keras.mixed_precision.global_policy().name.startswith("mixed"),
            "xla": use_xla(config, gpu),
        },
    }


def _figures(split_report: dict) -> dict:
    """A split's metrics for the card's top-level ``metrics``/``test_metrics`` (no tables)."""
    return {k: v for k, v in split_report.items() if k not in ("counts", "calibration", "role")}


def summary(metrics: dict) -> str:
    """One log line of the headline metrics of a split."""
    if not metrics:
        return "-"
    keys = ("roc_auc", "sensitivity", "specificity", "precision", "accuracy", "threshold")
    text = ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if metrics.get(k) is not None)
    ci = metrics.get("ci95", {})
    if ci:
        text += "; 95 % CI " + ", ".join(f"{k} {lo:.3f}-{hi:.3f}" for k, (lo, hi) in ci.items())
    if metrics.get("calibration"):
        text += "; Brier {brier} (uncalibrated {brier_uncalibrated})".format(
            **metrics["calibration"]
        )
    return text


def jsonable(history: dict) -> dict:
    """Keras history (numpy floats) as plain JSON numbers."""
    return {k: [float(x) for x in v] for k, v in history.items()}
