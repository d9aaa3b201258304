"""/v1/predictions/<id>/verdict: the reader's own read of a result (PUT to record, GET to read).

The calling service names the reader in ``X-Reader`` (the UI sends the logged-in clinician);
the body is ``{"choice": "agree" | "Pneumonia" | "Normal" | "not_assessable", "note": "..."}``.
Recording again replaces the verdict. See :mod:`jobs.verdicts` for what is stored and counted.
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from jobs.verdicts import VerdictError, decide

from .auth import require_token
from .errors import ApiError
from .jobstore import get_queue, verdicts

bp = Blueprint("verdicts", __name__, url_prefix="/v1")
bp.before_request(require_token)

_READER = re.compile(r"[^A-Za-z0-9._@-]")
_ID = re.compile(r"[0-9a-f]{32}")


def _prediction(pid: str):
    record = get_queue().get(pid) if _ID.fullmatch(pid) else None
    if record is None:
        raise ApiError(
            404, "not_found", "No prediction with that id (it may have expired): check the id."
        )
    return record


def reader() -> str:
    """Who reads, as the calling service says."""
    return _READER.sub("", request.headers.get("X-Reader", "api"))[:64] or "api"


@bp.put("/predictions/<pid>/verdict")
def put_verdict(pid: str):
    """Record (or replace) the reader's verdict on one finished prediction."""
    record = _prediction(pid)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_verdict",
            'Send JSON like {"choice": "agree", "note": "..."} with Content-Type application/json.',
        )
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise ApiError(400, "invalid_verdict", "'note' must be text.")
    try:
        verdict = decide(record, str(body.get("choice", "")), reader(), note)
    except VerdictError as exc:
        raise ApiError(409 if exc.code == "not_final" else 400, exc.code, exc.message) from None
    return jsonify(verdicts().record(verdict).to_dict())


@bp.get("/predictions/<pid>/verdict")
def get_verdict(pid: str):
    """The verdict, or 404 when no reader has recorded one yet."""
    _prediction(pid)
    found = verdicts().get(pid)
    if found is None:
        raise ApiError(404, "no_verdict", "No reader has recorded a verdict on this result yet.")
    return jsonify(found.to_dict())
