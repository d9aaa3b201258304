"""Load and security through the whole local stack: Chromium-free, but nginx -> UI -> API.

One stack for the module (redis, API, worker, UI under gunicorn, nginx with the product config).
"""

from __future__ import annotations

import re
import socket
import ssl
import time

import pytest
import requests

from devstack.api import AUTH
from devstack.processes import wait_until
from devstack.stack import LocalStack
from pneumonia_web import create_app as create_web_app

from . import load, results

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PUBLIC_UI = {"auth.login", "health.healthz", "health.readyz", "static", "metrics"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir):
    from model.store import LocalStore

    tmp = tmp_path_factory.mktemp("nginx-stack")
    store = LocalStore(tmp / "models")
    store.publish(tiny_model_dir, "tiny-1")
    with LocalStack(tmp, model_store=store.root, workers=1,
                    worker_env={"MAX_BATCH": "32"}) as s:  # fmt: skip
        s.wait_ready()
        yield s


def token_from(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)[1]


def logged_in(stack, name: str) -> requests.Session:
    password = stack.create_user(name, password="a-long-test-password-1")
    s = requests.Session()
    s.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment overrides s.verify
    s.verify = stack.ca
    s.headers["Referer"] = stack.https_url + "/"  # as a browser sends it (CSRF over HTTPS)
    page = s.get(stack.https_url + "/login", timeout=10)
    s.post(
        stack.https_url + "/login",
        timeout=10,
        data={"username": name, "password": password, "csrf_token": token_from(page.text)},
    )
    return s


def test_500_uploads_from_16_clinicians_through_nginx(stack, fullres_xrays):
    clients = 16
    sessions = [logged_in(stack, f"load{i}") for i in range(clients)]
    tokens = [token_from(s.get(stack.https_url + "/", timeout=10).text) for s in sessions]
    payloads = {p: p.read_bytes() for p in fullres_xrays}
    counter = iter(range(10**9))

    def send(path):
        i = next(counter)
        s = sessions[i % clients]
        body = payloads[path] + f"load-{i}".encode()  # byte-distinct: no cache hits
        resp = s.post(
            stack.https_url + "/upload",
            timeout=120,
            headers={
                "HX-Request": "true",
                "Referer": stack.https_url + "/",  # as a browser sends it (CSRF over HTTPS)
                "X-CSRFToken": tokens[i % clients],
            },
            files={"file": (path.name, body)},
            data={"csrf_token": tokens[i % clients]},
        )
        card = re.search(r'id="card-([0-9a-f]{32})"', resp.text)
        return resp.status_code, ({"id": card[1]} if resp.status_code == 202 and card else None)

    report = load.run(list(payloads), send, 500, clients)
    assert report.errors == [] and len(report.accepted) == 500

    def finished():
        items, before = [], None
        while True:
            q = "/v1/predictions?limit=200" + (f"&before={before}" if before else "")
            page = requests.get(stack.api_url + q, headers=AUTH, timeout=10).json()
            items += [i for i in page["items"] if i["uploader"].startswith("load")]
            before = page["next_before"]
            if not before:
                break
        final = [i for i in items if i["status"] in ("done", "failed")]
        return items if len(items) == 500 and len(final) == 500 else None

    items = wait_until(finished, timeout=600, interval=2, what="all 500 results")
    lost = sum(i["status"] != "done" for i in items)
    assert lost == 0
    # from the browser's first byte to nginx to the result written (same host clock), not
    # from the API's created_at, which starts after nginx and the UI
    sent = {job["id"]: at for job, at in report.accepted}
    latencies = [i["finished_at"] - sent[i["id"]] * 1000 for i in items]
    results.record(
        "load: 500 uploads, 16 clinicians, nginx -> UI -> API",
        uploads=500,
        clients=clients,
        errors=len(report.errors),
        lost=lost,
        wall_seconds=round(report.wall_seconds, 1),
        accept_ms=report.percentiles(report.accept_ms),
        upload_to_result_ms=report.percentiles(latencies),
        note="logged-in sessions, CSRF, HTTPS; nginx throttles uploads to 10/s per address "
        "(burst 20, queued not refused)",
    )


