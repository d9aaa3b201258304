"""Grafana has no package here: check the provisioning and the dashboards' JSON structure,
and that every panel's PromQL parses (through promtool, with the variables filled)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from scripts.build_dashboards import render
from tests.monitoring.support import DASHBOARDS, GRAFANA, fill, load, panels, promtool, queries

PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "table"}
EXPECTED = {
    "pneumonia-service": "Service",
    "pneumonia-hosts": "Hosts",
    "pneumonia-training": "Training",
}


def datasource():
    config = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (ds,) = config["datasources"]
    return ds


def test_the_three_dashboards_have_fixed_unique_uids():
    found = {load(p)["uid"]: load(p)["title"] for p in DASHBOARDS}
    assert found == EXPECTED


def test_committed_json_is_what_the_generator_writes():
    committed = {p.name: p.read_text() for p in DASHBOARDS}
    assert committed == render(), "run `python scripts/build_dashboards.py` and commit"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path):
    d = load(path)
    ds_uid = datasource()["uid"]
    assert d["schemaVersion"] >= 36 and d["editable"] is False and d["tags"] == ["pneumonia"]
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in panels(d):
        assert p["type"] in PANEL_TYPES, p["type"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        if p["type"] == "row":
            continue
        assert p["title"] and p["description"], "every panel says what it shows"
        assert p["datasource"] == {"type": "prometheus", "uid": ds_uid}
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip()
    for v in d["templating"]["list"]:
        assert v["datasource"] == {"type": "prometheus", "uid": ds_uid}
        assert v["query"]["query"].startswith("label_values(")
    used = {m for _, _, _, e in queries() for m in re.findall(r"\$(\w+)", e)} - {"__rate_interval"}
    declared = {v["name"] for p in DASHBOARDS for v in load(p)["templating"]["list"]}
    assert used <= declared, f"variables used but not declared: {used - declared}"


def test_every_panel_query_parses(tmp_path):
    """promtool parses each query as a recording rule: a typo fails here, offline."""
    rules = [
        {
            "record": f"panel:{uid.replace('-', '_')}:{i}",
            "expr": fill(expr, {"role": ".*", "instance": ".*"}),
        }
        for i, (uid, _title, _ref, expr) in enumerate(queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_provisioning_points_at_the_dashboards_and_one_datasource():
    ds = datasource()
    assert ds["type"] == "prometheus" and ds["isDefault"] and ds["uid"] == "prometheus"
    assert ds["url"] == "http://localhost:9090" and ds["editable"] is False
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "pneumonia.yml").read_text()
    )["providers"]
    (provider,) = providers
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana")
    assert provider["allowUiUpdates"] is False


def test_grafana_admin_password_comes_from_the_environment_never_admin():
    ini = (GRAFANA / "grafana.ini").read_text()
    (line,) = [ln for ln in ini.splitlines() if ln.startswith("admin_password")]
    assert line.split("=", 1)[1].strip() == "$__env{GF_SECURITY_ADMIN_PASSWORD}"
    assert re.search(r"^\[auth\.anonymous\]\nenabled = false", ini, re.M)
    assert re.search(r"^allow_sign_up = false", ini, re.M)
