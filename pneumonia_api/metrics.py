"""Prometheus metrics of the API, and the queue's state read from Redis at scrape time.

Under gunicorn each worker process counts on its own; with ``PROMETHEUS_MULTIPROC_DIR`` set
(see gunicorn_conf.py) prometheus_client sums them, so /metrics shows the whole API whichever
worker answers the scrape. Names follow Prometheus' base-unit conventions.
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from observability.http_metrics import RequestMetrics

HTTP = RequestMetrics.create(
    "pneumonia_api",
    "API",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPLOAD_BYTES = Histogram(
    "pneumonia_api_upload_size_bytes",
    "Size of each uploaded file",
    buckets=(1e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8),
)
REJECTED = Counter("pneumonia_api_uploads_rejected_total", "Uploads refused, by reason", ["reason"])
# Every reason exported from the start (at 0), so a dashboard reads 0 rather than "No data".
REJECT_REASONS = (
    "empty_file",
    "unsupported_type",
    "too_many_pixels",
    "image_too_small",
    "multi_frame",
    "truncated_image",
    "invalid_dicom",
    "too_many_files",
)
for _reason in REJECT_REASONS:
    REJECTED.labels(_reason)
ACCEPTED = Counter("pneumonia_api_predictions_accepted_total", "Images accepted for prediction")
CACHE_HITS = Counter(
    "pneumonia_api_cache_hits_total", "Uploads answered from the content cache without inference"
)


def upload_size(n: int) -> None:
    UPLOAD_BYTES.observe(n)


def rejected(reason: str) -> None:
    REJECTED.labels(reason).inc()


def accepted() -> None:
    ACCEPTED.inc()


def cache_hit() -> None:
    CACHE_HITS.inc()


class QueueCollector:
    """Reads queue depth, pending jobs, oldest pending age, dead letters and live workers."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from .jobstore import live_workers

        queue = self.app.extensions["job_queue"]
        up = GaugeMetricFamily("pneumonia_queue_up", "1 when Redis answered this scrape")
        try:
            stats = queue.queue_stats()
            workers = live_workers(self.app)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, help_, value in (
            ("pneumonia_queue_depth", "Jobs waiting, not yet read by a worker", stats["depth"]),
            (
                "pneumonia_queue_pending",
                "Jobs read by a worker, not yet acknowledged",
                stats["pending"],
            ),
            (
                "pneumonia_queue_oldest_pending_age_seconds",
                "Age of the oldest pending job",
                stats["oldest_pending_age_seconds"],
            ),
            (
                "pneumonia_queue_dead_letter_jobs",
                "Jobs given up after the retry limit",
                stats["dead_letters"],
            ),
        ):
            yield GaugeMetricFamily(name, help_, value=value)
        alive = GaugeMetricFamily(
            "pneumonia_workers_alive", "Workers with a recent heartbeat, by state", labels=["state"]
        )
        counts: dict[str, int] = {}
        for w in workers:
            counts[w.get("state", "unknown")] = counts.get(w.get("state", "unknown"), 0) + 1
        for state in ("ready", "no-model", "loading", "error"):
            alive.add_metric([state], counts.get(state, 0))
        yield alive


class VerdictCollector:
    """Readers' verdicts per model version and agreement, read from Redis at scrape time.

    Counts live in Redis (jobs.verdicts), so every API instance reports the same totals and a
    restart loses nothing; dashboards and alerts take ``max without (instance, role)``.
    """

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from jobs.verdicts import AGREEMENTS

        try:
            tally = self.app.extensions["job_verdicts"].tally()
        except Exception:
            return  # pneumonia_queue_up already says Redis did not answer
        # A gauge, not a counter: a reader who changes their verdict moves one count from one
        # agreement to another, which a counter could only show as a reset. Use delta().
        total = GaugeMetricFamily(
            "pneumonia_reader_verdicts",
            "Readers' verdicts recorded, by model version and agreement with the model",
            labels=["model_version", "agreement"],
        )
        ratio = GaugeMetricFamily(
            "pneumonia_reader_agreement_ratio",
            "Share of readers' labels that agree with the model (agree / (agree + disagree))",
            labels=["model_version"],
        )
        versions = sorted({version for version, _ in tally})
        for version in versions:
            for agreement in AGREEMENTS:
                total.add_metric([version, agreement], tally.get((version, agreement), 0))
            agree = tally.get((version, "agree"), 0)
            judged = agree + tally.get((version, "disagree"), 0)
            if judged:
                ratio.add_metric([version], agree / judged)
        yield total
        yield ratio


def init_app(app: Flask) -> None:
    """Time every request and expose /metrics with the queue's state read at scrape time."""
    queue_registry = CollectorRegistry(auto_describe=False)
    queue_registry.register(QueueCollector(app))
    queue_registry.register(VerdictCollector(app))
    HTTP.init_app(app, extra=[queue_registry])
