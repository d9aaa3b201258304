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
