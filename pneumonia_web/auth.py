"""Log in and out; every other page requires a logged-in user (checked app-wide)."""

from __future__ import annotations

import functools
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from pneumonia_web import audit, metrics, users
from pneumonia_web.extensions import limiter
from pneumonia_web.forms import LoginForm

bp = Blueprint("auth", __name__)

# Endpoints reachable without logging in. Everything else requires a session.
# /metrics is scraped by Prometheus on the UI port from the monitoring host; nginx answers 404
# for it from outside.
PUBLIC_ENDPOINTS = {"auth.login", "health.healthz", "health.readyz", "metrics", "static"}


def init_app(app, login_manager) -> None:
    """Wire Flask-Login and the app-wide login requirement."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "basic"
    login_manager.user_loader(users.load)
    app.before_request(_require_login)


def is_htmx() -> bool:
    """True for requests made by htmx (or our upload script, which says it is)."""
    return request.headers.get("HX-Request") == "true"


def _expired() -> bool:
    """The session is older than SESSION_MAX_HOURS since its login, however active it was.

    The login time is in the signed session cookie, so a client cannot move it.
    """
    started = session.get("login_at")
    max_age = current_app.config["SESSION_MAX_HOURS"] * 3600
    return not isinstance(started, int) or time.time() - started > max_age


def _require_login():
    """Deny every non-public endpoint to anonymous users (secure by default)."""
    if current_user.is_authenticated and _expired():
        logout_user()
        session.clear()
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.endpoint is None:
        return None  # a 404 or 405: let the error handler answer
    login_url = url_for("auth.login", next=_safe_next(request.full_path))
    if is_htmx():
        resp = make_response("Your session has ended: log in again.", 401)
        resp.headers["HX-Redirect"] = login_url
        return resp
    return redirect(login_url)


def admin_required(view):
    """Only admins may call ``view`` (403 for other logged-in users)."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _safe_next(target: str | None) -> str | None:
    """Only local paths may be redirected to after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target.rstrip("?") or None


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _failed(response) -> bool:
    """Only failed attempts count against the login limits."""
    return response.status_code == 401


def _username_key() -> str:
    return "user:" + (request.form.get("username") or "").strip().lower()[:64]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed)
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed, key_func=_username_key)
def login():
    """Show the form; on POST check the password and start an idle-limited session."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("upload.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.username.data, form.password.data)
        if user is not None:
            session.clear()
            session.permanent = True  # expires after SESSION_IDLE_MINUTES without a request
            session["login_at"] = int(time.time())  # and SESSION_MAX_HOURS after this
            login_user(user)
            audit.record("login")
            return redirect(_safe_next(request.args.get("next")) or url_for("upload.index"))
        audit.record("login_failed", user=(form.username.data or "")[:64].lower())
        metrics.login_failed()
        flash("Wrong user name or password, or the account is disabled.", "error")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" else 400


@bp.post("/logout")
def logout():
    """End every session of this user, server-side (POST with a CSRF token, so no page can
    log a user out): a copy of the cookie, or the user's other devices, are logged out too."""
    audit.record("logout")
    if current_user.is_authenticated:
        users.end_sessions(current_user.name)
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
