"""The audit log: who logged in, uploaded and viewed which result, when (a Redis stream).

Entries are appended with XADD (capped at AUDIT_MAXLEN) and read newest first with XREVRANGE,
so the log needs no other index. Admins read it at /admin/audit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, has_request_context, request
from flask_login import current_user

from pneumonia_web.db import get_redis, keys

ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "upload",
    "upload_rejected",
    "view",
    "view_image",
    "verdict",
)


def record(
    action: str, prediction_id: str = "", filename: str = "", user: str = "", detail: str = ""
) -> str:
    """Append one event; the user defaults to the logged-in one. Returns the entry id.

    ``detail`` says what was done where the action alone does not (a verdict's choice).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if not user and current_user and current_user.is_authenticated:
        user = current_user.name
    fields = {
        "action": action,
        "user": user or "-",
        "prediction_id": prediction_id,
        "filename": filename,
        "ip": (request.remote_addr or "") if has_request_context() else "",
    }
    if detail:
        fields["detail"] = detail
    return get_redis().xadd(
        keys().audit, fields, maxlen=current_app.config["AUDIT_MAXLEN"], approximate=True
    )


def entries(count: int, before: str | None = None, user: str = "", action: str = "") -> dict:
    """A page of events newest first, optionally filtered: ``{"items": [...], "next": id}``.

    Filtering scans at most ten pages' worth of entries per call so a rare filter cannot make
    one request read the whole stream; ``next`` continues where the scan stopped.
    """
    r, stream = get_redis(), keys().audit
    top = f"({before}" if before else "+"
    items: list[dict] = []
    scanned_to = None
    for _ in range(10):
        batch = r.xrevrange(stream, max=top, min="-", count=count)
        if not batch:
            scanned_to = None
            break
        for entry_id, fields in batch:
            scanned_to = entry_id
            if (user and fields.get("user") != user) or (action and fields.get("action") != action):
                continue
            items.append(_item(entry_id, fields))
            if len(items) == count:
                return {"items": items, "next": entry_id}
        if len(batch) < count:
            scanned_to = None
            break
        top = f"({scanned_to}"
    return {"items": items, "next": scanned_to}


def _item(entry_id: str, fields: dict) -> dict:
    ms = int(entry_id.split("-")[0])
    return {
        "id": entry_id,
        "time": datetime.fromtimestamp(ms / 1000, UTC),
        **fields,
    }
