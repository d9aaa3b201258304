"""Live: the local stack with Prometheus, real traffic, then every Grafana panel's PromQL.

Real processes on free loopback ports: redis-server, the API under gunicorn (2 workers,
multiprocess metrics), an inference worker with a tiny model, nginx with stub_status in front
of the API and its exporter, redis_exporter, node_exporter with the trainer's textfile gauges,
and Prometheus with the local config rendered at a 1 s interval. After a few predictions, a
cache hit and a bad upload, each panel's query (variables filled with values Prometheus
knows) must return data: a panel that can only show "No data" is a bug.
"""

from __future__ import annotations

import io
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from scripts.render_prometheus import render
from tests.monitoring.support import DASHBOARDS, RULE_FILES, binary, fill, load, panels, tier
from tests.processes import ApiServer, Workers, post, post_file, result, wait_ready
from tests.support import free_port, start, stop, wait_for_http, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

# Tiers with no process in this test: their panels are only checked to parse.
ABSENT_TIERS = {"ui", "gpu"}

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_max_body_size 40m;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /stub_status {{ stub_status; allow 127.0.0.1; deny all; }}
    location / {{ proxy_pass http://127.0.0.1:{api_port}; }}
  }}
}}
"""

TRAINING_TEXTFILE = """\
# HELP pneumonia_training_progress_ratio Share of the planned epochs done.
# TYPE pneumonia_training_progress_ratio gauge
pneumonia_training_progress_ratio 0.4
# HELP pneumonia_training_epoch Current epoch.
# TYPE pneumonia_training_epoch gauge
pneumonia_training_epoch 4
# HELP pneumonia_training_val_auc Validation ROC AUC after the last epoch.
# TYPE pneumonia_training_val_auc gauge
pneumonia_training_val_auc 0.93
# HELP pneumonia_training_images_per_second Training throughput.
# TYPE pneumonia_training_images_per_second gauge
pneumonia_training_images_per_second 118.5
"""


class Stack:
    """The processes of the live test; stop() ends them all, in reverse order."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.procs = []

    def run(self, name: str, argv: list[str], url: str | None = None, **env):
        proc = start(argv, env=env, log=self.dir / f"{name}.log")
        self.procs.append(proc)
        if url:
            wait_for_http(url, timeout=30)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            stop(proc, timeout=10)


