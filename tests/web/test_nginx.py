"""The nginx config: `nginx -t`, then the real nginx in front of the real UI (and API)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.nginx import NGINX_DIR, nginx_argv, render_nginx
from devstack.stack import LocalStack

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed: run `make system`")

ALLOWED = {"LISTEN_HTTP", "LISTEN_HTTPS", "SERVER_NAME", "UI_UPSTREAM", "TLS_CERT", "TLS_KEY",
           "MAX_BODY", "MONITORING_CIDR", "ACCESS_LOG"}  # fmt: skip


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    out = tmp_path_factory.mktemp("tls")
    subprocess.run(["bash", str(NGINX_DIR / "selfsigned.sh"), str(out)], check=True)
    return out


def test_template_uses_only_the_agreed_variables():
    text = (NGINX_DIR / "pneumonia.conf.template").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    assert used == ALLOWED


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the local defaults of `make up`
        {"LISTEN_HTTP": "80", "LISTEN_HTTPS": "443", "SERVER_NAME": "xray.example.org",
         "UI_UPSTREAM": "10.0.2.15:5001", "MAX_BODY": "33m", "MONITORING_CIDR": "10.0.3.0/24"},
    ],
    ids=["local", "production"],
)  # fmt: skip
def test_nginx_t_accepts_the_rendered_config(tmp_path, tls, settings):
    conf = render_nginx(
        tmp_path / "nginx",
        TLS_CERT=str(tls / "cert.pem"),
        TLS_KEY=str(tls / "key.pem"),
        **settings,
    )
    rendered = (conf / "pneumonia.conf").read_text()
    assert "${" not in rendered and "$host" in rendered  # nginx's own variables survive
    result = subprocess.run(nginx_argv(conf, "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server):
    # No workers: these tests are about the proxy, not the model. MAX_BODY is small to test it.
    with LocalStack(tmp_path_factory.mktemp("stack"), max_body="1m") as s:
        yield s


def get(stack, path, **kw):
    return requests.get(stack.https_url + path, verify=stack.ca, timeout=10, **kw)


@pytest.mark.e2e
def test_http_redirects_to_https_with_the_port(stack):
    resp = requests.get(stack.http_url + "/worklist?x=1", allow_redirects=False, timeout=5)
    assert resp.status_code == 301
    assert resp.headers["Location"] == f"{stack.https_url}/worklist?x=1"


@pytest.mark.e2e
def test_security_headers_on_pages_and_errors(stack):
    for resp in (get(stack, "/login"), get(stack, "/no-such-page")):
        h = resp.headers
        assert h["Strict-Transport-Security"].startswith("max-age=31536000")
        csp = h["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "same-origin"
        assert "nginx/" not in h.get("Server", "")


@pytest.mark.e2e
def test_metrics_are_hidden_from_outside(stack):
    assert get(stack, "/metrics").status_code == 404
    direct = requests.get(stack.ui_url + "/metrics", timeout=5)  # what Prometheus scrapes
    assert direct.status_code == 200 and "pneumonia_web_requests_total" in direct.text


@pytest.mark.e2e
def test_text_is_gzipped(stack):
    resp = get(stack, "/static/app.css", headers={"Accept-Encoding": "gzip"})
    assert resp.headers.get("Content-Encoding") == "gzip"


@pytest.mark.e2e
def test_login_over_https_sets_a_secure_cookie(stack):
    password = stack.create_user("nginx-user", "clinician", "a long enough password")
    with requests.Session() as s:
        s.verify, s.trust_env = stack.ca, False  # no CA bundle from the environment
        page = s.get(stack.https_url + "/login", timeout=5).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        resp = s.post(
            stack.https_url + "/login",
            data={"username": "nginx-user", "password": password, "csrf_token": token},
            # Over HTTPS Flask-WTF also checks the Referer is this site (browsers send it).
            headers={"Referer": stack.https_url + "/login"},
            allow_redirects=False,
            timeout=10,
        )
        assert resp.status_code == 302, resp.text
        cookie = resp.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert s.get(stack.https_url + "/", timeout=10).url == stack.https_url + "/"
        forged = s.post(stack.https_url + "/logout", data={"csrf_token": token}, timeout=10,
                        headers={"Referer": "https://evil.example/"})  # fmt: skip
        assert forged.status_code == 400  # a token is not enough from another site


@pytest.mark.e2e
def test_body_over_max_body_is_refused_by_nginx(stack):
    resp = requests.post(stack.https_url + "/upload", data=b"x" * (2 * 1024 * 1024),
                         verify=stack.ca, timeout=10)  # fmt: skip
    assert resp.status_code == 413


@pytest.mark.e2e
def test_upload_route_is_rate_limited(stack):
    def hit(_):
        return requests.post(stack.https_url + "/upload", verify=stack.ca, timeout=30).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(hit, range(60)))
    assert 429 in codes  # beyond the burst
    assert any(c != 429 for c in codes)  # the burst itself went through (to the CSRF check)
    assert get(stack, "/login").status_code == 200  # other routes are not limited


@pytest.mark.e2e
def test_stub_status_only_for_the_monitoring_address(stack, tmp_path, tls):
    ok = requests.get(stack.http_url + "/nginx_status", timeout=5)
    assert ok.status_code == 200 and "Active connections" in ok.text
    assert get(stack, "/nginx_status").status_code == 200


@pytest.mark.e2e
def test_stub_status_is_denied_to_others(tmp_path, tls):
    from devstack.processes import free_port, start, stop, wait_until

    port, sport = free_port(), free_port()
    conf = render_nginx(
        tmp_path / "nginx",
        LISTEN_HTTP=f"127.0.0.1:{port}",
        LISTEN_HTTPS=f"127.0.0.1:{sport}",
        TLS_CERT=str(tls / "cert.pem"),
        TLS_KEY=str(tls / "key.pem"),
        MONITORING_CIDR="10.9.9.9/32",
    )
    proc = start(nginx_argv(conf), log=tmp_path / "nginx.log")
    try:
        url = f"http://127.0.0.1:{port}/nginx_status"
        status = wait_until(lambda: requests.get(url, timeout=2).status_code, what="nginx")
        assert status == 403
    finally:
        stop(proc)


@pytest.mark.e2e
def test_ui_is_reached_only_through_the_proxy_headers(stack):
    # The UI sees the client's scheme through X-Forwarded-Proto: its redirects stay relative
    # and its cookies Secure, so nothing points at the private http://127.0.0.1:5001.
    resp = get(stack, "/", allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
