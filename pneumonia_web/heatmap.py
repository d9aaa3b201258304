"""Where the model looked: the Grad-CAM panel of a result and its PNG layer, through the API.

The browser never reaches the API: it polls ``/results/<id>/heatmap`` (a partial, like the
result cards) until the worker has drawn the map, then loads ``/results/<id>/heatmap.png``.
The first poll is what asks for the map, so it is computed when someone opens the result,
not for every upload (README: cost). Opacity and on/off are the browser's (static/heatmap.js).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request

from pneumonia_web.api_client import ApiError, get_api
from pneumonia_web.results import _check_id

bp = Blueprint("heatmap", __name__, url_prefix="/results")


@bp.get("/<pid>/heatmap")
def panel(pid: str):
    """The heatmap panel: polls itself while the map is being drawn, then shows the controls."""
    mode = "report" if request.args.get("mode") == "report" else "page"
    state, message = "ready", ""
    try:
        if get_api().heatmap(_check_id(pid)) is None:
            state = "computing"
    except ApiError as exc:
        state = {409: "waiting", 404: "unavailable", 422: "unavailable"}.get(exc.status, "retrying")
        message = exc.message
    return render_template(
        "_partials/heatmap.html", pid=pid, state=state, message=message, mode=mode
    )


@bp.get("/<pid>/heatmap.png")
def png(pid: str):
    """The heatmap layer itself (a transparent PNG the size of the X-ray)."""
    try:
        data = get_api().heatmap(_check_id(pid))
    except ApiError as exc:
        abort(404 if exc.status < 500 else 503)
    if data is None:
        abort(404)
    resp = Response(data, mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=600"
    return resp
