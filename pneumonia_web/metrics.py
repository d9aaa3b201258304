"""Prometheus metrics of the clinician UI: requests, latency and failed logins on /metrics.

Hook it in ``create_app``: ``metrics.init_app(app)``; where a login fails, call
``metrics.login_failed()``. Under gunicorn, give the UI its own ``PROMETHEUS_MULTIPROC_DIR``
(not the API's: each gunicorn wipes its directory at start); ``pneumonia_web.gunicorn_conf``
wipes it and marks dead workers. /metrics has no login:
nginx must not route it from outside (``location = /metrics { return 404; }``); Prometheus
scrapes the UI port directly from the monitoring box.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter(
    "pneumonia_web_requests_total",
    "HTTP requests answered by the UI",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "pneumonia_web_request_duration_seconds",
    "UI request latency",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGIN_FAILURES = Counter(
    "pneumonia_web_login_failures_total", "Login attempts refused (wrong user or password)"
)


def login_failed() -> None:
    """Count one refused login (never label by user name: unbounded, and personal data)."""
    LOGIN_FAILURES.inc()


def _start_timer() -> None:
    g._metrics_t0 = time.perf_counter()


def _observe(response):
    route = request.url_rule.rule if request.url_rule else "unmatched"
    t0 = g.pop("_metrics_t0", None)
    if route != "/metrics" and t0 is not None:
        LATENCY.labels(route, request.method).observe(time.perf_counter() - t0)
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    return response


def metrics() -> Response:
    """The UI's metrics, summed over every gunicorn worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Time every request (the timer runs first, before login checks) and expose /metrics."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    # Scrapes are not user traffic: exempt them from Flask-Limiter's limits (call init_app
    # after the limiter's init_app for this to apply).
    for limiter in app.extensions.get("limiter", ()):
        limiter.exempt(metrics)
