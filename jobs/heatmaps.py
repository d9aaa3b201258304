"""Grad-CAM heatmaps ("where the model looked"): asked for by the API, drawn by the workers.

The API never loads a model, so a heatmap travels through Redis like a prediction does:

1. ``GET /v1/predictions/<id>/heatmap`` finds no heatmap and calls :meth:`Heatmaps.ask`: a
   marker (``{p}:heatmap:<id>:asked``, expiring after ``retry_seconds``) and the id pushed on
   the request list, both only if no request is out yet, so polling every second asks once.
2. A worker's heatmap thread pops the id (:meth:`Heatmaps.next_request`), computes Grad-CAM
   with the fp32 Keras model of the version that scored the image, and :meth:`Heatmaps.store`
   writes the PNG in a hash that expires with the image (its remaining TTL, read in the same
   Lua script: no heatmap outlives its X-ray).
3. The API's next poll finds it and serves the PNG.

Restarts: requests wait in Redis while no worker runs. A request popped by a worker that then
died is lost, but its marker expires after ``retry_seconds`` and the next poll asks again, so
a clinician's page recovers on its own. Failures (image expired, model version gone) are
stored as an error that expires after ``failure_ttl``, so they are reported, not retried in a
loop, and a later request may succeed. Cost is on demand only: the UI asks when the result
page opens (README: why not eagerly after every prediction).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis

from jobs import scripts
from jobs.keys import DEFAULT_PREFIX, Keys
from jobs.record import text


class HeatmapStatus(enum.StrEnum):
    READY = "ready"
    COMPUTING = "computing"
    FAILED = "failed"


@dataclass
class Heatmap:
    """A stored heatmap (``png``) or the reason there is none (``error``)."""

    status: str
    png: bytes | None = None
    error: str = ""
    model_version: str = ""
    layer: str = ""
    seconds: float | None = None


class Heatmaps:
    """Ask for, wait for and store Grad-CAM heatmaps. Shared by the API and the workers."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        retry_seconds: int = 30,
        failure_ttl: int = 300,
        max_requests: int = 10_000,
    ):
        self.r = client
        self.keys = Keys(prefix)
        self.retry_seconds = retry_seconds
        self.failure_ttl = failure_ttl
        self.max_requests = max_requests
        self._store = client.register_script(scripts.STORE_HEATMAP)

    # --- API side ----------------------------------------------------------------------

    def get(self, pid: str) -> Heatmap | None:
        """The stored heatmap or failure, None while there is neither."""
        data = self.r.hgetall(self.keys.heatmap(pid))
        if not data:
            return None
        raw = {text(k): v for k, v in data.items()}
        seconds = raw.get("seconds")
        return Heatmap(
            status=text(raw.get("status", HeatmapStatus.FAILED.value)),
            png=raw.get("png"),
            error=text(raw.get("error", b"")),
            model_version=text(raw.get("model_version", b"")),
            layer=text(raw.get("layer", b"")),
            seconds=float(text(seconds)) if seconds is not None else None,
        )

    def ask(self, pid: str) -> bool:
        """Request a heatmap unless a request is already out; True if this call asked."""
        if not self.r.set(self.keys.heatmap_asked(pid), "1", nx=True, ex=self.retry_seconds):
            return False
        pipe = self.r.pipeline(transaction=True)
        pipe.lpush(self.keys.heatmap_requests, pid)
        pipe.ltrim(self.keys.heatmap_requests, 0, self.max_requests - 1)
        pipe.execute()
        return True

    def image_kept(self, pid: str) -> bool:
        """Whether the image is still stored (a heatmap never outlives it)."""
        return bool(self.r.exists(self.keys.image(pid)))

    def waiting(self) -> int:
        """Requests not yet taken by a worker."""
        return int(self.r.llen(self.keys.heatmap_requests))

    # --- worker side ---------------------------------------------------------------------

    def next_request(self, timeout: float) -> str | None:
        """The oldest request, waiting up to ``timeout`` seconds; None if there is none."""
        reply = self.r.brpop([self.keys.heatmap_requests], timeout=timeout)
        return text(reply[1]) if reply else None

    def store(self, pid: str, png: bytes, model_version: str, layer: str, seconds: float) -> bool:
        """Keep the PNG as long as the image; False (nothing kept) if the image is gone."""
        fields = {
            "status": HeatmapStatus.READY.value,
            "png": png,
            "model_version": model_version,
            "layer": layer,
            "seconds": f"{seconds:.3f}",
        }
        return self._write(pid, fields, cap_ms=0)

    def store_failure(self, pid: str, reason: str) -> bool:
        """Say why no heatmap can be drawn, for ``failure_ttl`` seconds (at most the image's)."""
        fields = {"status": HeatmapStatus.FAILED.value, "error": reason}
        return self._write(pid, fields, cap_ms=self.failure_ttl * 1000)

    def _write(self, pid: str, fields: dict, cap_ms: int) -> bool:
        k = self.keys
        flat = [x for pair in fields.items() for x in pair]
        keys = [k.image(pid), k.heatmap(pid), k.heatmap_asked(pid)]
        return bool(self._store(keys=keys, args=[cap_ms, *flat]))
