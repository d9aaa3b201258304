"""The reader's verdict on a result: record it (audited), show it on the result page.

The verdict is job data, kept by the API beside the prediction (``PUT
/v1/predictions/<id>/verdict``); the UI only forwards the logged-in clinician's read and writes
the audit entry. The form is a partial (``_partials/verdict.html``) that htmx swaps in place;
without JavaScript the post redirects back to the result page.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from pneumonia_web import audit
from pneumonia_web.api_client import ApiError, get_api
from pneumonia_web.auth import is_htmx
from pneumonia_web.results import _ID

bp = Blueprint("verdict", __name__, url_prefix="/results")

NOTE_MAX = 500
CHOICE_TEXT = {
    "agree": "Agree with the model",
    "Pneumonia": "Pneumonia",
    "Normal": "Normal",
    "not_assessable": "Not assessable",
}


@bp.post("/<pid>/verdict")
def record(pid: str):
    """Forward the read to the API, audit it, answer with the updated verdict panel."""
    if not _ID.match(pid):
        abort(404)
    choice = request.form.get("choice", "")
    note = request.form.get("note", "")[:NOTE_MAX]
    api = get_api()
    error, status = None, 200
    if choice not in CHOICE_TEXT:
        error, status = "Choose your read first: agree, Pneumonia, Normal or not assessable.", 400
    else:
        try:
            api.record_verdict(pid, choice, note, current_user.name)
            audit.record("verdict", prediction_id=pid, detail=choice)
        except ApiError as exc:
            if exc.status >= 500:
                raise
            error, status = exc.message, exc.status
    if not is_htmx():
        flash(error or "Your read is recorded.", "error" if error else "info")
        return redirect(url_for("results.page", pid=pid) + "#verdict")
    prediction = api.get(pid)
    return render_template("_partials/verdict.html", p=prediction, error=error), status