def xray_png(seed: int) -> bytes:
    """A small greyscale PNG the API accepts (distinct per seed, so no cache hit)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def promql(prom: str, expr: str) -> list[dict]:
    """Run an instant query; a parse error fails here with Prometheus' message."""
    resp = requests.get(prom + "/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def variable_values(prom: str, dashboard: dict) -> dict[str, str]:
    """Fill each template variable with the first value its own query finds."""
    values: dict[str, str] = {}
    for v in dashboard["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
        selector, label = fill(m.group(1), values), m.group(2)
        resp = requests.get(prom + "/api/v1/series", params={"match[]": selector}, timeout=10)
        found = sorted({s[label] for s in resp.json()["data"] if label in s})
        assert found, f"{dashboard['uid']}: variable ${v['name']} has no value ({selector})"
        values[v["name"]] = found[0]
    return values


def has_data(result: list[dict]) -> bool:
    """At least one series with a finite value (NaN draws nothing in Grafana)."""
    for series in result:
        value = float(series["value"][1])
        if math.isfinite(value):
            return True
    return False


@pytest.fixture
def stack(redis_url, model_store, tmp_path):
    s = Stack(tmp_path)
    yield s
    s.stop()


def test_every_panel_returns_data_from_the_live_stack(stack, redis_url, model_store, tmp_path):
    for exe, pkg in [
        ("prometheus", "prometheus"),
        ("prometheus-node-exporter", "prometheus-node-exporter"),
        ("prometheus-redis-exporter", "prometheus-redis-exporter"),
        ("prometheus-nginx-exporter", "prometheus-nginx-exporter"),
        ("nginx", "nginx"),
    ]:
        binary(exe, pkg)
    ports = {default: free_port() for default in (9090, 9100, 9101, 9121, 9113, 5001)}
    api = ApiServer(redis_url, tmp_path)
    ports[5000] = api.port
    nginx_port = free_port()

    # --- the stack ---------------------------------------------------------------------------
    workers = Workers(redis_url, model_store.root, tmp_path)
    workers.start("live-1", WORKER_METRICS_PORT=str(ports[9101]))
    stack.procs.append(workers.procs["live-1"])
    api.start()
    stack.procs.append(api.proc)
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "training.prom").write_text(TRAINING_TEXTFILE)
    stack.run(
        "node_exporter",
        [
            "prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{ports[9100]}",
            f"--collector.textfile.directory={textfiles}",
            "--no-collector.systemd",
            "--log.level=error",
        ],
        url=f"http://127.0.0.1:{ports[9100]}/",
    )
    stack.run(
        "redis_exporter",
        [
            "prometheus-redis-exporter",
            f"-redis.addr={redis_url.rsplit('/', 1)[0]}",
            f"-web.listen-address=127.0.0.1:{ports[9121]}",
        ],
        url=f"http://127.0.0.1:{ports[9121]}/",
    )
    ngx = tmp_path / "nginx"
    ngx.mkdir()
    (ngx / "nginx.conf").write_text(NGINX_CONF.format(dir=ngx, port=nginx_port, api_port=api.port))
    stack.run(
        "nginx",
        ["nginx", "-p", str(ngx), "-c", str(ngx / "nginx.conf"), "-g", "daemon off;"],
        url=f"http://127.0.0.1:{nginx_port}/healthz",
    )
    stack.run(
        "nginx_exporter",
        [
            "prometheus-nginx-exporter",
            f"-nginx.scrape-uri=http://127.0.0.1:{nginx_port}/stub_status",
            f"-web.listen-address=127.0.0.1:{ports[9113]}",
        ],
        url=f"http://127.0.0.1:{ports[9113]}/",
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(render(ports, interval="1s"))
    prom = f"http://127.0.0.1:{ports[9090]}"
    stack.run(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports[9090]}",
            "--log.level=warn",
        ],
        url=prom + "/-/ready",
    )

    # --- traffic, through nginx as in production ------------------------------------------------
    front = f"http://127.0.0.1:{nginx_port}"
    wait_ready(front)
    images = []
    for seed in range(3):
        path = tmp_path / f"xray-{seed}.png"
        path.write_bytes(xray_png(seed))
        images.append(path)
    items = [post(front, p) for p in images]
    assert all(result(front, i)["status"] == "done" for i in items)
    assert post(front, images[0])["cached"] is True
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    assert post_file(front, bad).status_code in (400, 415)

    def scraped():
        up = promql(prom, 'up{job=~"api|worker|node|redis|nginx|prometheus"} == 1')
        done = promql(prom, "sum(pneumonia_worker_predictions_total) >= 3")
        bad = promql(prom, 'pneumonia_api_uploads_rejected_total{reason="unsupported_type"} > 0')
        hit = promql(prom, "sum(pneumonia_api_cache_hits_total) > 0")
        return len(up) == 6 and done and bad and hit

    wait_until(scraped, timeout=30, interval=0.5, what="Prometheus scraping every tier")
    time.sleep(3)  # a few more scrapes and rule evaluations after the traffic

    # --- every rule evaluates on real series (no many-to-many match, no bad template) ----------
    groups = requests.get(prom + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for grp in groups for r in grp["rules"]]
    expected = [
        r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]
    assert len(rules) == len(expected)
    broken = [f"{r['name']}: {r['lastError']}" for r in rules if r["health"] != "ok"]
    assert not broken, broken

    # --- every panel ----------------------------------------------------------------------------
    empty, checked, parsed_only = [], 0, []
    for path in DASHBOARDS:
        dashboard = load(path)
        values = variable_values(prom, dashboard)
        for p in panels(dashboard):
            for target in p.get("targets", []):
                expr = fill(target["expr"], values)
                rows = promql(prom, expr)  # parses, whatever the tier
                if tier(expr) in ABSENT_TIERS:
                    parsed_only.append(f"{dashboard['uid']} / {p['title']}")
                    continue
                checked += 1
                if not has_data(rows):
                    empty.append(f"{dashboard['uid']} / {p['title']} [{target['refId']}]: {expr}")
    print(f"checked {checked} queries with data; parsed only: {sorted(set(parsed_only))}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)
    assert checked >= 50, checked
    assert len(set(parsed_only)) <= 7, parsed_only  # UI (3 panels) and GPU (2 + 1 shared)
