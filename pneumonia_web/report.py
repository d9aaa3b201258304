"""A printable report of one result: the X-ray, where the model looked, the figures, the
reader's verdict (or a slot to write it in), the model version and the disclaimer.

An HTML page with a print stylesheet (``@media print`` in static/app.css) rather than a PDF:
the browser prints it to paper or PDF without another rendering engine on the server, and
it shows the same data as the result page. Opening it is audited as a view.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template

from pneumonia_web import audit
from pneumonia_web.api_client import get_api
from pneumonia_web.results import _check_id

bp = Blueprint("report", __name__, url_prefix="/results")


@bp.get("/<pid>/report")
def page(pid: str):
    prediction = get_api().get(_check_id(pid))
    audit.record("view", prediction_id=pid, filename=prediction.get("filename", ""))
    return render_template("results/report.html", p=prediction, printed_at=datetime.now(UTC))
