"""The worklist: results triaged, most suspicious first, with the readers' verdicts.

The API sorts and filters (``GET /v1/worklist``); this view turns the page's filters into its
parameters, and puts the number of unread results (a label and no verdict yet) in the
navigation of every page. Keyboard: j/k or the arrow keys move, Enter opens (worklist.js).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from jobs.record import LABELS, JobStatus
from pneumonia_web import users
from pneumonia_web.api_client import ApiError, get_api
from pneumonia_web.auth import is_htmx

bp = Blueprint("worklist", __name__)

SORTS = {"suspicion": "Most suspicious first", "newest": "Newest first"}
SHOW = {"": "Everything", "unread": "Unread", "second_look": "Second look", "read": "Read"}
STATUSES = tuple(s.value for s in JobStatus)


def _day_window(day: str) -> tuple[int | None, int | None]:
    """A calendar day (YYYY-MM-DD) in DISPLAY_TIMEZONE as [since, until] in ms."""
    try:
        start = datetime.combine(date.fromisoformat(day), time(), ZoneInfo(
            current_app.config.get("DISPLAY_TIMEZONE", "UTC")))  # fmt: skip
    except ValueError:
        return None, None
    end = start + timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1


def _filters() -> dict:
    """The query's filters, with anything invalid dropped rather than sent on."""
    args = request.args
    uploader = args.get("uploader", "").strip().lower()
    try:
        uploader = users.check_name(uploader) if uploader else ""
    except users.UserError:
        uploader = ""
    day = args.get("day", "")
    offset = args.get("offset", "")
    f = {
        "sort": args.get("sort", "") if args.get("sort") in SORTS else "suspicion",
        "show": args.get("show", "") if args.get("show") in SHOW else "",
        "status": args.get("status", "") if args.get("status") in STATUSES else "",
        "label": args.get("label", "") if args.get("label") in LABELS else "",
        "uploader": uploader,
        "day": day if _day_window(day)[0] is not None else "",
        "offset": int(offset) if offset.isdigit() else 0,
    }
    return f


def _query(f: dict) -> dict:
    """The API's parameters for these filters."""
    since, until = _day_window(f["day"]) if f["day"] else (None, None)
    return {
        "limit": current_app.config["WORKLIST_PAGE_SIZE"],
        "offset": f["offset"],
        "sort": f["sort"],
        "status": f["status"],
        "label": f["label"],
        "uploader": f["uploader"],
        "read": f["show"] if f["show"] in ("read", "unread") else "",
        "second_look": 1 if f["show"] == "second_look" else None,
        "since": since,
        "until": until,
    }


@bp.get("/worklist")
def index():
    """The table (a partial for htmx: filters and paging swap only the table)."""
    f = _filters()
    page = get_api().worklist(**_query(f))
    context = {"page": page, "filters": f, "labels": LABELS, "sorts": SORTS, "show": SHOW,
               "statuses": STATUSES}  # fmt: skip
    if is_htmx() and request.headers.get("HX-Target") == "worklist-table":
        return render_template("_partials/worklist_table.html", **context)
    context["uploaders"] = [u.name for u in users.all_users()]
    return render_template("worklist/index.html", **context)


@bp.app_context_processor
def unread_count() -> dict:
    """Unread results for the navigation of full pages; nothing when the API cannot say."""
    if not current_user.is_authenticated or is_htmx():
        return {}
    try:
        return {"unread_count": get_api().unread()}
    except ApiError:
        return {"unread_count": None}
