"""Settings of the inference worker (``python -m model.inference``).

Every knob comes from the environment with a local default; `.env.example` documents them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from model.serving.predictor import DEFAULT_BACKEND


def _env(name: str, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return type(default)(raw)


@dataclass
class WorkerSettings:
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_prefix: str = field(default_factory=lambda: _env("REDIS_PREFIX", "pneumonia"))
    model_store: str = field(default_factory=lambda: _env("MODEL_STORE", "var/models"))
    model_cache_dir: str = field(default_factory=lambda: _env("MODEL_CACHE_DIR", "var/model-cache"))
    name: str = field(
        default_factory=lambda: _env("WORKER_NAME", f"{socket.gethostname()}-{os.getpid()}")
    )
    # Dynamic batching: take up to max_batch jobs, waiting at most batch_wait_ms for more
    # once the first has arrived. int8 costs about the same CPU per image from batch 1 to 64
    # (PERFORMANCE.md), so batches are small and the wait short: bigger ones gave the same
    # throughput, with results (and the clients' next uploads) arriving in bigger bursts.
    # 2 against 4, paired runs at 16 clients: same img/s within noise, API accept p95
    # 24 ms against 38 ms.
    max_batch: int = field(default_factory=lambda: _env("MAX_BATCH", 2))
    batch_wait_ms: int = field(default_factory=lambda: _env("BATCH_WAIT_MS", 10))
    # How long one blocking read waits when idle (bounds the SIGTERM reaction time too).
    block_ms: int = field(default_factory=lambda: _env("BLOCK_MS", 1000))
    # A job pending this long belongs to a worker presumed dead; must exceed the time of every
    # batch a worker holds at once (Predictor.concurrency in flight, one more being decoded).
    claim_idle_ms: int = field(default_factory=lambda: _env("CLAIM_IDLE_MS", 60_000))
    max_attempts: int = field(default_factory=lambda: _env("MAX_ATTEMPTS", 3))
    heartbeat_seconds: float = field(default_factory=lambda: _env("HEARTBEAT_SECONDS", 5.0))
    heartbeat_ttl: int = field(default_factory=lambda: _env("HEARTBEAT_TTL", 20))
    model_poll_seconds: float = field(default_factory=lambda: _env("MODEL_POLL_SECONDS", 5.0))
    decode_threads: int = field(default_factory=lambda: _env("DECODE_THREADS", 2))
    metrics_port: int = field(default_factory=lambda: _env("WORKER_METRICS_PORT", 9101))
    # auto | keras | onnx | onnx-int8 | openvino | openvino-bf16 | openvino-int8
    # (model/serving/predictor.py). auto, the default: the fastest whose ROC AUC on
    # QUALITY_CHECK_IMAGES validation X-rays stays within QUALITY_MAX_AUC_LOSS of Keras fp32
    # on this host, checked once per model version (model/serving/selection.py).
    backend: str = field(default_factory=lambda: _env("INFERENCE_BACKEND", DEFAULT_BACKEND))
    check_images: int = field(default_factory=lambda: _env("QUALITY_CHECK_IMAGES", 256))
    max_auc_loss: float = field(default_factory=lambda: _env("QUALITY_MAX_AUC_LOSS", 0.003))
    # CPU priority of the worker (os.nice increment): uploads and reads are interactive, a
    # batch is not, so where the API shares the host it answers first (PERFORMANCE.md).
    nice: int = field(default_factory=lambda: _env("WORKER_NICE", 10))
    # Threads of the inference runtime; 0 = every core this process may use.
    threads: int = field(default_factory=lambda: _env("INFERENCE_THREADS", 0))
    # X-rays to calibrate int8 on when the model version ships no calibration.npz
    # (default: the shared training set, ../shared/data/chest_xray_224).
    calibration_data: str = field(default_factory=lambda: _env("CALIBRATION_DATA", ""))
    # Grad-CAM heatmaps on request (model/serving/heatmaps.py): 0 turns the thread off; the
    # PNG's longest side in pixels.
    heatmaps: int = field(default_factory=lambda: _env("HEATMAPS", 1))
    heatmap_max_side: int = field(default_factory=lambda: _env("HEATMAP_MAX_SIDE", 1024))
