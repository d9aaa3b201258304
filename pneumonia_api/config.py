"""API settings: every address, secret and limit comes from the environment.

Local defaults let `make up` and the tests run with no setup; in production (APP_ENV=production)
the API refuses to start without a real service token, so a forgotten secret fails loudly at
boot instead of leaving the API open.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Read once per app; tests pass overrides to ``create_app``."""

    def __init__(self) -> None:
        self.APP_ENV = os.environ.get("APP_ENV", "development")
        self.REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.REDIS_PREFIX = os.environ.get("REDIS_PREFIX", "pneumonia")
        self.REDIS_TIMEOUT_SECONDS = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "2"))
        self.API_TOKEN = os.environ.get("API_TOKEN", "")
        # Limits on what one request may carry.
        self.MAX_UPLOAD_BYTES = _int("MAX_UPLOAD_BYTES", 32 * 1024 * 1024)
        self.MAX_FILES_PER_REQUEST = _int("MAX_FILES_PER_REQUEST", 20)
        self.MAX_IMAGE_PIXELS = _int("MAX_IMAGE_PIXELS", 50_000_000)
        self.MIN_IMAGE_SIDE = _int("MIN_IMAGE_SIDE", 32)
        # Longer side / shorter side beyond which an upload is not a chest film (accepted,
        # ends not_assessable). Chest films are near 1; the Kermany originals reach 2.2.
        self.MAX_ASPECT_RATIO = float(os.environ.get("MAX_ASPECT_RATIO", "2.5"))
        # How long things are kept.
        self.IMAGE_TTL_SECONDS = _int("IMAGE_TTL_SECONDS", 7 * 24 * 3600)
        self.RESULT_RETENTION_SECONDS = _int("RESULT_RETENTION_SECONDS", 30 * 24 * 3600)
        # A worker whose heartbeat is older than this is not counted as alive.
        self.WORKER_STALE_SECONDS = _int("WORKER_STALE_SECONDS", 30)
        self.HISTORY_MAX_LIMIT = _int("HISTORY_MAX_LIMIT", 200)
        # Backpressure: above this many accepted, unfinished jobs uploads get 503 + Retry-After
        # and nothing is saved (the queue never grows past what Redis's maxmemory can hold).
        self.QUEUE_LIMIT = _int("QUEUE_LIMIT", 5000)
        self.QUEUE_RETRY_AFTER_SECONDS = _int("QUEUE_RETRY_AFTER_SECONDS", 30)
        # File names can carry patients: 0 stores none (records show the id instead). When
        # stored they live in the record, so they expire with it (RESULT_RETENTION_SECONDS).
        self.STORE_FILENAMES = os.environ.get("STORE_FILENAMES", "1") != "0"
        # How long a retried upload with the same Idempotency-Key returns the first job.
        self.IDEMPOTENCY_TTL_SECONDS = _int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
        # The worklist (/v1/worklist) sorts at most this many results of its date window, and
        # flags for a second look those within this distance of the decision threshold.
        self.WORKLIST_SCAN_MAX = _int("WORKLIST_SCAN_MAX", 5000)
        self.SECOND_LOOK_MARGIN = float(os.environ.get("SECOND_LOOK_MARGIN", "0.1"))
        # Heatmaps (pneumonia_api/heatmaps.py): the longest ?wait= a client may ask for, and
        # how long a request may stay unanswered before the next poll asks again.
        self.HEATMAP_MAX_WAIT_SECONDS = _int("HEATMAP_MAX_WAIT_SECONDS", 10)
        self.HEATMAP_RETRY_SECONDS = _int("HEATMAP_RETRY_SECONDS", 30)
        self.PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

    def check(self) -> None:
        """Refuse to run in production with missing or weak secrets."""
        if self.APP_ENV == "production" and len(self.API_TOKEN) < 32:
            raise RuntimeError(
                "API_TOKEN must be set to a random string of at least 32 characters in "
                "production (terraform generates one; locally `make up` writes var/local.env)"
            )

    def as_flask(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.isupper()}
