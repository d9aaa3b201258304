"""The home page: drop X-rays, one request per file, each answered with its result card."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from pneumonia_web import audit
from pneumonia_web.api_client import ApiError, get_api
from pneumonia_web.auth import is_htmx
from pneumonia_web.forms import CsrfOnlyForm

bp = Blueprint("upload", __name__)

NO_FILE = "Choose or drop a chest X-ray (PNG, JPEG or DICOM) first."


@bp.get("/")
def index():
    """The drop zone, with a plain file picker that works without JavaScript."""
    return render_template("upload/index.html", form=CsrfOnlyForm(), cards=[])


@bp.post("/upload")
def upload():
    """Forward each file to the API; answer with one card per file (a partial for htmx)."""
    files = [f for f in request.files.getlist("file") if f and f.filename]
    if not files:
        cards = [{"filename": "", "error": ApiError(400, "no_file", NO_FILE)}]
    else:
        key = request.headers.get("Idempotency-Key", "")
        cards = [_submit(f, f"{key}.{i}" if key else None) for i, f in enumerate(files)]
    status = next((c["error"].status for c in cards if "error" in c), 202)
    if is_htmx():
        return render_template("_partials/cards.html", cards=cards), status
    return render_template("upload/index.html", form=CsrfOnlyForm(), cards=cards), status


def _submit(storage, idempotency_key: str | None = None) -> dict:
    """Send one file to the API and audit it; an API refusal becomes an error card.

    With STORE_FILENAMES off the name goes no further than this request: the API gets a
    neutral one and the audit log none.
    """
    filename = storage.filename[-255:]
    stored_name = filename if current_app.config["STORE_FILENAMES"] else ""
    try:
        prediction = get_api().submit(
            stored_name or "upload",
            storage.stream,
            storage.mimetype,
            current_user.name,
            idempotency_key,
        )
    except ApiError as exc:
        # File names can carry patient names: the log gets only the reason.
        current_app.logger.info("upload by %s refused: %s", current_user.name, exc.code)
        audit.record("upload_rejected", filename=stored_name)
        return {"filename": filename, "error": exc}
    audit.record("upload", prediction_id=prediction["id"], filename=stored_name)
    try:  # the 202 answer is brief; the card shows the whole record (uploader, time)
        prediction = get_api().get(prediction["id"])
    except ApiError as exc:
        current_app.logger.warning("could not read back %s: %s", prediction["id"], exc)
    return {"filename": filename, "prediction": prediction}
