"""/v1/worklist: a day's (or any window's) results triaged, most suspicious first.

``GET /v1/worklist?since=<ms>&until=<ms>&sort=suspicion|newest&status=&label=&uploader=
&read=unread|read&second_look=1&offset=0&limit=20`` answers ``{"items", "total",
"next_offset", "unread", "truncated"}``. Each item is the prediction with its reader's
``verdict`` (or null) and ``second_look``: true when its probability lies within
SECOND_LOOK_MARGIN of the threshold, where a model's call is least sure and a reader's matters
most. ``unread`` counts the window's results that have a label and no verdict yet, whatever the
other filters. ``GET /v1/worklist/unread?since=`` answers only that count (the UI's navigation).

Sorting by probability needs the whole window, so the window is read in full, up to
WORKLIST_SCAN_MAX results (``truncated`` says when more were left out: narrow the dates).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from jobs.record import LABELS, JobStatus, Prediction, now_ms

from .auth import require_token
from .errors import ApiError
from .jobstore import get_queue, verdicts
from .predictions import _int_arg, _public

bp = Blueprint("worklist", __name__, url_prefix="/v1")
bp.before_request(require_token)

SORTS = ("suspicion", "newest")
STATUSES = tuple(s.value for s in JobStatus)


def _window() -> tuple[int, int]:
    """``since``/``until`` in ms; the default window is as long as images are kept."""
    now = now_ms()
    default_since = now - current_app.config["IMAGE_TTL_SECONDS"] * 1000
    since = _int_arg("since", default_since, 0, 2**62)
    until = _int_arg("until", now, 0, 2**62)
    return since, until


def _scan(since: int, until: int) -> tuple[list[Prediction], bool]:
    """Every record created in [since, until], newest first, and whether the cap cut it."""
    cap = current_app.config["WORKLIST_SCAN_MAX"]
    queue, out, cursor = get_queue(), [], until + 1
    while len(out) < cap:
        page = queue.history(limit=200, before=cursor)
        kept = [p for p in page if p.created_at >= since]
        out += kept
        if len(kept) < len(page) or len(page) < 200:
            return out[:cap], False
        cursor = page[-1].created_at
    return out[:cap], True


def _unread(p: Prediction, has_verdict: bool) -> bool:
    return p.label in LABELS and not has_verdict


def _second_look(p: Prediction) -> bool:
    if p.probability is None or p.label not in LABELS:
        return False
    threshold = p.threshold if p.threshold is not None else 0.5
    return abs(p.probability - threshold) <= current_app.config["SECOND_LOOK_MARGIN"]


def _suspicion(p: Prediction) -> tuple:
    """Scored results by probability, highest first; then the rest, newest first."""
    scored = p.probability is not None and p.label in LABELS
    return (0, -p.probability, -p.created_at) if scored else (1, 0.0, -p.created_at)


def _filters() -> dict:
    args = request.args
    f = {k: args.get(k) or "" for k in ("status", "label", "uploader", "read", "sort")}
    f["sort"] = f["sort"] or "suspicion"
    checks = {"sort": SORTS, "status": STATUSES, "label": LABELS, "read": ("unread", "read")}
    for name, allowed in checks.items():
        if f[name] and f[name] not in allowed:
            message = f"'{name}' must be one of {', '.join(allowed)}."
            raise ApiError(400, "invalid_parameter", message)
    f["second_look"] = args.get("second_look") in ("1", "true")
    return f


def _keep(p: Prediction, read: bool, f: dict) -> bool:
    return (
        (not f["status"] or p.status == f["status"])
        and (not f["label"] or p.label == f["label"])
        and (not f["uploader"] or p.uploader == f["uploader"])
        and (f["read"] != "read" or read)
        and (f["read"] != "unread" or _unread(p, read))
        and (not f["second_look"] or _second_look(p))
    )


@bp.get("/worklist")
def worklist():
    """The window's results, filtered, sorted and paged by offset."""
    f = _filters()
    limit = _int_arg("limit", 20, 1, current_app.config["HISTORY_MAX_LIMIT"])
    offset = _int_arg("offset", 0, 0, 2**31)
    records, truncated = _scan(*_window())
    found = verdicts().many([p.id for p in records])
    unread = sum(_unread(p, p.id in found) for p in records)
    matched = [p for p in records if _keep(p, p.id in found, f)]
    if f["sort"] == "suspicion":
        matched.sort(key=_suspicion)
    page = matched[offset : offset + limit]
    items = [
        {
            **_public(p),
            "verdict": found[p.id].to_dict() if p.id in found else None,
            "second_look": _second_look(p),
        }
        for p in page
    ]
    more = offset + limit < len(matched)
    return jsonify(
        {
            "items": items,
            "total": len(matched),
            "next_offset": offset + limit if more else None,
            "unread": unread,
            "truncated": truncated,
        }
    )


@bp.get("/worklist/unread")
def unread_count():
    """How many results of the window have a label and no reader's verdict yet."""
    records, truncated = _scan(*_window())
    found = verdicts().many([p.id for p in records])
    return jsonify(
        {"unread": sum(_unread(p, p.id in found) for p in records), "truncated": truncated}
    )
