"""/v1/predictions: upload X-rays, read one result, list history; /v1/model: what is served."""

from __future__ import annotations

import hashlib
import re

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from jobs.queue import mark_not_assessable
from jobs.record import LABELS, JobStatus, Prediction, new_id

from . import assessable, images, metrics, uploads
from .auth import require_token
from .errors import ApiError
from .jobstore import get_queue, live_workers, served_model, training, verdicts

bp = Blueprint("predictions", __name__, url_prefix="/v1")
bp.before_request(require_token)

_UPLOADER = re.compile(r"[^A-Za-z0-9._@-]")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# Kept for the content cache only, never shown: a hash of the upload with its metadata.
_PRIVATE = ("sha256",)


def _links(pid: str) -> dict:
    return {
        "self": url_for("predictions.get_prediction", pid=pid),
        "image": url_for("predictions.get_image", pid=pid),
        "heatmap": url_for("heatmaps.get_heatmap", pid=pid),
    }


def _public(p: Prediction) -> dict:
    shown = {k: v for k, v in p.to_dict().items() if k not in _PRIVATE}
    return {**shown, "links": _links(p.id)}


def _item(record: Prediction) -> dict:
    """One entry of the upload answer."""
    return {
        "id": record.id,
        "status": record.status,
        "filename": record.filename,
        "cached": record.cached,
        "links": _links(record.id),
    }


