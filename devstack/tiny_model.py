"""A small real Keras model with a complete card: a dev stack or a test serves it without
training (the production ResNet50 takes minutes to load on 2 cores; this one, a second)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def build_tiny_model(
    out_dir: Path,
    size: int = 32,
    version: str = "tiny-1",
    threshold: float = 0.5,
    bias: float = 0.0,
) -> Path:
    """A small real Keras model with a complete card, saved as a store version directory.

    Built like the production model (Rescaling inside, sigmoid output) but tiny, so worker
    tests run in seconds. ``bias`` shifts the output, to tell two versions apart.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from model.card import checksums

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        1, activation="sigmoid", bias_initializer=keras.initializers.Constant(bias)
    )(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    card = {
        "name": "tiny test model",
        "version": version,
        "architecture": "tiny CNN (tests only)",
        "input_size": size,
        "preprocessing": "model.preprocess.prepare: greyscale, square resize, 3 channels, 0..255",
        "weights": "random",
        "threshold": threshold,
        "training_data": {"name": "none", "credit": "none"},
        "metrics": {},
        "files": checksums(out_dir),
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    return out_dir


def planted_square(size: int, corner: str | None, rng, side: int | None = None):
    """A grey noise image, with a bright square in ``corner`` ("tl", "tr", "bl", "br") if given.

    The feature the planted model learns (:func:`build_planted_model`): tests check that a
    heatmap lights up where the square is, and moves with it.
    """
    import numpy as np

    img = rng.uniform(40, 150, (size, size)).astype(np.float32)
    if corner:
        s = side or size // 4
        top = 0 if corner[0] == "t" else size - s
        left = 0 if corner[1] == "l" else size - s
        img[top : top + s, left : left + s] = 255.0
    return img


def build_planted_model(out_dir: Path, size: int = 32, version: str = "planted-1") -> Path:
    """A tiny CNN trained so that a bright square in any corner means "Pneumonia".

    It keeps a spatial grid (16 x 16) for Grad-CAM to explain, and trains in seconds on CPU;
    ``tests/e2e/test_heatmap.py`` checks through the real stack that the heatmap highlights
    the square, not just that a PNG comes back.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from model.card import checksums

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    corners = [None, "tl", "tr", "bl", "br"]
    labels = rng.integers(0, 2, 800)
    images = [planted_square(size, corners[rng.integers(1, 5)] if y else None, rng) for y in labels]
    x = np.repeat(np.stack(images)[..., None], 3, axis=-1)
    inputs = keras.Input((size, size, 3))
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="grid")(h)
    h = keras.layers.GlobalMaxPooling2D()(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs, name="planted_cnn")
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, labels.astype("float32"), epochs=8, batch_size=32, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    card = {
        "name": "planted-feature test model",
        "version": version,
        "architecture": "tiny CNN trained on a planted bright corner square (tests only)",
        "input_size": size,
        "preprocessing": "model.preprocess.prepare: greyscale, square resize, 3 channels, 0..255",
        "weights": "trained on synthetic squares",
        "threshold": 0.5,
        "training_data": {"name": "synthetic", "credit": "none"},
        "metrics": {},
        "files": checksums(out_dir),
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    return out_dir
