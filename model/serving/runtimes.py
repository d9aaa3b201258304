"""Inference runtimes behind :class:`model.serving.predictor.Predictor`: ``run(batch) -> outputs``.

Each constructor takes a model file and the cores to use, and returns a callable that maps a
float32 batch (n, size, size, 3) to the model's raw outputs. ``concurrency`` on the callable
(1 when absent) says how many calls may usefully run at once: the worker keeps that many
batches in flight (model/inference.py).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def keras_runner(model_path: Path, max_batch: int, threads: int):
    """TensorFlow on ``model.keras`` itself, padded to a fixed batch (no retracing)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already set once TF has started
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras.saving.load_model(model_path, compile=False)

    def run(batch: np.ndarray):
        # Pad to a fixed batch so the traced graph is reused for every batch size.
        n = len(batch)
        size = max(max_batch, n)
        if n < size:
            pad = np.zeros((size - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        return np.asarray(model.predict_on_batch(batch))[:n]

    return run


def onnxruntime_runner(onnx_path: Path, threads: int):
    """An onnxruntime CPU session: all graph optimisations, one pool of ``threads``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: the decode threads need those cores in the meantime.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: np.ascontiguousarray(batch, np.float32)})[0]


class OpenVinoRunner:
    """OpenVINO on the CPU: a lone image on every core, batches over independent lanes.

    Why lanes: one inference spread over every core keeps those cores in lockstep, so when
    anything else on the host (decoding, the API, Redis) takes one core for a moment, the
    others wait at the next barrier. On the shared 2-core host, under the same competing load,
    two one-core lanes ran 31.5 images/s at 49 CPU ms each, against 23.5 images/s at 57 ms
    for one two-core inference (PERFORMANCE.md). So:

    - a batch is split over ``concurrency`` lanes, each its own compiled model on its share
      of the cores; the worker keeps that many batches in flight, and a lane takes the next
      chunk as soon as it is free;
    - a single image with nothing else running (a quiet queue) goes to a LATENCY-compiled
      model that puts every core on it, so one doctor's upload is not slower than before.

    Lanes are separate compiled models, not one model's streams: OpenVINO 2026.4's int8
    streams (NUM_STREAMS >= 2, any hint) returned wrong probabilities on this AVX2 CPU, off
    by up to 0.34 (caught by tests/model/serving/test_quality.py). Lanes are not pinned to cores:
    pinning put every one-core lane on the same core.

    ``precision`` is pinned, never left to the plugin: on CPUs with AVX-512 BF16 or AMX the CPU
    plugin's default INFERENCE_PRECISION_HINT is bf16, so an "fp32" model would silently run
    bf16 there (and an int8 model's non-quantised layers too). ``f32`` unless the backend is
    the named ``openvino-bf16``.
    """

    def __init__(self, onnx_path: Path, threads: int, max_batch: int = 1, precision: str = "f32"):
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(onnx_path.parent / "openvino-cache")})
        model = str(onnx_path)
        pinned = {"INFERENCE_PRECISION_HINT": precision}
        self._single = core.compile_model(
            model,
            "CPU",
            {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", **pinned},
        ).create_infer_request()
        self.precision = precision
        self.concurrency = max(1, min(threads, max_batch))
        self._pool: ThreadPoolExecutor | None = None
        if self.concurrency > 1:
            lane = {
                "INFERENCE_NUM_THREADS": threads // self.concurrency,
                "PERFORMANCE_HINT": "LATENCY",
                "ENABLE_CPU_PINNING": False,
                **pinned,
            }
            self._lanes: queue.SimpleQueue = queue.SimpleQueue()
            for _ in range(self.concurrency):
                self._lanes.put(core.compile_model(model, "CPU", lane).create_infer_request())
            # One Python thread per lane: a synchronous infer releases the GIL, and errors
            # come back through the futures.
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ov-lane")
        self._lock = threading.Lock()
        self._calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            alone = self._calls == 0
            self._calls += 1
        try:
            if self._pool is None or (alone and len(batch) == 1):
                return self._infer(self._single, batch)
            chunks = np.array_split(batch, min(len(batch), self.concurrency))
            futures = [self._pool.submit(self._on_lane, chunk) for chunk in chunks]
            return np.concatenate([f.result() for f in futures])
        finally:
            with self._lock:
                self._calls -= 1

    def _on_lane(self, chunk: np.ndarray) -> np.ndarray:
        request = self._lanes.get()  # never waits: as many pool threads as lanes
        try:
            return self._infer(request, chunk)
        finally:
            self._lanes.put(request)

    @staticmethod
    def _infer(request, batch: np.ndarray) -> np.ndarray:
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()


def openvino_cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX), as OpenVINO reports it."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or no CPU plugin: no bf16 either
        return False