def test_every_ui_route_but_login_and_health_needs_a_session(stack):
    app = create_web_app({"TESTING": True, "SECRET_KEY": "x" * 32, "API_TOKEN": "y" * 32,
                          "WEB_REDIS_URL": stack.web_redis_url})  # fmt: skip
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_UI:
            continue
        path = re.sub(r"<[^>]+>", "0" * 32, rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            resp = requests.request(
                method, stack.https_url + path, verify=stack.ca, allow_redirects=False, timeout=10
            )
            # A POST without a session also lacks a CSRF token: refused (400) before anything.
            refused = (302, 401, 403) if method == "GET" else (302, 400, 401, 403)
            assert resp.status_code in refused, (method, path, resp.status_code)
            if resp.status_code == 302:
                assert "/login" in resp.headers["Location"]
            checked += 1
    assert checked >= 8
    results.record("security: UI routes need a session (through nginx)", routes=checked)


def test_every_form_needs_its_csrf_token(stack):
    s = logged_in(stack, "csrf-check")
    for path in ("/upload", "/logout"):
        resp = s.post(stack.https_url + path, data={}, timeout=10, allow_redirects=False)
        assert resp.status_code == 400, path
    anonymous = requests.Session()
    anonymous.trust_env = False
    resp = anonymous.post(
        stack.https_url + "/login",
        verify=stack.ca,
        timeout=10,
        data={"username": "csrf-check", "password": "x"},
    )
    assert resp.status_code == 400


def test_login_issues_a_new_session_and_logout_ends_every_copy(stack):
    """Session fixation: nothing of the pre-login session survives login (its CSRF token is
    refused afterwards; it would still work if login kept the session). Logout: a copy of
    the logged-in cookie taken before logout is refused after it (server-side end)."""
    password = stack.create_user("fixation", password="a-long-test-password-2")
    s = requests.Session()
    s.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment overrides s.verify
    s.verify = stack.ca
    s.headers["Referer"] = stack.https_url + "/"  # as a browser sends it (CSRF over HTTPS)
    page = s.get(stack.https_url + "/login", timeout=10)
    planted = token_from(page.text)
    s.post(
        stack.https_url + "/login",
        timeout=10,
        data={"username": "fixation", "password": password, "csrf_token": planted},
    )
    assert s.get(stack.https_url + "/worklist", timeout=10).status_code == 200
    stale = s.post(stack.https_url + "/logout", data={"csrf_token": planted}, timeout=10,
                   allow_redirects=False)  # fmt: skip
    assert stale.status_code == 400  # the pre-login token died with the pre-login session
    copied = dict(s.cookies)
    token = token_from(s.get(stack.https_url + "/", timeout=10).text)
    s.post(stack.https_url + "/logout", data={"csrf_token": token}, timeout=10)
    replay = requests.get(stack.https_url + "/worklist", cookies=copied, verify=stack.ca,
                          allow_redirects=False, timeout=10)  # fmt: skip
    assert replay.status_code == 302 and "/login" in replay.headers["Location"]
    results.record(
        "security: sessions (through nginx)",
        stale_csrf_after_login=stale.status_code,
        copied_cookie_after_logout=replay.status_code,
    )


def test_security_headers_through_nginx(stack):
    resp = requests.get(stack.https_url + "/login", verify=stack.ca, timeout=10)
    h = resp.headers
    assert "max-age=" in h["Strict-Transport-Security"]
    assert "default-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    cookie = h.get("Set-Cookie", "")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = requests.get(stack.http_url + "/login", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")


def test_oversized_body_is_refused_by_nginx(stack):
    s = logged_in(stack, "big-upload")
    token = token_from(s.get(stack.https_url + "/", timeout=10).text)
    resp = s.post(
        stack.https_url + "/upload",
        timeout=60,
        headers={"X-CSRFToken": token},
        files={"file": ("big.png", b"\0" * (34 * 1024 * 1024))},
    )
    assert resp.status_code == 413


def test_a_slow_client_is_cut_off_by_nginx(stack):
    """Slowloris: headers dribbled in are dropped after client_header_timeout (15 s)."""
    ctx = ssl.create_default_context(cafile=stack.ca)
    raw = socket.create_connection(("localhost", stack.https_port), timeout=60)
    conn = ctx.wrap_socket(raw, server_hostname="localhost")
    conn.sendall(b"GET /login HTTP/1.1\r\nHost: localhost\r\n")
    t0 = time.monotonic()
    closed_after = None
    try:
        while time.monotonic() - t0 < 40:
            conn.sendall(b"X-Slow: 1\r\n")
            time.sleep(1)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        closed_after = time.monotonic() - t0
    finally:
        conn.close()
    assert closed_after is not None and closed_after < 30
    assert requests.get(stack.https_url + "/healthz", verify=stack.ca, timeout=10).ok
    results.record(
        "hostile: slow client (slowloris) against nginx",
        cut_after_seconds=round(closed_after, 1),
        still_serving=True,
    )
