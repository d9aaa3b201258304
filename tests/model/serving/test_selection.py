"""INFERENCE_BACKEND=auto: the fastest backend that keeps quality on this host, measured."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from model.serving import selection
from model.serving.predictor import BACKENDS, load_predictor


@pytest.fixture
def checked_model(tiny_model_dir, tmp_path):
    """The tiny model shipping a labelled check set (quality.npz), as training publishes it."""
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "tiny-1")
    rng = np.random.default_rng(1)
    labels = np.arange(40) % 2
    images = rng.integers(0, 90, (40, 32, 32)).astype(np.uint8)
    images[labels == 1, 8:16, 8:24] += 120  # bright blob: pneumonia, as in the fixtures
    np.savez(model_dir / selection.QUALITY_FILE, images=images, labels=labels)
    return model_dir


def test_auto_serves_the_fastest_backend_within_the_auc_budget(checked_model, tmp_path, caplog):
    pytest.importorskip("openvino")
    with caplog.at_level(logging.INFO, logger="model.serving.selection"):
        p = load_predictor(checked_model, "auto", max_batch=4, cache_dir=tmp_path / "cache")
    (record,) = (tmp_path / "cache" / "compiled").glob("*/backend-choice-*.json")
    choice = json.loads(record.read_text())
    rows = {r["backend"]: r for r in choice["results"]}
    assert p.backend == choice["chosen"] and p.precision == BACKENDS[p.backend]
    assert {"keras", "openvino", "openvino-int8"} <= set(rows) and rows["keras"]["auc_loss"] == 0
    passing = [r for r in rows.values() if r["auc_loss"] <= 0.003 and r["backend"] != "keras"]
    assert rows[p.backend] in passing
    assert rows[p.backend]["images_per_second"] == max(r["images_per_second"] for r in passing)
    assert "backend check on 40 validation X-rays" in caplog.text

    def measure_again(*args, **kwargs):
        raise AssertionError("measured again although this host decided already")

    selection.measure, real = measure_again, selection.measure
    try:  # a restart on the same host takes the recorded decision
        again = load_predictor(checked_model, "auto", max_batch=4, cache_dir=tmp_path / "cache")
    finally:
        selection.measure = real
    assert again.backend == p.backend


def test_no_backend_within_budget_means_keras_fp32(checked_model, tmp_path):
    pytest.importorskip("openvino")
    p = load_predictor(
        checked_model, "auto", max_batch=4, cache_dir=tmp_path / "cache", max_auc_loss=-1.0
    )
    assert p.backend == "keras" and p.precision == "fp32"


def test_without_a_check_set_reduced_precision_is_not_trusted(tiny_model_dir, tmp_path, caplog):
    pytest.importorskip("openvino")
    with caplog.at_level(logging.WARNING, logger="model.serving.selection"):
        p = load_predictor(
            tiny_model_dir, "auto", cache_dir=tmp_path / "cache", calibration_data=str(tmp_path)
        )
    assert p.backend == "openvino" and p.precision == "fp32"
    assert "reduced precision unchecked" in caplog.text
