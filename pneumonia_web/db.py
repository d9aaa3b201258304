"""The UI's own Redis (users, login rate limits, audit log) and every key it holds.

This is *not* the job data: that lives behind the API. ``WEB_REDIS_URL`` names a separate
database or instance, local to the UI host in production. Every key is spelled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``pneumonia-web`` by default)."""

    prefix: str = "pneumonia-web"

    @property
    def users(self) -> str:
        """Set of all user names (listing without KEYS)."""
        return f"{self.prefix}:users"

    def user(self, name: str) -> str:
        """Hash: password_hash, role, disabled, epoch, created_at."""
        return f"{self.prefix}:user:{name}"

    @property
    def audit(self) -> str:
        """Stream of audit events, capped at AUDIT_MAXLEN."""
        return f"{self.prefix}:audit"

    @property
    def limiter(self) -> str:
        """Prefix of Flask-Limiter's counters (login attempts)."""
        return f"{self.prefix}:limiter"


def init_app(app) -> None:
    """Attach the client and the key names to the app (``app.extensions['web_redis']``)."""
    app.extensions["web_redis"] = redis.Redis.from_url(
        app.config["WEB_REDIS_URL"], decode_responses=True, socket_timeout=5
    )
    app.extensions["web_keys"] = Keys(app.config["WEB_KEY_PREFIX"])


def get_redis() -> redis.Redis:
    """The UI's Redis client for the current app."""
    return current_app.extensions["web_redis"]


def keys() -> Keys:
    """The key names for the current app."""
    return current_app.extensions["web_keys"]
