"""Prometheus metrics of the clinician UI: requests, latency and failed logins on /metrics.

Hook it in ``create_app``: ``metrics.init_app(app)``; where a login fails, call
``metrics.login_failed()``. Under gunicorn, give the UI its own ``PROMETHEUS_MULTIPROC_DIR``
(not the API's: each gunicorn wipes its directory at start). The request timer, /metrics
and the gunicorn hooks are :mod:`observability`'s, shared with the API. nginx must not route
/metrics from outside (``location = /metrics { return 404; }``).
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import Counter

from observability.http_metrics import RequestMetrics

HTTP = RequestMetrics.create("pneumonia_web", "UI")
LOGIN_FAILURES = Counter(
    "pneumonia_web_login_failures_total", "Login attempts refused (wrong user or password)"
)


def login_failed() -> None:
    """Count one refused login (never label by user name: unbounded, and personal data)."""
    LOGIN_FAILURES.inc()


def init_app(app: Flask) -> None:
    """Time every request (before login checks) and expose /metrics, not rate limited."""
    HTTP.init_app(app)
