"""The worker's heatmap thread: draws the Grad-CAM heatmaps the API asks for (jobs.heatmaps).

One thread per worker, beside the prediction loop, so predictions never wait on a heatmap:
they share the CPU with at most one Grad-CAM at a time (a few hundred ms for the served
ResNet50 at 32 px on 2 vCPUs: README). The fp32 Keras model of the version that scored the
image is loaded on the first request for it (from the store, or the S3 cache) and kept, one
version at a time; the runtime that serves predictions (OpenVINO, onnx) is not touched.

Failures are stored with their reason (jobs.heatmaps.Heatmaps.store_failure) and the thread
goes on; a Redis outage only pauses it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from jobs.heatmaps import Heatmaps
from jobs.queue import JobQueue
from jobs.record import JobStatus
from model import preprocess
from model.store import MODEL_FILE, ModelStore, StoreError

log = logging.getLogger("model.heatmaps")

EXPIRED = "the image has expired: upload it again to see where the model looked"


class HeatmapThread(threading.Thread):
    """Pops heatmap requests and answers each with a PNG or a reason; stops on ``stop``."""

    def __init__(
        self,
        queue: JobQueue,
        heatmaps: Heatmaps,
        store: ModelStore,
        stop: threading.Event,
        max_side: int = 1024,
        block_seconds: float = 1.0,
    ):
        super().__init__(name="heatmaps", daemon=True)
        self.queue, self.heatmaps, self.store = queue, heatmaps, store
        self._stop_event = stop
        self.max_side = max_side
        self.block_seconds = block_seconds
        self._cams: dict = {}  # {version: GradCam}, one version kept
        self.drawn = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                pid = self.heatmaps.next_request(self.block_seconds)
                if pid is not None:
                    self.handle(pid)
            except redis.RedisError as exc:
                log.warning("heatmaps: redis unavailable (%s); retrying in 1s", exc)
                self._stop_event.wait(1.0)

    def handle(self, pid: str) -> None:
        """Draw one heatmap, or store why it cannot be drawn."""
        existing = self.heatmaps.get(pid)
        if existing is not None and existing.png:
            return
        record = self.queue.get(pid)
        image = self.queue.image(pid) if record else None
        if record is None or image is None:
            self.heatmaps.store_failure(pid, EXPIRED)
            return
        if record.status != JobStatus.DONE.value or not record.model_version:
            self.heatmaps.store_failure(pid, "the model has not scored this image yet")
            return
        try:
            t0 = time.perf_counter()
            cam = self._gradcam(record.model_version)
            pixels = preprocess.prepare(image, cam.model.input_shape[1])
            grid, _ = cam.compute(pixels)
            from model.serving.gradcam import render

            width, height = record.width or pixels.shape[1], record.height or pixels.shape[0]
            png = render(grid, width, height, self.max_side)
            seconds = time.perf_counter() - t0
        except preprocess.PreprocessError:
            self.heatmaps.store_failure(pid, "the image could not be decoded")
            return
        except (StoreError, OSError) as exc:
            log.warning("heatmap %s: model %s unavailable: %s", pid, record.model_version, exc)
            self.heatmaps.store_failure(
                pid, f"model version {record.model_version} is no longer in the model store"
            )
            return
        except Exception as exc:  # a heatmap must never take the worker down
            log.exception("heatmap %s failed", pid)
            self.heatmaps.store_failure(
                pid, f"the heatmap could not be computed ({type(exc).__name__})"
            )
            return
        self.heatmaps.store(pid, png, record.model_version, cam.layer_name, seconds)
        self.drawn += 1
        log.info("heatmap %s drawn in %.2fs (%s, layer %s)", pid, seconds, record.model_version,
                 cam.layer_name)  # fmt: skip

    def _gradcam(self, version: str):
        """The Grad-CAM of one model version, loaded once (the previous version is dropped)."""
        cam = self._cams.get(version)
        if cam is None:
            from model.serving.gradcam import GradCam

            path = self.store.fetch(version) / MODEL_FILE
            cam = GradCam.load(path)
            self._cams = {version: cam}
        return cam
