"""`make up` starts every exporter its Prometheus scrapes: on a fresh stack no target of
prometheus.local.yml is down for want of a process (exporter_down would fire)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time

import requests
import yaml

from tests.monitoring.aws_standin import free_port
from tests.monitoring.support import MONITORING, binary

ROOT = MONITORING.parent
# job of prometheus.local.yml -> the port variable of scripts/up.sh its process listens on
EXPORTER_PORTS = {
    "prometheus": "PROMETHEUS_PORT",
    "node": "NODE_EXPORTER_PORT",
    "redis": "REDIS_EXPORTER_PORT",
    "nginx": "NGINX_EXPORTER_PORT",
}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(ln.split(": ", 1) for ln in lines if ln and not ln.startswith("#"))


def test_every_scraped_exporter_is_a_process_of_make_up():
    jobs = {
        j["job_name"]
        for j in yaml.safe_load((MONITORING / "prometheus" / "prometheus.local.yml").read_text())[
            "scrape_configs"
        ]
    }
    assert set(EXPORTER_PORTS) <= jobs
    commands = procfile().values()
    up = (ROOT / "scripts" / "up.sh").read_text()
    for job, var in EXPORTER_PORTS.items():
        assert any(re.search(rf"listen-address=127\.0\.0\.1:\$\{{{var}\}}", c) for c in commands), (
            f"no Procfile process listens on ${{{var}}} for the {job} job"
        )
        assert f'"${{{var}:=' in up, f"scripts/up.sh gives {var} no default"


def test_procfile_nginx_exporter_reads_the_local_nginx(tmp_path):
    """nginx as `make up` renders it, and the Procfile's nginx_exporter command as honcho
    runs it, started first (honcho starts every process at once, and the exporter must
    wait for nginx rather than exit and take the stack down): the exporter reports nginx up."""
    nginx = binary("nginx", "nginx")
    binary("prometheus-nginx-exporter", "prometheus-nginx-exporter")
    tls = tmp_path / "tls"
    subprocess.run(["bash", str(ROOT / "nginx" / "selfsigned.sh"), str(tls)], check=True)
    ports = {name: free_port() for name in ("HTTP_PORT", "HTTPS_PORT", "NGINX_EXPORTER_PORT")}
    env = {
        **os.environ,
        "LISTEN_HTTP": str(ports["HTTP_PORT"]),
        "LISTEN_HTTPS": str(ports["HTTPS_PORT"]),
        "UI_UPSTREAM": f"127.0.0.1:{free_port()}",
        "TLS_CERT": str(tls / "cert.pem"),
        "TLS_KEY": str(tls / "key.pem"),
    }
    out = tmp_path / "nginx"
    subprocess.run(["bash", str(ROOT / "nginx" / "render.sh"), str(out)], env=env, check=True)
    procs = [
        subprocess.Popen(
            ["bash", "-c", f"exec {procfile()['nginx_exporter']}"],
            env={**os.environ, **{k: str(v) for k, v in ports.items()}},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    time.sleep(1.5)
    procs.append(
        subprocess.Popen(
            [nginx, "-e", "stderr", "-p", str(out), "-c", str(out / "nginx.conf")],
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        url = f"http://127.0.0.1:{ports['NGINX_EXPORTER_PORT']}/metrics"
        deadline, text = time.monotonic() + 20, ""
        while time.monotonic() < deadline and not re.search(r"^nginx_up 1$", text, re.M):
            with contextlib.suppress(requests.ConnectionError):
                text = requests.get(url, timeout=2).text
            time.sleep(0.3)
        assert re.search(r"^nginx_up 1$", text, re.M), text[-1000:]
        assert re.search(r"^nginx_connections_active \d+", text, re.M)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
