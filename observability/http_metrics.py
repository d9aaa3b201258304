"""Request counts and latency of a Flask service, and its /metrics view.

Under gunicorn each worker process counts on its own; with ``PROMETHEUS_MULTIPROC_DIR`` set
(:mod:`observability.gunicorn_hooks` wipes it at start) prometheus_client sums the workers, so
/metrics shows the whole service whichever worker answers the scrape. /metrics has no login:
nginx must not route it from outside; Prometheus scrapes the service port directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

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

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class RequestMetrics:
    """``<namespace>_requests_total`` and ``<namespace>_request_duration_seconds``.

    Labelled by the route's rule (never the raw path: ids and names would make the series
    unbounded and could carry personal data), the method and, for counts, the status.
    """

    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls, namespace: str, service: str, buckets=DEFAULT_BUCKETS) -> RequestMetrics:
        """Register the two families once per process (call at module import)."""
        return cls(
            Counter(
                f"{namespace}_requests_total",
                f"HTTP requests answered by the {service}",
                ["route", "method", "status"],
            ),
            Histogram(
                f"{namespace}_request_duration_seconds",
                f"{service} request latency",
                ["route", "method"],
                buckets=buckets,
            ),
        )

    def init_app(self, app: Flask, extra: Iterable[CollectorRegistry] = ()) -> None:
        """Time every request and serve /metrics (plus ``extra`` registries, read at scrape).

        The timer runs before any other before_request hook (login checks included), so a
        refused request is timed too. Scrapes are not user traffic: they are neither counted
        nor rate limited (call this after a Flask-Limiter's init_app for the exemption).
        """
        extra = tuple(extra)
        app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
        app.after_request(self._observe)

        def metrics() -> Response:
            body = exposition() + b"".join(generate_latest(r) for r in extra)
            return Response(body, mimetype=CONTENT_TYPE_LATEST)

        app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
        for limiter in app.extensions.get("limiter", ()):
            limiter.exempt(metrics)

    def _observe(self, response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        t0 = g.pop("_metrics_t0", None)
        if route != "/metrics" and t0 is not None:
            self.latency.labels(route, request.method).observe(time.perf_counter() - t0)
            self.requests.labels(route, request.method, str(response.status_code)).inc()
        return response


def _start_timer() -> None:
    g._metrics_t0 = time.perf_counter()


def exposition() -> bytes:
    """This process's metrics, or every gunicorn worker's summed in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
