"""Every error as a page (or, for htmx and the upload script, a partial) that says what to do."""

from __future__ import annotations

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from pneumonia_web.api_client import ApiError
from pneumonia_web.auth import is_htmx

ADVICE = {
    400: "The request was not understood. Go back and try again.",
    403: "Your account may not open this page. Ask an administrator if you need access.",
    404: "There is nothing here. It may have been removed after the retention period.",
    405: "That action is not available here.",
    413: "This file is too large. Export a smaller image (JPEG or PNG) and try again.",
    429: "Too many attempts. Wait a minute, then try again.",
    500: "Something went wrong on our side. Try again; if it persists, call the IT service desk.",
}
CSRF_ADVICE = "This form has expired or came from another page. Reload the page and try again."


def _render(status: int, code: str, message: str):
    """The error partial for htmx/upload requests, the full error page otherwise."""
    if request.endpoint == "auth.login" and status == 429:
        from pneumonia_web.forms import LoginForm

        return render_template("auth/login.html", form=LoginForm(), error=message), 429
    if is_htmx():
        error = {"status": status, "code": code, "message": message}
        return render_template("_partials/card.html", error=error, filename=""), status
    return render_template("errors/error.html", status=status, code=code, message=message), status


def handle_http(exc: HTTPException):
    """Werkzeug's HTTP errors (404, 403, 413, 429...)."""
    status = exc.code or 500
    return _render(status, exc.name.lower().replace(" ", "_"), ADVICE.get(status, exc.description))


def handle_csrf(exc: CSRFError):
    """A missing or stale CSRF token."""
    return _render(400, "csrf", CSRF_ADVICE)


def handle_api(exc: ApiError):
    """The API refused or is down. A 401 from it means *our* token is wrong: a 502 for us."""
    if exc.status == 401:
        return _render(502, "api_auth", "The UI is misconfigured (API token). Call the IT desk.")
    return _render(exc.status, exc.code, exc.message)


def handle_unexpected(exc: Exception):
    """Anything else: logged with its traceback, shown as a plain 500."""
    from flask import current_app

    current_app.logger.exception("unhandled error on %s", request.path)
    return _render(500, "internal_error", ADVICE[500])


def init_app(app) -> None:
    """Register the handlers."""
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(ApiError, handle_api)
    if not app.config.get("TESTING"):
        app.register_error_handler(Exception, handle_unexpected)
