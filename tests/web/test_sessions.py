"""Sessions end for real: logout ends every copy of them, and none outlives SESSION_MAX_HOURS."""

from __future__ import annotations

import time

import pytest

from tests.web.conftest import TEST_PASSWORD, AuthActions, csrf_token, web_config


@pytest.fixture
def app(redis_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url, SESSION_MAX_HOURS=12))


def cookie(client) -> str:
    return client.get_cookie("pneumonia_session").value


def test_logout_ends_a_copied_cookie_server_side(app, client, auth, make_user):
    make_user()
    auth.login()
    stolen = app.test_client()
    stolen.set_cookie("pneumonia_session", cookie(client))
    assert stolen.get("/").status_code == 200  # the copy works while the session lives
    auth.logout()
    assert stolen.get("/").status_code == 302  # and not after logout


def test_logout_ends_the_users_sessions_on_other_devices(app, client, auth, make_user):
    make_user()
    tablet = app.test_client()
    AuthActions(tablet).login()
    auth.login()
    auth.logout()
    assert tablet.get("/").status_code == 302


def test_a_session_ends_after_its_absolute_lifetime_however_active(app, client, auth, make_user):
    make_user()
    auth.login()
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:  # the clock moves 13 hours on
        session["login_at"] = int(time.time()) - 13 * 3600
    assert client.get("/").status_code == 302
    assert client.get("/").status_code == 302  # and it stays ended


def test_a_session_without_a_login_time_is_not_accepted(app, client, auth, make_user):
    make_user()
    auth.login()
    with client.session_transaction() as session:
        session.pop("login_at")
    assert client.get("/").status_code == 302


def test_login_issues_a_new_session_the_pre_login_csrf_token_dies(client, auth, make_user):
    """Session fixation: what was in the session before login does not survive it."""
    make_user()
    planted = csrf_token(client)  # issued to the anonymous session
    resp = client.post(
        "/login", data={"username": "alice", "password": TEST_PASSWORD, "csrf_token": planted}
    )
    assert resp.status_code == 302
    assert client.post("/logout", data={"csrf_token": planted}).status_code == 400
    assert client.get("/").status_code == 200  # still logged in: the stale token did nothing
