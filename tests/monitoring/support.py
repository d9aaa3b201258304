"""What the monitoring tests share: paths, the dashboards' queries, template variables."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack.settings import ROOT

MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
GRAFANA = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))

# Metrics whose tier may not run in a test: their panels are checked to parse only.
TIER_OF_METRIC = {
    "pneumonia_web_": "ui",
    "job:pneumonia_web_": "ui",
    "nginx_": "nginx",
    "DCGM_": "gpu",
}


def promtool() -> str:
    """The promtool binary, or skip the test saying how to get it."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed: run `make system` (Debian package prometheus)")
    return exe


def binary(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed: run `make system` (Debian package {package})")
    return exe


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict):
    """Every panel, rows' nested panels included."""
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def queries():
    """(dashboard uid, panel title, refId, expr) for every target of every dashboard."""
    for path in DASHBOARDS:
        d = load(path)
        for p in panels(d):
            for t in p.get("targets", []):
                yield d["uid"], p["title"], t["refId"], t["expr"]


def tier(expr: str) -> str | None:
    """The optional tier a query depends on (ui, nginx, gpu), or None for the core ones."""
    for prefix, name in TIER_OF_METRIC.items():
        if re.search(rf"(?<![\w:]){re.escape(prefix)}", expr):
            return name
    return None


def fill(expr: str, values: dict[str, str], rate_interval: str = "1m") -> str:
    """Substitute Grafana's variables as Grafana would (a multi-value var becomes a regex)."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    assert "$" not in expr, f"unfilled variable in {expr}"
    return expr


@contextlib.contextmanager
def fake_instance_metadata(root: Path, region: str = "eu-west-3"):
    """An EC2 instance metadata endpoint that answers the region, as on the monitoring box.

    ec2_sd_configs without a region asks the metadata service while the config is parsed, so
    promtool needs one; point AWS_EC2_METADATA_SERVICE_ENDPOINT at the yielded URL.
    """
    doc = root / "latest" / "dynamic" / "instance-identity"
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "document").write_text(json.dumps({"region": region, "availabilityZone": region + "a"}))
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
