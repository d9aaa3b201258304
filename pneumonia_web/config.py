"""Settings of the web UI from the environment, with local defaults (microblog's ``Config``).

Production (``APP_ENV=production``) refuses to start without real secrets: see
:func:`check_production`.
"""

from __future__ import annotations

import os
from datetime import timedelta


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Every setting of the web UI, read from the environment when the app is created.

    Read at construction, not at import, like the API's Config and the worker's settings:
    a test or a process that sets the environment first gets what it set.
    """

    def __init__(self) -> None:
        self.APP_ENV = os.environ.get("APP_ENV", "development")
        self.SECRET_KEY = os.environ.get("SECRET_KEY", "")
        self.API_URL = os.environ.get("API_URL", "http://127.0.0.1:5000").rstrip("/")
        self.API_TOKEN = os.environ.get("API_TOKEN", "")
        self.API_TIMEOUT_SECONDS = float(os.environ.get("API_TIMEOUT_SECONDS", "10"))
        self.WEB_REDIS_URL = os.environ.get("WEB_REDIS_URL", "redis://127.0.0.1:6379/1")
        self.WEB_KEY_PREFIX = os.environ.get("WEB_KEY_PREFIX", "pneumonia-web")

        # Sessions: a signed cookie, Secure/HttpOnly/SameSite=Lax, that dies after this much
        # inactivity (the signature carries the time; every request renews it).
        self.SESSION_IDLE_MINUTES = _int("SESSION_IDLE_MINUTES", 30)
        self.SESSION_COOKIE_NAME = "pneumonia_session"
        self.SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "1") != "0"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_REFRESH_EACH_REQUEST = True
        # However active, a session ends this long after its login (a shift plus some).
        self.SESSION_MAX_HOURS = _int("SESSION_MAX_HOURS", 12)
        # No "remember me": shared ward tablets.
        self.REMEMBER_COOKIE_DURATION = timedelta(seconds=0)

        # CSRF tokens live as long as the session that holds them.
        self.WTF_CSRF_TIME_LIMIT = None

        self.LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "5 per minute")
        self.PASSWORD_HASH = os.environ.get("PASSWORD_HASH", "scrypt")
        self.PASSWORD_MIN_LENGTH = _int("PASSWORD_MIN_LENGTH", 10)

        # Uploads: one file per request from the browser; the API enforces the same limit.
        self.MAX_UPLOAD_BYTES = _int("MAX_UPLOAD_BYTES", 32 * 1024 * 1024)
        self.ALLOWED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
        self.POLL_INTERVAL_MS = _int("POLL_INTERVAL_MS", 1000)
        self.WORKLIST_PAGE_SIZE = _int("WORKLIST_PAGE_SIZE", 20)
        self.AUDIT_PAGE_SIZE = _int("AUDIT_PAGE_SIZE", 50)
        self.AUDIT_MAXLEN = _int("AUDIT_MAXLEN", 1_000_000)

        # File names can carry patients: 0 keeps them out of the API's records and the audit
        # log (the same setting as the API's).
        self.STORE_FILENAMES = os.environ.get("STORE_FILENAMES", "1") != "0"

        # How many proxies (nginx) stand in front and set X-Forwarded-*; 0 when reached directly.
        self.PROXY_COUNT = _int("PROXY_COUNT", 1)


class ConfigError(RuntimeError):
    """The app was asked to start with settings that are unsafe or incomplete."""


def check_production(config) -> None:
    """Refuse to start in production with missing or placeholder secrets."""
    if config.get("APP_ENV") != "production":
        return
    for name in ("SECRET_KEY", "API_TOKEN"):
        value = config.get(name) or ""
        if len(value) < 16 or value.startswith("dev-"):
            raise ConfigError(f"{name} must be set to a real secret (16+ characters) in production")
    if not config.get("SESSION_COOKIE_SECURE"):
        raise ConfigError("SESSION_COOKIE_SECURE cannot be off in production")


def fill_dev_defaults(config) -> None:
    """Outside production, missing secrets get obvious development values."""
    if config.get("APP_ENV") == "production":
        return
    config.setdefault("SECRET_KEY", "")
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = "dev-insecure-secret-key"  # noqa: S105 - development only
    if not config.get("API_TOKEN"):
        config["API_TOKEN"] = "dev-token"  # noqa: S105 - development only
