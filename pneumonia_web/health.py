"""Liveness and readiness, without login (load balancers and monitoring call them)."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify

from pneumonia_web.api_client import get_api
from pneumonia_web.db import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the UI's Redis answers and the API says it is ready."""
    checks = {}
    try:
        checks["web_redis"] = bool(get_redis().ping())
    except redis.RedisError:
        checks["web_redis"] = False
    checks["api"], api_body = get_api().ready()
    ok = all(checks.values())
    return jsonify(status="ready" if ok else "not_ready", checks=checks, api=api_body), (
        200 if ok else 503
    )
