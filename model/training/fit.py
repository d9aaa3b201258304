"""Model and training: compile, callbacks and the one or two ``model.fit`` phases of a run.

From scratch, everything trains in one phase. Pretrained, the base is frozen and the head
trains first (``head_epochs`` at ``head_lr``), then the last ``fine_tune_layers`` layers of
the base are unfrozen (BatchNorm kept frozen) and the model is recompiled and fine-tuned.
On a GPU, mixed precision and XLA are switched on; on a CPU both stay off (XLA's CPU
convolutions are slower than oneDNN's, and float16 does not speed up a CPU).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from model.training.config import Schedule, TrainConfig

log = logging.getLogger("model.train")  # one name for a run's whole train.log


def configure_device() -> bool:
    """Mixed precision + XLA on a GPU, plain float32 on a CPU; returns whether a GPU is used."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "float32")
    return gpu


def optimizer(schedule: Schedule):
    """Adam with exponential decay (the design: x0.95 every 10k steps, both configurable)."""
    decay = keras.optimizers.schedules.ExponentialDecay(
        schedule.learning_rate, schedule.decay_steps, schedule.decay_rate
    )
    return keras.optimizers.Adam(decay)


def compile_model(model, schedule: Schedule, gpu: bool, label_smoothing: float = 0.0) -> None:
    """Binary cross-entropy, tracked by AUC, recall and precision (not accuracy).

    ``label_smoothing`` pulls the targets towards 0.5: an over-confident network is worse
    when the patients change (the probability shown is calibrated afterwards anyway).
    """
    model.compile(
        optimizer=optimizer(schedule),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[
            keras.metrics.AUC(name="auc"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.Precision(name="precision"),
        ],
        jit_compile=gpu,
    )


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would not finish within ``max_minutes``.

    ``make model`` promises about 20 minutes on a shared 2-core CPU; the epoch count is a
    ceiling, the budget is the promise (early stopping still restores the best epoch).
    """

    def __init__(self, started: float, max_minutes: float):
        super().__init__()
        self.started, self.max_minutes, self.first = started, max_minutes, 0

    def on_train_begin(self, logs=None):
        self.first = (self.params or {}).get("initial_epoch", 0) or 0
        self.fit_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.monotonic() - self.started
        per_epoch = (time.monotonic() - self.fit_started) / (epoch + 1 - self.first)
        if self.max_minutes and elapsed + per_epoch > self.max_minutes * 60:
            log.info("time budget: stopping after epoch %d (%.0fs)", epoch + 1, elapsed)
            self.model.stop_training = True


def callbacks(config: TrainConfig, reporter, n_train: int, started: float, offset: int = 0):
    """Early stopping on val AUC (best weights restored), checkpoint, progress, time budget."""
    from model.training.progress import ProgressCallback

    return [
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(Path(config.output) / "checkpoint.keras"),
            monitor="val_auc",
            mode="max",
            save_best_only=True,
        ),
        ProgressCallback(
            reporter,
            config.total_epochs,
            n_train,
            epoch_offset=offset,
            budget_seconds=config.max_minutes * 60,
        ),
        TimeBudget(started, config.max_minutes),
    ]


def fit(config: TrainConfig, reporter, pipelines, splits, gpu: bool):
    """Build and train: (model with the best weights restored, history, epochs run, seconds)."""
    from model.training.build import build_model, freeze, unfreeze_top
    from model.training.data import class_weights
    from model.training.pipelines import batched

    keras.utils.set_random_seed(config.seed)
    model, base = build_model(config.img_size, config.weights, config.augment)
    train = batched(
        pipelines["train"],
        config.batch_size,
        len(splits["train"]),
        config.seed,
        intensity=config.intensity_augment,
    )
    if config.steps_per_epoch:
        train = train.repeat()  # "epochs" of --steps-per-epoch batches, not full passes
    val = batched(pipelines["val"], config.batch_size * 2)
    weights = class_weights(splits["train"].labels)
    per_epoch = config.steps_per_epoch * config.batch_size or len(splits["train"])
    log.info("class weights %s", weights)
    started = time.monotonic()
    common = {
        "validation_data": val,
        "class_weight": weights,
        "verbose": config.verbose,
        "steps_per_epoch": config.steps_per_epoch or None,
    }
    history, first = {}, 0
    if config.pretrained:
        freeze(base)
        compile_model(model, config.head_schedule, gpu, config.label_smoothing)
        h = model.fit(
            train,
            epochs=config.head_epochs,
            callbacks=callbacks(config, reporter, per_epoch, started),
            **common,
        )
        history.update({f"head_{k}": v for k, v in h.history.items()})
        first = len(h.history.get("loss", []))
        n = unfreeze_top(base, config.fine_tune_layers)
        log.info("fine-tuning: %d layers of the base unfrozen (BatchNorm kept frozen)", n)
    compile_model(model, config.schedule, gpu, config.label_smoothing)
    h = model.fit(
        train,
        epochs=first + config.epochs,
        initial_epoch=first,
        callbacks=callbacks(config, reporter, per_epoch, started, offset=first),
        **common,
    )
    history.update(h.history)
    epochs_run = first + len(h.history.get("loss", []))
    return model, history, epochs_run, time.monotonic() - started
