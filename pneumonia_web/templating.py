"""Template filters, globals and the headers every page gets."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, request
from flask_login import current_user

from pneumonia_web.forms import CsrfOnlyForm
from pneumonia_web.wording import reading

STATUS_TEXT = {
    "queued": "Queued",
    "processing": "Analysing",
    "done": "Done",
    "failed": "Failed",
    "not_assessable": "Not assessable",
    "unknown": "Reconnecting",
}


def when(ms: int | str | datetime | None) -> str:
    """Milliseconds since the epoch (or an ISO-8601 instant, as promotion records carry) as
    ``2026-11-23 14:05:09 UTC`` (DISPLAY_TIMEZONE)."""
    if not ms:
        return "—"
    if isinstance(ms, str) and not ms.isdigit():
        try:
            ms = datetime.fromisoformat(ms.replace("Z", "+00:00"))
        except ValueError:
            return ms  # shown as written rather than not at all
        if ms.tzinfo is None:
            ms = ms.replace(tzinfo=UTC)
    moment = ms if isinstance(ms, datetime) else datetime.fromtimestamp(int(ms) / 1000, UTC)
    tz = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "UTC"))
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def percent(value: float | None, digits: int = 1) -> str:
    """0.8734 -> ``87.3 %``."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.{digits}f} %"


def _globals() -> dict:
    return {
        "poll_ms": current_app.config["POLL_INTERVAL_MS"],
        "max_upload_bytes": current_app.config["MAX_UPLOAD_BYTES"],
        "allowed_extensions": current_app.config["ALLOWED_EXTENSIONS"],
        # formdata=None: never parse the request body here (an error page may be answering a
        # body that was too large to parse).
        "logout_form": CsrfOnlyForm(formdata=None) if current_user.is_authenticated else None,
        "status_text": STATUS_TEXT,
        "reading": reading,
    }


def _headers(response):
    """Pages carry patient data: never cache them. Static files and images say otherwise."""
    if request.endpoint != "static" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def init_app(app) -> None:
    """Register filters, globals and the response hook."""
    app.config.setdefault("DISPLAY_TIMEZONE", "UTC")
    app.add_template_filter(when)
    app.add_template_filter(percent)
    app.context_processor(_globals)
    app.after_request(_headers)
