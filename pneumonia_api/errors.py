"""Every API error is JSON ``{"error": {"code", "message"}}`` whose message says what to do.

One helper (:func:`error`) and one exception (:class:`ApiError`) are used by every route, and
the handlers below turn anything else (404s, 413s, Redis outages, bugs) into the same shape,
so a client never sees an HTML page or a traceback.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable code and a helpful message."""

    def __init__(self, status: int, code: str, message: str, retry_after: int = 5):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def error(status: int, code: str, message: str, retry_after: int = 5):
    """The one JSON error response (a 503 says when to come back)."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pneumonia-api"'
    if status == 503:
        response.headers["Retry-After"] = str(retry_after)
    return response


def out_of_memory(exc: Exception) -> bool:
    """Redis refused a write because it reached maxmemory (policy noeviction)."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or "maxmemory" in str(exc)


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error(exc.status, exc.code, exc.message, exc.retry_after)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc):
        limit = app.config["MAX_UPLOAD_BYTES"] // (1024 * 1024)
        return error(
            413,
            "payload_too_large",
            f"The upload is larger than {limit} MiB. Send fewer or smaller files per request.",
        )

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc):
        if out_of_memory(exc):  # maxmemory reached: a full store, not a bug (never a 500)
            log.warning("redis refused a write: out of memory (maxmemory)")
            return error(
                503,
                "store_full",
                "The job store is full right now; nothing was saved. Retry in a minute.",
                retry_after=60,
            )
        log.warning("redis unavailable: %s", type(exc).__name__)
        return error(
            503,
            "service_unavailable",
            "The job store is unavailable right now; nothing was saved. Retry in a few seconds.",
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return error(
            500,
            "internal_error",
            "Something went wrong on our side; the request was not processed. "
            "Retry, and contact support if it persists.",
        )
