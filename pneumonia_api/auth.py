"""Service-token authentication for /v1: the UI (and other trusted services) hold the token."""

from __future__ import annotations

import hmac

from flask import current_app, request

from .errors import ApiError


def require_token() -> None:
    """``before_request`` hook: a constant-time comparison of the bearer token."""
    expected = current_app.config["API_TOKEN"]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        raise ApiError(
            401,
            "unauthorized",
            "Missing or wrong service token. Send 'Authorization: Bearer <API_TOKEN>'.",
        )
