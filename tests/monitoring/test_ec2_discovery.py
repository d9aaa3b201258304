"""The production prometheus.yml, rendered for a project as the monitoring box renders it
(scripts/render_prometheus.py --production), run by a real Prometheus whose EC2 discovery
talks to a moto EC2: a project that is not called `pneumonia` finds its own instances, by
Role, on each job's port, and nothing of another project."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
import yaml

from scripts.render_prometheus import render_production
from tests.monitoring.aws_standin import CREDENTIALS, REGION, client, free_port, moto_server
from tests.monitoring.support import binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PORTS = {"node": 9100, "api": 5000, "ui": 5001, "worker": 9101, "redis": 9121, "nginx": 9113}
ROLES = ["app", "ui", "nginx", "monitoring", "ml"]


@pytest.fixture(scope="module")
def ec2_endpoint(tmp_path_factory):
    """moto holding the instances of two projects: `radiology` (the one under test, one box
    per role) and `pneumonia` (an app box that must not be found)."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        ec2 = client(endpoint, "ec2")
        image = ec2.describe_images()["Images"][0]["ImageId"]

        def launch(project, role, instance_type="t3.micro"):
            tags = [
                {"Key": "Project", "Value": project},
                {"Key": "Role", "Value": role},
                {"Key": "Name", "Value": f"{project}-{role}"},
            ]
            inst = ec2.run_instances(
                ImageId=image,
                MinCount=1,
                MaxCount=1,
                InstanceType=instance_type,
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )["Instances"][0]
            return inst["InstanceId"], inst["PrivateIpAddress"]

        boxes = {role: launch("radiology", role) for role in ROLES}
        other = launch("pneumonia", "app")
        yield endpoint, boxes, other


def run_prometheus(tmp_path, project, endpoint):
    """A real Prometheus with the production config rendered for ``project``, its EC2
    discovery pointed at ``endpoint``. Returns (process, base URL)."""
    config = yaml.safe_load(render_production(project))
    for job in config["scrape_configs"]:
        for sd in job.get("ec2_sd_configs", []):
            sd.update(
                endpoint=endpoint,
                region=REGION,
                access_key=CREDENTIALS["aws_access_key_id"],
                secret_key=CREDENTIALS["aws_secret_access_key"],
                refresh_interval="1s",
            )
    config.pop("rule_files", None)  # promtool covers them (test_rules.py)
    config.pop("alerting", None)  # Alertmanager has its own test
    path = tmp_path / f"prometheus-{project}.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary("prometheus", "prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / f'tsdb-{project}'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def discovered(base, want_jobs, timeout=60):
    """(job, role, address) of every active EC2-discovered target, once ``want_jobs`` all
    have one (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    found = set()
    while time.monotonic() < deadline:
        try:
            targets = requests.get(base + "/api/v1/targets", timeout=5).json()["data"]
        except (requests.ConnectionError, ValueError):
            time.sleep(0.5)
            continue
        found = {
            (t["labels"]["job"], t["labels"].get("role"), t["labels"]["instance"], t["scrapeUrl"])
            for t in targets["activeTargets"]
            if t["labels"]["job"] != "prometheus"
        }
        if want_jobs <= {f[0] for f in found}:
            return found
        time.sleep(0.5)
    return found


def test_non_default_project_finds_its_own_targets(ec2_endpoint, tmp_path):
    endpoint, boxes, other = ec2_endpoint
    proc, base = run_prometheus(tmp_path, "radiology", endpoint)
    try:
        found = discovered(base, set(PORTS))
    finally:
        proc.terminate()
        err = proc.communicate(timeout=10)[1]
    assert {f[0] for f in found} >= set(PORTS), err[-2000:]
    expected = {("node", role) for role in ROLES} | {
        ("api", "app"),
        ("ui", "ui"),
        ("worker", "app"),
        ("worker", "ml"),
        ("redis", "app"),
        ("nginx", "nginx"),
    }
    assert {(job, role) for job, role, _, _ in found} == expected
    for job, role, instance, url in found:
        box_id, ip = boxes[role]
        assert url == f"http://{ip}:{PORTS[job]}/metrics", (job, role, url)
        assert instance == f"radiology-{role}/{box_id}"
    assert not [f for f in found if other[1] in f[3]], "another project's box was discovered"


def test_default_project_does_not_find_another_projects_boxes(ec2_endpoint, tmp_path):
    """The same file rendered for `pneumonia` finds only that project's one app box: the tag
    filter is what selects, so an unrendered file finds nothing of `radiology`."""
    endpoint, _, other = ec2_endpoint
    proc, base = run_prometheus(tmp_path, "pneumonia", endpoint)
    try:
        found = discovered(base, {"node", "api", "worker", "redis"})
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert {(job, role) for job, role, _, _ in found} == {
        ("node", "app"),
        ("api", "app"),
        ("worker", "app"),
        ("redis", "app"),
    }
    assert all(other[1] in url for *_, url in found)


@pytest.mark.parametrize("bad", ["Pneumonia", "x", "has space", "a" * 30])
def test_render_refuses_a_project_terraform_would_refuse(bad):
    with pytest.raises(ValueError, match="lowercase"):
        render_production(bad)


def test_render_refuses_a_template_without_exactly_one_filter(tmp_path):
    template = tmp_path / "prometheus.yml"
    template.write_text("scrape_configs: []\n")
    with pytest.raises(ValueError, match="appears 0 times"):
        render_production("radiology", template)
