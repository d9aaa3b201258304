"""pneumonia_web.metrics on a small Flask app shaped like the UI (login, limiter)."""

from __future__ import annotations

from flask import Flask, abort, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from prometheus_client.parser import text_string_to_metric_families

from pneumonia_web import metrics


def make_app() -> Flask:
    app = Flask(__name__)
    Limiter(get_remote_address, app=app, default_limits=["3 per minute"], storage_uri="memory://")

    @app.before_request
    def require_login():  # like a login wall: runs after the metrics timer
        if request.path.startswith("/private"):
            abort(401)

    @app.post("/login")
    def login():
        if request.form.get("password") != "right":
            metrics.login_failed()
            return "no", 200
        return "yes", 200

    @app.get("/private/page")
    def private():
        return "secret"

    metrics.init_app(app)
    return app


def samples(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_latency_and_login_failures_are_counted():
    client = make_app().test_client()
    before = samples(client)
    client.post("/login", data={"password": "wrong"})
    client.post("/login", data={"password": "right"})
    assert client.get("/private/page").status_code == 401
    assert client.get("/nowhere").status_code == 404
    after = samples(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("pneumonia_web_login_failures_total") == 1
    req = "pneumonia_web_requests_total"
    assert delta(req, route="/login", method="POST", status="200") == 2
    assert delta(req, route="/private/page", method="GET", status="401") == 1
    assert delta(req, route="unmatched", method="GET", status="404") == 1
    count = "pneumonia_web_request_duration_seconds_count"
    assert delta(count, route="/private/page", method="GET") == 1
    assert not any(k[0] == req and ("route", "/metrics") in k[1] for k in after)


def test_metrics_is_not_rate_limited():
    client = make_app().test_client()
    assert all(client.get("/metrics").status_code == 200 for _ in range(6))
