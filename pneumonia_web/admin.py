"""Admin pages: the audit log and the list of accounts (accounts are managed by the CLI)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from pneumonia_web import audit, users
from pneumonia_web.auth import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/audit")
@admin_required
def audit_log():
    """Audit events newest first, filtered by user and action, paged by entry id."""
    user = request.args.get("user", "").strip().lower()[:64]
    action = request.args.get("action", "")
    action = action if action in audit.ACTIONS else ""
    before = request.args.get("before", "")
    before = before if before.replace("-", "").isdigit() else None
    page = audit.entries(
        current_app.config["AUDIT_PAGE_SIZE"], before=before, user=user, action=action
    )
    return render_template(
        "admin/audit.html", page=page, user=user, action=action, actions=audit.ACTIONS
    )


@bp.get("/users")
@admin_required
def user_list():
    """Accounts, roles and whether they are disabled."""
    return render_template("admin/users.html", users=users.all_users())
