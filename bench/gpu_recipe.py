"""The gpu recipe on a machine without TensorFlow: ``KERAS_BACKEND=jax python -m bench.gpu_recipe``.

Keras 3 on JAX (or torch), the project's own model; the figures in model/README.md
("Measured on a GPU") come from ``--augment 0 --finetune-steps 0 --budget-seconds 230``.

Model from model/training/build.py, patient-disjoint split and pixels from
model/training/data.py (model.preprocess), gpu-recipe hyperparameters (224 px, batch 32,
augment 1.0, mixed_float16, full-pass epochs, early-stopping patience 5), fed from numpy
through keras.utils.PyDataset (no tf.data). ImageNet weights cannot reach that machine (no
network; the 94 MB notop file is over the 64 MiB transfer limit), so the AUC run trains from
scratch (the from-scratch schedule: Adam 1e-3, x0.85 every 40 steps); a second, short phase
times the pretrained recipe's fine-tuning step (last 15 layers, BatchNorm frozen) on a random
weights file.
"""

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from model.training import data as model_data
from model.training.build import build_model, freeze, unfreeze_top


class Batches(keras.utils.PyDataset):
    """(uint8 images, labels) in memory, shuffled each epoch, in batches."""

    def __init__(self, x, y, batch, shuffle, weights=None):
        super().__init__()
        self.x, self.y, self.batch, self.shuffle, self.w = x, y, batch, shuffle, weights
        self.order = np.arange(len(x))
        self.on_epoch_end()

    def __len__(self):
        return len(self.x) // self.batch if self.shuffle else -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        idx = self.order[i * self.batch : (i + 1) * self.batch]
        x, y = self.x[idx].astype("float32"), self.y[idx].astype("float32")
        return (x, y) if self.w is None else (x, y, self.w[self.y[idx]])

    def on_epoch_end(self):
        if self.shuffle:
            np.random.default_rng().shuffle(self.order)


def decode(split, size):
    with ProcessPoolExecutor() as pool:
        images = list(
            pool.map(model_data.load_image, split.paths, [size] * len(split.paths), chunksize=64)
        )
    return np.stack(images), np.asarray(split.labels, np.int64)


OUT = None


class Throughput(keras.callbacks.Callback):
    """Training images/s, per epoch, excluding the first epoch (compilation)."""

    def __init__(self, batch):
        super().__init__()
        self.batch, self.rows = batch, []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.t1 = time.perf_counter()
            print(f"first step done after {self.t1 - self.t0:.1f}s", flush=True)
        elif self.steps % 25 == 0:
            rate = (self.steps - 1) * self.batch / (time.perf_counter() - self.t1)
            print(f"step {self.steps}: {rate:.1f} images/s", flush=True)

    def on_test_begin(self, logs=None):
        self.t_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        steady = (self.steps - 1) * self.batch / (self.t_end - self.t1) if self.steps > 1 else 0
        row = {
            "epoch": epoch + 1,
            "epoch_seconds": round(time.perf_counter() - self.t0, 1),
            "train_images_per_second": round(steady, 1),
            "val_auc": round(float(logs.get("val_auc", 0)), 4),
            "loss": round(float(logs["loss"]), 4),
        }
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        if OUT:
            (OUT / "epochs.json").write_text(json.dumps(self.rows, indent=2))


class Budget(keras.callbacks.Callback):
    """Stop before an epoch that would end after the deadline (last epoch's length)."""

    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() + (time.monotonic() - self.t0) > self.deadline:
            self.model.stop_training = True


def metrics_at_sensitivity(labels, probs, target=0.95):
    _, tpr, thr = roc_curve(labels, probs)
    i = int(np.argmax(tpr >= target))
    t = float(thr[i])
    pred = probs >= t
    pos, neg = labels == 1, labels == 0
    return {
        "threshold": round(t, 4),
        "sensitivity": round(float(pred[pos].mean()), 4),
        "specificity": round(float((~pred[neg]).mean()), 4),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--budget-seconds", type=float, default=270)
    p.add_argument("--finetune-steps", type=int, default=60)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--augment", type=float, default=1.0)
    a = p.parse_args()
    t_start = time.monotonic()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    global OUT
    OUT = out
    facts = {"keras": keras.__version__, "backend": keras.backend.backend(), "recipe": vars(a)}
    splits = model_data.training_splits(model_data.resolve_root(a.data), 0.1, 0.1, 1337)
    if a.limit:
        for k in ("train", "val"):
            s = splits[k]
            keep = list(range(0, len(s.paths), max(1, len(s.paths) // a.limit)))[: a.limit]
            splits[k] = model_data.Split([s.paths[i] for i in keep], [s.labels[i] for i in keep])
    t0 = time.monotonic()
    xtr, ytr = decode(splits["train"], a.size)
    xva, yva = decode(splits["val"], a.size)
    facts["decode_seconds"] = round(time.monotonic() - t0, 1)
    facts["train_images"], facts["val_images"] = len(ytr), len(yva)
    import jax  # CUDA starts here, after the decoding processes have forked

    facts["jax"], facts["devices"] = jax.__version__, [str(d) for d in jax.devices()]
    print(json.dumps(facts), flush=True)
    cw = model_data.class_weights(list(ytr))
    w = np.array([cw[0], cw[1]], np.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(1337)
    model, base = build_model(a.size, "none", a.augment)
    decay = keras.optimizers.schedules.ExponentialDecay(1e-3, 40, 0.85)
    model.compile(
        optimizer=keras.optimizers.Adam(decay),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
        jit_compile=True,
    )
    tp = Throughput(a.batch)
    deadline = t_start + a.budget_seconds
    model.fit(
        Batches(xtr, ytr, a.batch, True, w),
        validation_data=Batches(xva, yva, 64, False),
        epochs=a.epochs,
        verbose=2,
        callbacks=[
            tp,
            Budget(deadline),
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=a.patience, restore_best_weights=True
            ),
        ],
    )
    probs = model.predict(Batches(xva, yva, 64, False), verbose=0).reshape(-1).astype(np.float64)
    steady = [r["train_images_per_second"] for r in tp.rows[1:]] or [0]
    result = {
        **facts,
        "scratch": {
            "epochs": tp.rows,
            "train_images_per_second_median": float(np.median(steady)),
            "val_auc": round(float(roc_auc_score(yva, probs)), 4),
            **metrics_at_sensitivity(yva, probs),
            "output_dtype": str(probs.dtype),
            "dtype_policy": keras.mixed_precision.global_policy().name,
        },
    }
    (out / "gpu_recipe.json").write_text(json.dumps(result, indent=2))
    # The pretrained recipe's fine-tuning step, timed on a random ResNet50 weights file.
    if a.finetune_steps and time.monotonic() < t_start + a.budget_seconds + 60:
        wfile = out.parent / "random_resnet50.weights.h5"
        keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=(a.size, a.size, 3)
        ).save_weights(wfile)
        model, base = build_model(a.size, str(wfile), 1.0)
        freeze(base)
        unfreeze_top(base, 15)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy", jit_compile=True
        )
        data = Batches(xtr, ytr, a.batch, True, w)
        tp2 = Throughput(a.batch)
        model.fit(
            data,
            epochs=2,
            steps_per_epoch=a.finetune_steps,
            verbose=2,
            callbacks=[tp2],
            validation_data=Batches(xva[:64], yva[:64], 64, False),
        )
        result["finetune_top15"] = {"steps_per_epoch": a.finetune_steps, "epochs": tp2.rows}
    result["total_seconds"] = round(time.monotonic() - t_start, 1)
    (out / "gpu_recipe.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
