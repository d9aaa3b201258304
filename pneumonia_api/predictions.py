"""/v1/predictions: upload X-rays, read one result, list history; /v1/model: what is served."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from jobs.record import LABELS, Prediction, new_id

from . import assessable, images, metrics, uploads
from .auth import require_token
from .errors import ApiError
from .jobstore import get_queue, live_workers, served_model, training

bp = Blueprint("predictions", __name__, url_prefix="/v1")
bp.before_request(require_token)

_UPLOADER = re.compile(r"[^A-Za-z0-9._@-]")


def _links(pid: str) -> dict:
    return {
        "self": url_for("predictions.get_prediction", pid=pid),
        "image": url_for("predictions.get_image", pid=pid),
    }


def _public(p: Prediction) -> dict:
    return {**p.to_dict(), "links": _links(p.id)}


def _uploader() -> str:
    """Who uploaded, as the calling service says (the UI sends the logged-in user)."""
    return _UPLOADER.sub("", request.headers.get("X-Uploader", "api"))[:64] or "api"


@bp.post("/predictions")
def create_predictions():
    """Validate every file first, then store and queue them; all or nothing per request."""
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
    uploader = _uploader()
    out = []
    for name, image, size in accepted:
        record = Prediction(
            id=new_id(),
            filename=name,
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
        hit = queue.cached_result(image.sha256, served.get("version"))
        if reason:
            queue.submit_not_assessable(record, reason, image.data)
        elif hit is not None:
            queue.record_cached(record, hit, image.data)
            metrics.cache_hit()
        else:
            queue.submit(record, image.data)
        metrics.accepted()
        out.append(
            {
                "id": record.id,
                "status": record.status,
                "filename": name,
                "cached": record.cached,
                "links": _links(record.id),
            }
        )
    response = jsonify(out)
    response.status_code = 202
    if len(out) == 1:
        response.headers["Location"] = out[0]["links"]["self"]
    return response


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
    return jsonify(_public(record))


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
