"""`make up` starts the services through ``python -m devstack ROLE`` (the Procfile): the same
command lines as the tests and benchmarks, and Ctrl-C (honcho's SIGTERM) reaches the service."""

from __future__ import annotations

import signal
import subprocess

import pytest
import requests

from devstack.processes import free_port, python, start, stop, wait_for_http
from devstack.settings import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_procfile_starts_the_stack_services_through_devstack():
    lines = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    for role in ("api", "ui", "worker", "nginx"):
        assert lines[role].endswith(f"python -m devstack {role}"), lines[role]


def test_the_api_started_as_make_up_does_answers_and_stops_on_sigterm(redis_url, tmp_path):
    port = free_port()
    env = {"REDIS_URL": redis_url, "API_TOKEN": "t" * 32, "GUNICORN_BIND": f"127.0.0.1:{port}",
           "GUNICORN_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}  # fmt: skip
    proc = start([python(), "-m", "devstack", "api"], env=env, log=tmp_path / "api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        proc.send_signal(signal.SIGTERM)  # to the launched pid only, as honcho does
        proc.wait(30)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        stop(proc)


def test_nginx_without_a_rendered_config_says_what_to_do():
    out = subprocess.run([python(), "-m", "devstack", "nginx"], capture_output=True, text=True,
                         cwd=ROOT, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode != 0
    assert "NGINX_DIR is not set" in out.stderr
