"""Pages, partials and errors that need no API (the API is down here: a closed port)."""

from __future__ import annotations

import io

import pytest

from tests.web.conftest import csrf_token


@pytest.fixture
def logged_in(client, auth, make_user):
    make_user()
    auth.login()
    return client


def test_upload_page_has_drop_zone_picker_and_local_htmx(logged_in):
    html = logged_in.get("/").get_data(as_text=True)
    assert 'id="dropzone"' in html
    assert 'type="file"' in html and "multiple" in html
    assert '<label for="file-input"' in html  # the picker is labelled (keyboard reachable)
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "http://" not in html.split("<body>")[0] and "https://" not in html  # no CDN
    assert "<script>" not in html  # no inline script: the CSP allows only our files


def test_vendored_htmx_is_served(client):
    resp = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert resp.status_code == 200 and b"htmx" in resp.data[:2000]
    resp.close()


def test_htmx_request_gets_a_partial_not_a_page(logged_in):
    page = logged_in.get("/no-such-page")
    partial = logged_in.get("/no-such-page", headers={"HX-Request": "true"})
    assert b"<html" in page.data
    assert b"<html" not in partial.data and b"data-card" in partial.data


def test_card_keeps_polling_while_the_api_is_away(logged_in):
    resp = logged_in.get("/results/abc123/card", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert 'hx-trigger="every' in html and "Still trying" in html


def test_upload_when_the_api_is_down_says_what_to_do(logged_in):
    token = csrf_token(logged_in, "/")
    resp = logged_in.post(
        "/upload",
        data={"csrf_token": token, "file": (io.BytesIO(b"\x89PNG fake"), "chest.png")},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 503
    html = resp.get_data(as_text=True)
    assert "<html" not in html and "chest.png" in html
    assert "Wait a minute and try again" in html


def test_upload_without_a_file_asks_for_one(logged_in):
    token = csrf_token(logged_in, "/")
    resp = logged_in.post("/upload", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert "Choose or drop a chest X-ray" in resp.get_data(as_text=True)


def test_upload_over_the_limit_is_refused_before_the_api(redis_url, make_user):
    from pneumonia_web import create_app
    from tests.web.conftest import AuthActions, web_config

    app = create_app(web_config(redis_url, MAX_UPLOAD_BYTES=1000))
    client = app.test_client()
    with app.app_context():
        from pneumonia_web import users

        users.create("carol", "clinician", "correct horse battery")
    AuthActions(client).login("carol")
    token = csrf_token(client, "/")
    big = io.BytesIO(b"x" * (2 * 1024 * 1024))
    resp = client.post(
        "/upload",
        data={"csrf_token": token, "file": (big, "huge.png")},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 413
    assert "too large" in resp.get_data(as_text=True)


def test_pages_that_need_the_api_explain_an_outage(logged_in):
    resp = logged_in.get("/worklist")
    assert resp.status_code == 503
    assert "not reachable right now" in resp.get_data(as_text=True)


def test_unknown_page_is_a_404_page(logged_in):
    resp = logged_in.get("/nope")
    assert resp.status_code == 404 and b"There is nothing here" in resp.data


def test_bad_result_ids_never_reach_the_api(logged_in):
    assert logged_in.get("/results/..%2F..%2Fv1%2Fmodel").status_code == 404


def test_pages_are_not_cached(logged_in):
    assert logged_in.get("/").headers["Cache-Control"] == "no-store"


def test_readyz_reports_the_api_down(client):
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"] == {"web_redis": True, "api": False}


def test_metrics_need_no_login_and_count_failed_logins(client, auth, make_user):
    from prometheus_client import REGISTRY

    def failures():
        return REGISTRY.get_sample_value("pneumonia_web_login_failures_total") or 0

    make_user()
    before = failures()
    auth.login(password="not the password")
    assert failures() == before + 1
    resp = client.get("/metrics")
    assert resp.status_code == 200 and b"pneumonia_web_requests_total" in resp.data
