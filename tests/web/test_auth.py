"""Logging in and out: sessions, CSRF, rate limits, disabled users, roles."""

from __future__ import annotations

import time

import pytest

from tests.web.conftest import TEST_PASSWORD, csrf_token, web_config

# Every page a logged-out visitor must not see (login and health are the only public ones).
PROTECTED = [
    "/",
    "/worklist",
    "/worklist?label=Pneumonia",
    "/model",
    "/results/abc123",
    "/results/abc123/card",
    "/results/abc123/image",
    "/admin/audit",
    "/admin/users",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_every_page_requires_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


def test_public_endpoints_need_no_login(client):
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/static/app.css").status_code == 200


def test_upload_requires_login(client):
    resp = client.post("/upload", data={})
    # CSRF is checked before anything else: a logged-out POST never reaches the view.
    assert resp.status_code in (302, 400)


def test_htmx_request_when_logged_out_gets_a_redirect_header(client):
    resp = client.get("/results/abc/card", headers={"HX-Request": "true"})
    assert resp.status_code == 401
    assert resp.headers["HX-Redirect"].startswith("/login")


def test_login_and_logout(client, auth, make_user):
    make_user()
    resp = auth.login()
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "alice" in page and "Drop X-ray images here" in page
    assert auth.logout().status_code == 302
    assert client.get("/").status_code == 302


def test_login_redirects_to_a_local_next_only(client, auth, make_user):
    make_user()
    assert auth.login(next_url="/worklist").headers["Location"] == "/worklist"
    auth.logout()
    assert auth.login(next_url="//evil.example/x").headers["Location"] == "/"


def test_session_cookie_is_secure_httponly_lax(client, auth, make_user):
    make_user()
    resp = auth.login()
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if "pneumonia_session=" in c)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # the idle timeout


def test_session_ends_after_idle_timeout(redis_url, make_user):
    from pneumonia_web import create_app

    app = create_app(web_config(redis_url, SESSION_IDLE_MINUTES=1 / 60))
    with app.app_context():
        from pneumonia_web import users

        users.create("bob", "clinician", TEST_PASSWORD)
    client = app.test_client()
    token = csrf_token(client)
    client.post("/login", data={"username": "bob", "password": TEST_PASSWORD, "csrf_token": token})
    assert client.get("/").status_code == 200
    time.sleep(2.1)  # idle for longer than the one-second timeout
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, auth, make_user):
    make_user()
    resp = auth.login(password="wrong password!")
    assert resp.status_code == 401
    assert "Wrong user name or password" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_answer(client, auth):
    resp = auth.login(username="nobody")
    assert resp.status_code == 401
    assert "Wrong user name or password" in resp.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, make_user):
    make_user()
    resp = client.post("/login", data={"username": "alice", "password": TEST_PASSWORD})
    assert resp.status_code == 400
    assert "form has expired" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "data"),
    [("/logout", {}), ("/upload", {}), ("/logout", {"csrf_token": "forged"})],
)
def test_csrf_is_enforced_on_every_form(client, auth, make_user, path, data):
    make_user()
    auth.login()
    resp = client.post(path, data=data)
    assert resp.status_code == 400
    assert client.get("/").status_code == 200  # still logged in: the forged logout failed


def test_logout_by_get_is_not_possible(client, auth, make_user):
    make_user()
    auth.login()
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_repeated_wrong_passwords_are_rate_limited(client, auth, make_user):
    make_user()
    for _ in range(3):  # LOGIN_RATE_LIMIT is "3 per minute" in tests
        assert auth.login(password="not the password").status_code == 401
    resp = auth.login()  # even the right password waits now
    assert resp.status_code == 429
    assert "Too many attempts" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_rate_limit_counts_per_user_across_addresses(app, make_user):
    make_user()
    for n in range(3):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = f"10.0.0.{n + 1}"
        token = csrf_token(c)
        resp = c.post("/login", data={"username": "alice", "password": "nope", "csrf_token": token})
        assert resp.status_code == 401
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.0.0.99"
    token = csrf_token(c)
    resp = c.post("/login", data={"username": "alice", "password": "x", "csrf_token": token})
    assert resp.status_code == 429


def test_successful_logins_are_not_counted(client, auth, make_user):
    make_user()
    for _ in range(5):
        assert auth.login().status_code == 302
        auth.logout()


def test_disabled_user_cannot_log_in(app, client, auth, make_user):
    from pneumonia_web import users

    make_user()
    with app.app_context():
        users.set_disabled("alice")
    assert auth.login().status_code == 401


def test_disabling_ends_open_sessions(app, client, auth, make_user):
    from pneumonia_web import users

    make_user()
    auth.login()
    assert client.get("/").status_code == 200
    with app.app_context():
        users.set_disabled("alice")
    assert client.get("/").status_code == 302


def test_password_reset_ends_open_sessions(app, client, auth, make_user):
    from pneumonia_web import users

    make_user()
    auth.login()
    with app.app_context():
        users.set_password("alice", "a brand new password")
    assert client.get("/").status_code == 302
    assert auth.login(password="a brand new password").status_code == 302


def test_admin_pages_are_for_admins_only(client, auth, make_user):
    make_user()
    auth.login()
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/users").status_code == 403
    assert "Audit log" not in client.get("/").get_data(as_text=True)


def test_audit_log_records_logins_for_admins(client, auth, make_user):
    make_user("root", role="admin")
    auth.login(username="root", password="wrong password")
    auth.login(username="root")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "action-login_failed" in page and 'action-login"' in page
    filtered = client.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert "action-login_failed" in filtered and 'action-login"' not in filtered
    assert "root" in client.get("/admin/users").get_data(as_text=True)
