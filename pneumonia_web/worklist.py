"""The worklist: every result newest first, paginated, filtered by label and uploader."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from jobs.record import LABELS
from pneumonia_web import users
from pneumonia_web.api_client import get_api
from pneumonia_web.auth import is_htmx

bp = Blueprint("worklist", __name__)


def _filters() -> dict:
    """The query's filters, with anything invalid dropped rather than sent on."""
    label = request.args.get("label", "")
    uploader = request.args.get("uploader", "").strip().lower()
    try:
        uploader = users.check_name(uploader) if uploader else ""
    except users.UserError:
        uploader = ""
    before = request.args.get("before", "")
    return {
        "label": label if label in LABELS else "",
        "uploader": uploader,
        "before": int(before) if before.isdigit() else None,
    }


@bp.get("/worklist")
def index():
    """The table (a partial for htmx: filters and paging swap only the table)."""
    f = _filters()
    page = get_api().list(
        current_app.config["WORKLIST_PAGE_SIZE"],
        before=f["before"],
        label=f["label"],
        uploader=f["uploader"],
    )
    context = {"page": page, "filters": f, "labels": LABELS}
    if is_htmx() and request.headers.get("HX-Target") == "worklist-table":
        return render_template("_partials/worklist_table.html", **context)
    context["uploaders"] = [u.name for u in users.all_users()]
    return render_template("worklist/index.html", **context)
