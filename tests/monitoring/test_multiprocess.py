"""/metrics of a multi-worker gunicorn API sums every worker, including dead ones."""

from __future__ import annotations

import os
import signal

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.api import ApiServer
from devstack.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def healthz_count(url: str) -> float:
    """pneumonia_api_requests_total for GET /healthz 200, as one scrape reports it."""
    text = requests.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "pneumonia_api_requests_total" and s.labels["route"] == "/healthz":
                return s.value
    return 0.0


def test_metrics_sum_all_workers_across_restarts_and_start_clean(redis_url, tmp_path):
    stale = tmp_path / "prom-api"
    stale.mkdir()
    (stale / "counter_999999.db").write_bytes(b"\0" * 64)  # left by a previous run
    api = ApiServer(redis_url, tmp_path, workers=2).start()
    try:
        assert not (stale / "counter_999999.db").exists(), "on_starting wipes the directory"
        first = set(api.children())
        assert len(first) == 2
        base = healthz_count(api.url)
        for _ in range(10):
            requests.get(api.url + "/healthz", timeout=5)
        # Kill both workers: gunicorn forks two new ones; what the dead counted must remain.
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: len(set(api.children()) - first) == 2, timeout=30, what="two new workers"
        )
        wait_until(lambda: requests.get(api.url + "/metrics", timeout=2).ok, timeout=30)
        for _ in range(10):
            requests.get(api.url + "/healthz", timeout=5)
        # Whichever worker answers each scrape, it reports the whole API.
        assert {healthz_count(api.url) for _ in range(6)} == {base + 20}
        files = {p.name for p in stale.iterdir()}
        assert sum(name.startswith("counter_") for name in files) >= 4, files
    finally:
        api.stop()
