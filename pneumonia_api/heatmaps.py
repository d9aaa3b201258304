"""/v1/predictions/<id>/heatmap: where the model looked (Grad-CAM), as a transparent PNG layer.

The API never loads a model: it asks the inference workers through the job contract
(:mod:`jobs.heatmaps`) and answers at once, so a heatmap never holds an API process for long:

- ``200 image/png``: the heatmap, an RGBA layer the size of the upload (longest side at most
  HEATMAP_MAX_SIDE) to stack on the X-ray; ``X-Model-Version`` and ``X-Heatmap-Layer`` say
  which model and layer it explains;
- ``202 {"status": "computing"}`` with ``Retry-After``: asked for (or already asked), poll
  again; ``?wait=N`` (seconds, at most HEATMAP_MAX_WAIT_SECONDS) waits that long first;
- ``409 not_ready``: the prediction is not done yet; ``404``: no such prediction, or its image
  expired (the heatmap expires with it); ``422 heatmap_failed``: the worker said why not.

A request taken by a worker that died is asked again once HEATMAP_RETRY_SECONDS have passed,
by whichever poll comes next, so clients only ever need to poll.
"""

from __future__ import annotations

import re
import time

from flask import Blueprint, Response, current_app, jsonify, request

from jobs.heatmaps import Heatmaps, HeatmapStatus
from jobs.record import JobStatus

from .auth import require_token
from .errors import ApiError
from .jobstore import get_queue

bp = Blueprint("heatmaps", __name__, url_prefix="/v1")
bp.before_request(require_token)

CAVEAT = (
    "Shows which regions drove the model's score, not where disease is: "
    "it may point at markers, tubes or borders. Read the X-ray itself."
)


def heatmaps() -> Heatmaps:
    return current_app.extensions["job_heatmaps"]


def _wait_seconds() -> float:
    raw = request.args.get("wait") or "0"
    limit = current_app.config["HEATMAP_MAX_WAIT_SECONDS"]
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", "'wait' must be a number of seconds.") from None
    if not 0 <= value <= limit:
        raise ApiError(400, "invalid_parameter", f"'wait' must be between 0 and {limit} seconds.")
    return value


@bp.get("/predictions/<pid>/heatmap")
def get_heatmap(pid: str):
    wait = _wait_seconds()
    store = heatmaps()
    record = get_queue().get(pid) if re.fullmatch(r"[0-9a-f]{32}", pid) else None
    if record is None or not store.image_kept(pid):
        raise ApiError(
            404,
            "not_found",
            "No image for that id: it expired or never existed, and its heatmap with it. "
            "Upload the X-ray again to see where the model looked.",
        )
    if record.status != JobStatus.DONE.value:
        detail = {
            JobStatus.FAILED.value: "its analysis failed",
            JobStatus.NOT_ASSESSABLE.value: "it is not assessable, so there is nothing to explain",
        }.get(record.status, "wait for it")
        raise ApiError(409, "not_ready", f"The model has not scored this image ({detail}).")
    deadline = time.monotonic() + wait
    found = store.get(pid)
    while found is None:
        store.ask(pid)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
        found = store.get(pid)
    if found is None:
        resp = jsonify({"status": HeatmapStatus.COMPUTING.value, "caveat": CAVEAT})
        resp.status_code = 202
        resp.headers["Retry-After"] = "1"
        return resp
    if found.status != HeatmapStatus.READY.value or not found.png:
        raise ApiError(422, "heatmap_failed", f"No heatmap: {found.error or 'unknown reason'}.")
    resp = Response(found.png, mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Model-Version"] = found.model_version
    resp.headers["X-Heatmap-Layer"] = found.layer
    return resp
