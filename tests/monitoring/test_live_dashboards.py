"""Live: the whole local stack with Prometheus, real traffic, then every panel's PromQL.

Real processes on free loopback ports (devstack/stack.py): redis-server, the API under gunicorn
(2 workers, multiprocess metrics), an inference worker with a tiny model, the UI under gunicorn
(2 workers, multiprocess metrics), nginx with the product's config (stub_status for the
monitoring address); plus the nginx exporter, redis_exporter, node_exporter with the trainer's
textfile gauges, and Prometheus with the local config rendered at a 1 s interval. After a few
predictions, a cache hit, a bad upload and a failed login, each panel's query (variables
filled with values Prometheus knows) must return data: a panel that can only show "No data"
is a bug. Only the GPU panels (no dcgm-exporter without a GPU) are checked to parse.
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

from devstack.api import AUTH
from devstack.client import post, post_file, result
from devstack.processes import free_port, start, stop, wait_for_http, wait_until
from devstack.stack import LocalStack
from scripts.render_prometheus import render
from tests.monitoring.support import DASHBOARDS, RULE_FILES, binary, fill, load, panels, tier

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

# Tiers with no process in this test: their panels are only checked to parse.
ABSENT_TIERS = {"gpu"}

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


def xray_png(seed: int) -> bytes:
    """A small greyscale PNG the API accepts (distinct per seed, so no cache hit)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def read(api: str, item: dict, choice: str) -> None:
    """Record a reader's verdict on a finished prediction, as the UI does."""
    resp = requests.put(f"{api}/v1/predictions/{item['id']}/verdict", json={"choice": choice},
                        headers={**AUTH, "X-Reader": "dr.live"}, timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text


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


class Exporters:
    """The exporters and Prometheus beside the stack; stop() ends them, newest first."""

    def __init__(self, logs: Path):
        self.logs, self.procs = logs, []

    def run(self, name: str, argv: list[str], url: str):
        self.procs.append(start(argv, log=self.logs / f"{name}.log"))
        wait_for_http(url, timeout=30)

    def stop(self):
        while self.procs:
            stop(self.procs.pop(), timeout=10)


def fail_a_login(stack: LocalStack) -> None:
    """A wrong password through nginx and the UI's real form (CSRF token included)."""
    with requests.Session() as browser:
        page = browser.get(stack.https_url + "/login", verify=stack.ca, timeout=10).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        form = {"csrf_token": token, "username": "nobody", "password": "wrong password"}
        resp = browser.post(
            stack.https_url + "/login",
            data=form,
            headers={"Referer": stack.https_url + "/login"},  # Flask-WTF checks it over HTTPS
            verify=stack.ca,
            timeout=10,
        )
        assert resp.status_code == 401, resp.text[:300]


@pytest.fixture
def monitored(model_store, tmp_path):
    """The stack with metrics ports fixed in advance, and its exporters and Prometheus."""
    ports = {default: free_port() for default in (9090, 9100, 9101, 9121, 9113)}
    stack = LocalStack(
        tmp_path / "stack",
        model_store=model_store.root,
        workers=1,
        ui_env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom-web")},
        worker_env={"WORKER_METRICS_PORT": str(ports[9101])},
    )
    exporters = Exporters(tmp_path)
    with stack:
        try:
            yield stack, exporters, ports
        finally:
            exporters.stop()


def test_every_panel_returns_data_from_the_live_stack(monitored, tmp_path):
    stack, exporters, ports = monitored
    for exe, pkg in [
        ("prometheus", "prometheus"),
        ("prometheus-node-exporter", "prometheus-node-exporter"),
        ("prometheus-redis-exporter", "prometheus-redis-exporter"),
        ("prometheus-nginx-exporter", "prometheus-nginx-exporter"),
    ]:
        binary(exe, pkg)
    ports[5000], ports[5001] = stack.api.port, stack.ui_port

    # --- exporters and Prometheus ----------------------------------------------------------
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "training.prom").write_text(TRAINING_TEXTFILE)
    exporters.run(
        "node_exporter",
        [
            "prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{ports[9100]}",
            f"--collector.textfile.directory={textfiles}",
            "--no-collector.systemd",
            "--log.level=error",
        ],
        f"http://127.0.0.1:{ports[9100]}/",
    )
    exporters.run(
        "redis_exporter",
        [
            "prometheus-redis-exporter",
            f"-redis.addr={stack.redis_url.rsplit('/', 1)[0]}",
            f"-web.listen-address=127.0.0.1:{ports[9121]}",
        ],
        f"http://127.0.0.1:{ports[9121]}/",
    )
    exporters.run(
        "nginx_exporter",
        [
            "prometheus-nginx-exporter",
            f"-nginx.scrape-uri={stack.http_url}/nginx_status",
            f"-web.listen-address=127.0.0.1:{ports[9113]}",
        ],
        f"http://127.0.0.1:{ports[9113]}/",
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(render(ports, interval="1s"))
    prom = f"http://127.0.0.1:{ports[9090]}"
    exporters.run(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports[9090]}",
            "--log.level=warn",
        ],
        prom + "/-/ready",
    )

    # --- traffic: predictions on the API, a failed login through nginx and the UI -------------
    stack.wait_ready()
    api = stack.api_url
    images = []
    for seed in range(3):
        path = tmp_path / f"xray-{seed}.png"
        path.write_bytes(xray_png(seed))
        images.append(path)
    items = [post(api, p) for p in images]
    assert all(result(api, i)["status"] == "done" for i in items)
    read(api, items[0], "agree")  # a clinician's verdict (reader agreement panels)
    assert post(api, images[0])["cached"] is True
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    assert post_file(api, bad).status_code in (400, 415)
    fail_a_login(stack)
    # /metrics answers on the UI port without a login, never through nginx.
    assert requests.get(stack.ui_url + "/metrics", timeout=5).status_code == 200
    assert requests.get(stack.https_url + "/metrics", verify=stack.ca, timeout=5).status_code == 404

    def scraped():
        up = promql(prom, 'up{job=~"api|ui|worker|node|redis|nginx|prometheus"} == 1')
        done = promql(prom, "sum(pneumonia_worker_predictions_total) >= 3")
        bad = promql(prom, 'pneumonia_api_uploads_rejected_total{reason="unsupported_type"} > 0')
        hit = promql(prom, "sum(pneumonia_api_cache_hits_total) > 0")
        login = promql(prom, "sum(pneumonia_web_login_failures_total) > 0")
        verdict = promql(prom, "sum(pneumonia_reader_verdicts) > 0")
        return len(up) == 7 and done and bad and hit and login and verdict

    wait_until(scraped, timeout=30, interval=0.5, what="Prometheus scraping every tier")
    # More traffic now that every series exists: rate() and increase() need a counter to grow
    # between two scrapes, and on a busy machine the first traffic can all land before the
    # first scrape of a tier.
    fail_a_login(stack)
    more = []
    for seed in range(3, 5):
        path = tmp_path / f"xray-{seed}.png"
        path.write_bytes(xray_png(seed))
        more.append(post(api, path))
    assert all(result(api, i)["status"] == "done" for i in more)
    read(api, more[0], "Normal" if result(api, more[0])["label"] == "Pneumonia" else "Pneumonia")
    for expr in [
        "sum(delta(pneumonia_reader_verdicts[1m])) > 0",
        'sum(rate(pneumonia_web_requests_total{job="ui"}[1m])) > 0',
        'sum(rate(pneumonia_api_request_duration_seconds_count{job="api"}[1m])) > 0',
        "sum(rate(pneumonia_worker_job_latency_seconds_count[1m])) > 0",
    ]:
        wait_until(
            lambda expr=expr: promql(prom, expr),
            timeout=20,
            interval=0.5,
            what=f"an increase seen by Prometheus: {expr}",
        )
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
    assert sorted(set(parsed_only)) == [
        "pneumonia-training / GPU memory used",
        "pneumonia-training / GPU utilisation",
    ]
