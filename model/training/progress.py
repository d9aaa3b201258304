"""Training progress, for people watching: Redis (``/readyz``, the UI) and Prometheus.

- ``REDIS_URL`` set: progress goes to the training hash through
  :class:`jobs.training.TrainingProgress` (the job contract spells the keys).
- ``TRAINING_METRICS_TEXTFILE`` set: gauges are written there in Prometheus text format,
  atomically (temp file + rename), for node_exporter's textfile collector on the GPU box.

Reporting must never kill a training run: a Redis that is down or a read-only disk is logged
once and ignored.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import keras

log = logging.getLogger(__name__)

PHASES = ("loading", "training", "evaluating", "publishing", "done", "failed")
GAUGES = {
    "pneumonia_training_progress_ratio": ("ratio", "Fraction of the training run done (0..1)."),
    "pneumonia_training_epoch": ("epoch", "Epochs finished in the current training run."),
    "pneumonia_training_val_auc": ("val_auc", "Validation ROC AUC after the last epoch."),
    "pneumonia_training_images_per_second": (
        "images_per_second",
        "Training throughput of the last epoch, images per second.",
    ),
}


class Reporter:
    """Sends progress to Redis and/or a textfile, whichever the environment names."""

    def __init__(self, redis_url: str | None = None, textfile: str | None = None):
        self.redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL")
        self.textfile = (
            textfile if textfile is not None else os.environ.get("TRAINING_METRICS_TEXTFILE")
        )
        self.state: dict = {"phase": "loading", "epoch": 0, "epochs": 0, "ratio": 0.0}
        self._queue = None
        self._warned: set[str] = set()

    def update(self, **fields) -> None:
        """Merge ``fields`` into the state and send it everywhere; never raises."""
        self.state.update({k: v for k, v in fields.items() if v is not None})
        self.state["updated_at"] = int(time.time())
        if self.redis_url:
            self._guard("redis", self._send_redis)
        if self.textfile:
            self._guard("textfile", self._write_textfile)

    def _guard(self, what: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # reporting is best effort by design, see module docstring
            if what not in self._warned:
                log.warning("training progress: %s unavailable (%s); training goes on", what, exc)
                self._warned.add(what)
            self._queue = None if what == "redis" else self._queue

    def _send_redis(self) -> None:
        if self._queue is None:
            import redis

            from jobs.training import TrainingProgress

            client = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            self._queue = TrainingProgress(client)
        public = ("phase", "epoch", "epochs", "ratio", "message", "eta_seconds", "updated_at")
        self._queue.set({k: self.state[k] for k in public if k in self.state})

    def _write_textfile(self) -> None:
        lines = []
        for name, (key, help_text) in GAUGES.items():
            value = self.state.get(key)
            if value is None:
                continue
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        path = Path(self.textfile)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".training-", suffix=".prom.tmp", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


class ProgressCallback(keras.callbacks.Callback):
    """Reports epoch, ratio, ETA, throughput and val AUC at the end of each epoch.

    ``epoch_offset``/``total_epochs`` let the two phases of fine-tuning report as one run.
    """

    def __init__(
        self,
        reporter: Reporter,
        total_epochs: int,
        n_train: int,
        epoch_offset: int = 0,
        budget_seconds: float = 0.0,
    ):
        super().__init__()
        self.reporter, self.total, self.n_train = reporter, total_epochs, n_train
        self.offset, self.budget = epoch_offset, budget_seconds
        self.batch_interval = 15.0
        self._epoch, self._last_batch_report = epoch_offset, 0.0
        self._t0 = self._epoch_t0 = time.monotonic()

    def on_train_begin(self, logs=None):
        self._t0 = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_t0 = self._last_batch_report = time.monotonic()
        self._epoch = epoch
        first = epoch == self.offset
        self.reporter.update(
            phase="training",
            epochs=self.total,
            message=f"epoch {epoch + 1}/{self.total}" + (" (building the graph)" if first else ""),
        )

    def on_train_batch_end(self, batch, logs=None):
        """Between epochs too (a CPU epoch takes minutes), at most every ``batch_interval`` s."""
        now = time.monotonic()
        steps = (self.params or {}).get("steps") or 0
        if now - self._last_batch_report < self.batch_interval or not steps:
            return
        self._last_batch_report = now
        ratio = (self._epoch + (batch + 1) / steps) / max(self.total, 1)
        if self.budget:
            ratio = max(ratio, (now - self._t0) / self.budget)
        self.reporter.update(
            ratio=round(min(ratio, 1.0), 4),
            message=f"epoch {self._epoch + 1}/{self.total}, step {batch + 1}/{steps}",
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.monotonic() - self._epoch_t0
        done = epoch + 1 - self.offset
        elapsed = time.monotonic() - self._t0
        per_epoch = elapsed / max(done, 1)
        ratio, eta = (epoch + 1) / max(self.total, 1), per_epoch * max(self.total - epoch - 1, 0)
        if self.budget:  # a time budget ends the run before the epoch ceiling
            ratio, eta = max(ratio, elapsed / self.budget), min(eta, self.budget - elapsed)
        auc = logs.get("val_auc")
        self.reporter.update(
            phase="training",
            epoch=epoch + 1,
            epochs=self.total,
            ratio=round(min(ratio, 1.0), 4),
            eta_seconds=max(int(eta), 0),
            val_auc=float(auc) if auc is not None else None,
            images_per_second=round(self.n_train / max(seconds, 1e-9), 2),
            message=f"epoch {epoch + 1}/{self.total} done"
            + (f", val AUC {float(auc):.3f}" if auc is not None else ""),
        )
