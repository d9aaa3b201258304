"""Prometheus configs and rules: promtool check/test, and the house rules for alerts."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from scripts.render_prometheus import render
from tests.monitoring.support import PROMETHEUS, RULE_FILES, fake_instance_metadata, promtool

ALERT_GROUPS = {"availability", "latency", "queue", "model", "hosts", "cost"}


def alerts() -> list[tuple[str, dict]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(group["name"], r) for r in group["rules"] if "alert" in r]
    return out


@pytest.fixture
def instance_metadata(tmp_path):
    with fake_instance_metadata(tmp_path / "imds") as url:
        yield url


def run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def test_production_config_is_valid_with_the_region_from_instance_metadata(
    instance_metadata, monkeypatch
):
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", instance_metadata)
    out = run(promtool(), "check", "config", "prometheus.yml", cwd=PROMETHEUS, env=None)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 rule files found" in out.stdout


def test_production_config_discovers_by_tags_and_names_no_ip():
    text = (PROMETHEUS / "prometheus.yml").read_text()
    config = yaml.safe_load(text)
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), "an IP address in prometheus.yml"
    # the bootstrap substitutes the project name with one sed on this exact string
    code = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert sum("values: [pneumonia]" in ln for ln in code) == 1
    ports = {"node": 9100, "api": 5000, "ui": 5001, "worker": 9101, "redis": 9121, "nginx": 9113}
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for name, port in ports.items():
        job = jobs[name]
        assert job["ec2_sd_configs"][0]["filters"][0]["name"] == "tag:Project"
        assert "region" not in job["ec2_sd_configs"][0], "the region comes from instance metadata"
        relabel = job["relabel_configs"]
        assert relabel[0] == {**relabel[0], "action": "keep"}
        assert relabel[0]["source_labels"] == ["__meta_ec2_tag_Role"]
        assert relabel[-1]["replacement"] == f"$1:{port}"
        assert {"role", "instance"} <= {r.get("target_label") for r in relabel}
    for role in ("nginx", "monitoring", "ui", "app", "ml", "worker"):
        assert re.fullmatch(jobs["node"]["relabel_configs"][0]["regex"], role)
    for role in ("app", "ml", "worker"):
        assert re.fullmatch(jobs["worker"]["relabel_configs"][0]["regex"], role)
    # autoscaled workers share a Name tag: the instance id keeps their targets apart
    name_rule = jobs["worker"]["relabel_configs"][3]
    assert name_rule["source_labels"] == ["__meta_ec2_tag_Name", "__meta_ec2_instance_id"]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]
    gpu = jobs["dcgm"]["relabel_configs"][0]
    assert gpu["separator"] == ";" and gpu["action"] == "keep"
    for kept in ("ml;g5.xlarge", "ml;g4dn.xlarge", "ml;p4d.24xlarge"):
        assert re.fullmatch(gpu["regex"], kept)
    for dropped in ("ml;t3.large", "ml;c7i.2xlarge", "app;g5.xlarge"):
        assert not re.fullmatch(gpu["regex"], dropped)


def test_local_config_renders_with_the_ports_asked_and_is_valid(tmp_path):
    ports = {9090: 19090, 9100: 19100, 5000: 15000, 5001: 15001, 9101: 19101}
    out = tmp_path / "prometheus.yml"
    out.write_text(render(ports, interval="1s"))
    checked = run(promtool(), "check", "config", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(out.read_text())
    assert config["global"]["scrape_interval"] == "1s"
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets["api"] == ["127.0.0.1:15000"] and targets["node"] == ["127.0.0.1:19100"]
    assert targets["redis"] == ["127.0.0.1:9121"], "ports not asked for stay as they are"
    prod = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert set(targets) == {j["job_name"] for j in prod["scrape_configs"]} - {"dcgm"}


def test_rules_pass_promtool_check():
    out = run(promtool(), "check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_passes_its_promtool_unit_test():
    out = run(promtool(), "test", "rules", str(PROMETHEUS / "tests" / "alerts_test.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test():
    tests = yaml.safe_load((PROMETHEUS / "tests" / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    missing = {r["alert"] for _, r in alerts()} - fired
    assert not missing, f"alerts without a promtool test that makes them fire: {missing}"


@pytest.mark.parametrize("group,rule", alerts(), ids=lambda v: v if isinstance(v, str) else "")
def test_alert_follows_the_house_rules(group, rule):
    assert group in ALERT_GROUPS
    assert re.fullmatch(r"[a-z][a-z0-9_]*", rule["alert"]), "alert names are snake_case"
    assert rule.get("for"), "every alert waits a `for:` before it fires"
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    summary = rule["annotations"]["summary"]
    assert "{{ $labels." in summary or "{{ $value" in summary, "summaries name what is affected"


def test_alert_groups_are_the_ones_admins_expect():
    assert {g for g, _ in alerts()} == ALERT_GROUPS


def test_make_up_runs_prometheus_and_exporters_on_the_rendered_config():
    from scripts.render_prometheus import ports_from_env

    ports = ports_from_env(
        {"API_PORT": "5050", "NODE_EXPORTER_PORT": "", "PROMETHEUS_PORT": "9099"}
    )
    assert ports[5000] == 5050 and ports[9100] == 9100 and ports[9090] == 9099
    procfile = (PROMETHEUS.parent.parent / "Procfile").read_text()
    assert "--config.file=var/prometheus/prometheus.yml" in procfile
    assert (
        "prometheus-node-exporter --web.listen-address=127.0.0.1:${NODE_EXPORTER_PORT}" in procfile
    )
    up = (PROMETHEUS.parent.parent / "scripts" / "up.sh").read_text()
    assert "scripts/render_prometheus.py var/prometheus/prometheus.yml" in up
    assert "Prometheus  http://127.0.0.1:${PROMETHEUS_PORT}" in up