def _idempotency_key(uploader: str) -> str | None:
    """The Redis key of this request's Idempotency-Key header (scoped to the uploader and
    hashed, so no client text becomes a key name), or None without the header."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(raw):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 8-128 letters, digits, '.', '_', ':' or '-' "
            "(a random UUID per upload is ideal).",
        )
    digest = hashlib.sha256(f"{uploader}\n{raw}".encode()).hexdigest()
    return get_queue().keys.idempotency(digest)


def _accepted(records: list[Prediction], replayed: bool = False):
    response = jsonify([_item(r) for r in records])
    response.status_code = 202
    if len(records) == 1:
        response.headers["Location"] = _links(records[0].id)["self"]
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _check_backpressure(queue, n: int) -> None:
    """503 + Retry-After, before anything is saved, when the queue is past QUEUE_LIMIT."""
    limit = current_app.config["QUEUE_LIMIT"]
    if queue.waiting() + n > limit:
        metrics.rejected("queue_full")
        raise ApiError(
            503,
            "queue_full",
            f"More than {limit} X-rays are waiting for analysis; nothing was saved. "
            "Send this one again in a little while.",
            retry_after=current_app.config["QUEUE_RETRY_AFTER_SECONDS"],
        )


def _uploader() -> str:
    """Who uploaded, as the calling service says (the UI sends the logged-in user)."""
    return _UPLOADER.sub("", request.headers.get("X-Uploader", "api"))[:64] or "api"


@bp.post("/predictions")
def create_predictions():
    """Validate every file first, then store and queue them; all or nothing per request.

    With an ``Idempotency-Key``, a retry of a request that was stored returns the same jobs
    (202, ``Idempotent-Replayed: true``) instead of queueing them twice.
    """
    uploader = _uploader()
    idem_key = _idempotency_key(uploader)
    if idem_key is not None:
        earlier = get_queue().idempotent(idem_key)
        if earlier:
            return _accepted(earlier, replayed=True)
    limit = current_app.config["MAX_FILES_PER_REQUEST"]
    try:
        files = uploads.files("file", limit, current_app.config["MAX_UPLOAD_BYTES"])
    except ApiError as exc:
        if exc.code == "too_many_files":
            metrics.rejected(exc.code)
        raise
    limits = images.Limits(
        current_app.config["MAX_IMAGE_PIXELS"], current_app.config["MIN_IMAGE_SIDE"]
    )
    accepted = []
    for f in files:
        name, data = images.safe_filename(f.filename), f.data
        metrics.upload_size(len(data))
        try:
            accepted.append((name, images.validate(data, name, limits), len(data)))
        except ApiError as exc:
            metrics.rejected(exc.code)
            raise
    queue = get_queue()
    served = served_model().card() or {}
    store_names = current_app.config["STORE_FILENAMES"]
    batch = []
    for name, image, size in accepted:
        record = Prediction(
            id=new_id(),
            filename=name if store_names else "",
            sha256=image.sha256,
            media_type=image.media_type,
            width=image.width,
            height=image.height,
            size_bytes=size,
            uploader=uploader,
        )
        reason = image.not_assessable or assessable.shape_reason(
            image.width, image.height, current_app.config["MAX_ASPECT_RATIO"]
        )
        if reason:
            batch.append((mark_not_assessable(record, reason), image.data, None))
            continue
        batch.append((record, image.data, queue.cached_result(image.sha256, served.get("version"))))
    queued = sum(1 for r, _, hit in batch if hit is None and r.status == JobStatus.QUEUED.value)
    _check_backpressure(queue, queued)
    ttl = current_app.config["IDEMPOTENCY_TTL_SECONDS"]
    idempotency = (idem_key, ",".join(r.id for r, _, _ in batch), ttl) if idem_key else None
    records = queue.submit_all(batch, idempotency)  # one transaction: all or nothing
    for _, _, hit in batch:
        if hit is not None:
            metrics.cache_hit()
        metrics.accepted()
    return _accepted(records)


@bp.get("/predictions/<pid>")
def get_prediction(pid: str):
    record = get_queue().get(pid) if re.fullmatch(r"[0-9a-f]{32}", pid) else None
    if record is None:
        raise ApiError(
            404,
            "not_found",
            "No prediction with that id (it may have expired). "
            "List recent ones with GET /v1/predictions.",
        )
    found = verdicts().get(pid)  # the reader's verdict (pneumonia_api/verdicts.py)
    return jsonify({**_public(record), "verdict": found.to_dict() if found else None})


@bp.get("/predictions/<pid>/image")
def get_image(pid: str):
    queue = get_queue()
    record = queue.get(pid) if re.fullmatch(r"[0-9a-f]{32}", pid) else None
    data = queue.image(pid) if record else None
    if data is None:
        raise ApiError(
            404,
            "not_found",
            "No image for that id (images expire after "
            f"{current_app.config['IMAGE_TTL_SECONDS'] // 86400} days).",
        )
    resp = Response(data, mimetype=record.media_type or "application/octet-stream")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be a whole number.") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be between {lo} and {hi}.")
    return value


@bp.get("/predictions")
def list_predictions():
    """Newest first; ``before`` is the ``created_at`` (ms) of the last item already shown."""
    limit = _int_arg("limit", 20, 1, current_app.config["HISTORY_MAX_LIMIT"])
    before = _int_arg("before", None, 0, 2**62)
    label = request.args.get("label") or None
    uploader = request.args.get("uploader") or None
    if label is not None and label not in LABELS:
        raise ApiError(400, "invalid_parameter", "'label' must be Pneumonia or Normal.")
    queue = get_queue()
    items: list[Prediction] = []
    cursor, exhausted = before, False
    for _ in range(20):  # bounded scan when filters drop most rows
        page = queue.history(limit=max(limit, 50), before=cursor)
        if not page:
            exhausted = True
            break
        for p in page:
            if (label is None or p.label == label) and (uploader is None or p.uploader == uploader):
                items.append(p)
        cursor = page[-1].created_at
        if len(items) >= limit:
            break
    items = items[:limit]
    more = not exhausted and len(items) == limit
    return jsonify(
        {
            "items": [_public(p) for p in items],
            "next_before": items[-1].created_at if items and more else None,
        }
    )


@bp.get("/model")
def model_info():
    """The card of the model the workers serve, training progress and live workers."""
    return jsonify(
        {
            "card": served_model().card(),
            "training": training().get(),
            "workers": live_workers(),
        }
    )
