"""Prometheus metrics of an inference worker, served on WORKER_METRICS_PORT."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from jobs.record import LABELS

INFERENCE = Histogram(
    "pneumonia_worker_inference_duration_seconds",
    "Time of one batched model call",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
)
BATCH = Histogram(
    "pneumonia_worker_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 32, 64)
)
IMAGES = Counter("pneumonia_worker_images_processed_total", "Images run through the model")
PREDICTIONS = Counter("pneumonia_worker_predictions_total", "Results written, by label", ["label"])
FAILURES = Counter("pneumonia_worker_failures_total", "Failed attempts, by reason", ["reason"])
JOB_LATENCY = Histogram(
    "pneumonia_worker_job_latency_seconds",
    "Upload to result, for jobs this worker finished",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
# Known labels (jobs.record.LABELS, the failure kinds) exported at 0 from the start:
# dashboards and ratios then read 0 rather than "No data".
for _label in LABELS:
    PREDICTIONS.labels(_label)
for _reason in ("preprocess", "inference", "max_attempts", "image_expired", "unreadable_image"):
    FAILURES.labels(_reason)
MODEL_INFO = Gauge("pneumonia_worker_model_info", "1 for the model version served", ["version"])
MODEL_LOAD = Gauge("pneumonia_worker_model_load_seconds", "Time the last model load took")
HEARTBEAT = Gauge("pneumonia_worker_heartbeat_timestamp_seconds", "Last heartbeat (unix time)")


def serve(port: int) -> None:
    """Expose /metrics; port 0 disables it (tests, several workers on one host)."""
    if port:
        start_http_server(port)


def batch_done(size: int, seconds: float) -> None:
    INFERENCE.observe(seconds)
    BATCH.observe(size)
    IMAGES.inc(size)


def prediction(label: str, latency_ms: int) -> None:
    PREDICTIONS.labels(label).inc()
    JOB_LATENCY.observe(max(latency_ms, 0) / 1000)


def failure(reason: str) -> None:
    FAILURES.labels(reason).inc()


def model_loaded(version: str, seconds: float) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(version).set(1)
    MODEL_LOAD.set(seconds)


def heartbeat() -> None:
    HEARTBEAT.set(time.time())
