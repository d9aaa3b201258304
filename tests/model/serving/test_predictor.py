"""Inference backends on a tiny real model: same answers as Keras, cached exports, fallbacks."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model.serving import predictor as predictor_module
from model.serving.predictor import load_predictor


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One export cache for the module: the first load exports, later ones reuse it."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fp32_exports_agree_with_keras(tiny_model_dir, cache, batch, backend):
    """fp32 means fp32 on every CPU: OpenVINO would default to bf16 on AVX-512 BF16/AMX ones."""
    pytest.importorskip("onnxruntime" if backend == "onnx" else "openvino")
    keras_p = load_predictor(tiny_model_dir, "keras", max_batch=8)
    fast = load_predictor(tiny_model_dir, backend, max_batch=8, cache_dir=cache)
    assert fast.backend == backend and fast.version == keras_p.version == "tiny-1"
    assert fast.precision == "fp32"
    assert fast.input_size == 32 and fast.threshold == keras_p.threshold
    np.testing.assert_allclose(fast.predict(batch), keras_p.predict(batch), atol=1e-5)
    assert fast.predict(batch[:1]).shape == (1,)  # any batch size, no padding needed


@pytest.mark.parametrize("backend", ["onnx-int8", "openvino-int8"])
def test_int8_stays_close_and_keeps_a_float_output(tiny_model_dir, cache, batch, backend):
    pytest.importorskip("onnxruntime" if backend == "onnx-int8" else "openvino")
    ref = load_predictor(tiny_model_dir, "keras", max_batch=8).predict(batch)
    got = load_predictor(tiny_model_dir, backend, max_batch=8, cache_dir=cache)
    assert got.backend in (backend, backend.removesuffix("-int8"))  # fp32 if no calibration data
    probs = got.predict(batch)
    assert np.abs(probs - ref).max() < 0.05
    assert len(set(np.round(probs, 6))) > 1, "the head must stay fp32 (no 1/255 output steps)"


def test_bf16_is_its_own_backend_where_the_cpu_has_it(tiny_model_dir, cache, batch):
    pytest.importorskip("openvino")
    from model.serving.runtimes import openvino_cpu_has_bf16

    p = load_predictor(tiny_model_dir, "openvino-bf16", max_batch=8, cache_dir=cache)
    if not openvino_cpu_has_bf16():
        assert p.backend == "openvino" and p.precision == "fp32"
        return
    assert p.backend == "openvino-bf16" and p.precision == "bf16"
    ref = load_predictor(tiny_model_dir, "keras", max_batch=8).predict(batch)
    diff = np.abs(p.predict(batch) - ref).max()
    assert 1e-6 < diff < 0.02, "bf16 differs from fp32, a little (else it is not bf16)"


@pytest.mark.parametrize("backend", ["openvino", "openvino-int8"])
def test_the_same_probabilities_however_a_batch_is_run(tiny_model_dir, cache, batch, backend):
    """A lone image (every core), a batch split over lanes and batches in flight at once
    give the same answer: a doctor's result does not depend on how busy the worker was."""
    pytest.importorskip("openvino")
    p = load_predictor(tiny_model_dir, backend, max_batch=4, threads=2, cache_dir=cache)
    assert p.concurrency == 2
    alone = np.concatenate([p.predict(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(p.predict(batch), alone, atol=1e-6)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(p.predict, [batch] * 8))
    for probs in together:
        np.testing.assert_allclose(probs, alone, atol=1e-6)


def test_exports_are_made_once_per_model_file(tiny_model_dir, cache, monkeypatch):
    pytest.importorskip("onnxruntime")
    load_predictor(tiny_model_dir, "onnx", cache_dir=cache)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although cached")

    monkeypatch.setattr("model.serving.export.compile_in_subprocess", no_export)
    assert load_predictor(tiny_model_dir, "onnx", cache_dir=cache).backend == "onnx"


def test_without_onnxruntime_the_worker_falls_back_to_keras(
    tiny_model_dir, monkeypatch, caplog, tmp_path
):
    real = predictor_module.importlib.util.find_spec
    monkeypatch.setattr(
        predictor_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("onnxruntime", "openvino") else real(name, *a),
    )
    with caplog.at_level(logging.WARNING, logger="model.serving.predictor"):
        p = load_predictor(tiny_model_dir, "openvino-int8", cache_dir=tmp_path)
    assert p.backend == "keras"
    assert "onnxruntime, which is not installed" in caplog.text
    assert "falling back to keras" in caplog.text


def test_a_failing_export_falls_back_to_keras(tiny_model_dir, monkeypatch, caplog, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("tf2onnx exploded")

    monkeypatch.setattr("model.serving.export.compile_in_subprocess", broken)
    with caplog.at_level(logging.WARNING, logger="model.serving.predictor"):
        p = load_predictor(tiny_model_dir, "onnx-int8", cache_dir=tmp_path)
    assert p.backend == "keras" and "falling back to keras" in caplog.text


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match=r"supported: keras, onnx.*openvino-bf16.*auto"):
        load_predictor(tiny_model_dir, "tensorrt")
