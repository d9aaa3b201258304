"""Loading a published model version for serving, behind one small interface.

The worker only needs ``predict(batch) -> probabilities`` plus the card's facts (version,
threshold, input size). Backends live behind :func:`load_predictor` so a faster runtime
(onnxruntime, reduced precision) can be chosen by a setting without touching the worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.store import CARD_FILE, MODEL_FILE


@dataclass
class Predictor:
    version: str
    threshold: float
    input_size: int
    card: dict
    backend: str
    _fn: object = field(repr=False, default=None)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities of pneumonia, one per image, as float32 in [0, 1]."""
        out = np.asarray(self._fn(batch), dtype=np.float32).reshape(len(batch), -1)
        return out[:, 0]


def _keras_fn(model_path: Path, max_batch: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.saving.load_model(model_path, compile=False)

    def run(batch: np.ndarray):
        # Pad to a fixed batch so the traced graph is reused for every batch size.
        n = len(batch)
        size = max(max_batch, n)
        if n < size:
            pad = np.zeros((size - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        return np.asarray(model.predict_on_batch(batch))[:n]

    return run, model


def load_predictor(model_dir: Path, backend: str = "keras", max_batch: int = 16) -> Predictor:
    """Load ``model.keras`` and ``model_card.json`` from a store version directory."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / CARD_FILE).read_text())
    if backend != "keras":
        raise ValueError(f"unknown INFERENCE_BACKEND {backend!r}; supported: keras")
    fn, model = _keras_fn(model_dir / MODEL_FILE, max_batch)
    size = int(card.get("input_size") or model.input_shape[1])
    predictor = Predictor(
        version=str(card["version"]),
        threshold=float(card.get("threshold", 0.5)),
        input_size=size,
        card=card,
        backend=backend,
        _fn=fn,
    )
    predictor.predict(np.zeros((1, size, size, 3), np.float32))  # warm up: trace once now
    return predictor
