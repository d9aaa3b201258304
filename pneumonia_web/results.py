"""One result: its page, its live card (polled by htmx until final) and its image."""

from __future__ import annotations

import io
import re

from flask import Blueprint, Response, abort, current_app, render_template, request

from pneumonia_web import audit
from pneumonia_web.api_client import ApiError, get_api

bp = Blueprint("results", __name__, url_prefix="/results")

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_TYPES = ("image/png", "image/jpeg")
THUMB_PX = 320


def _check_id(pid: str) -> str:
    if not _ID.match(pid):
        abort(404)
    return pid


@bp.get("/<pid>")
def page(pid: str):
    """The full result page; viewing it is audited."""
    prediction = get_api().get(_check_id(pid))
    audit.record("view", prediction_id=pid, filename=prediction.get("filename", ""))
    return render_template("results/page.html", p=prediction)


@bp.get("/<pid>/card")
def card(pid: str):
    """The result card partial. While not final it polls itself; once final it stops."""
    _check_id(pid)
    try:
        prediction = get_api().get(pid)
    except ApiError as exc:
        if exc.status < 500:
            return render_template("_partials/card.html", error=exc, filename=""), exc.status
        # The service is briefly away: keep polling and say so.
        prediction = {"id": pid, "status": "unknown"}  # no file name: it never rides in a URL
        return render_template(
            "_partials/card.html", p=prediction, retrying=exc.message, big=_big()
        )
    return render_template("_partials/card.html", p=prediction, big=_big())


def _big() -> bool:
    """The result page polls the large variant of the card."""
    return request.args.get("big") == "1"


@bp.get("/<pid>/image")
def image(pid: str):
    """The stored image through the UI (the API is never exposed); ``?thumb=1`` shrinks it."""
    data, media_type = get_api().image(_check_id(pid))
    if media_type.split(";")[0].strip() not in IMAGE_TYPES:
        abort(404)
    if not request.args.get("thumb"):  # the full image; thumbnails ride with audited views
        audit.record("view_image", prediction_id=pid)
    if request.args.get("thumb"):
        data, media_type = _thumbnail(data, media_type)
    resp = Response(data, mimetype=media_type)
    resp.headers["Cache-Control"] = "private, max-age=600"
    return resp


def _thumbnail(data: bytes, media_type: str) -> tuple[bytes, str]:
    """A small JPEG for cards and the worklist; the original if Pillow cannot read it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("L", (THUMB_PX, THUMB_PX))  # JPEG: decode at a reduced scale, fast
            img = img.convert("L")
            img.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
            return out.getvalue(), "image/jpeg"
    except (OSError, ValueError) as exc:
        current_app.logger.warning("thumbnail failed, sending the original: %s", exc)
        return data, media_type
