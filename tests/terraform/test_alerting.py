"""Alerts reach someone: a real Prometheus with a firing rule, using the production
prometheus.yml's `alerting` section, delivers to a real Alertmanager running the config the
monitoring bootstrap renders (receiver: the stack's SNS topic), which publishes to the topic
in moto, where an SQS queue subscribed to it receives the alert."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
import requests
import yaml

from scripts.render_prometheus import render_production
from tests.terraform.conftest import MOTO_VARS, free_port

pytestmark = [pytest.mark.terraform, pytest.mark.timeout(240)]

CONFIG = "/etc/prometheus/alertmanager.yml"

FIRING_RULE = """groups:
  - name: delivery_check
    rules:
      - alert: delivery_check
        expr: vector(1)
        labels:
          severity: info
        annotations:
          summary: "A test alert that always fires"
"""


def tool(name):
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed: run `make system` (Debian prometheus-alertmanager)")
    return exe


def wait_ready(url, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited: {proc.stderr.read()[-2000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{what} not ready at {url}")


def test_rendered_alertmanager_config_is_valid(files, outputs, tmp_path):
    mode, owner, text = files["monitoring"][CONFIG]
    assert (mode, owner) == ("0640", "root:prometheus")
    config = yaml.safe_load(text)
    sns = config["receivers"][0]["sns_configs"][0]
    assert sns["topic_arn"] == outputs["alert_topic_arn"]
    assert config["route"]["receiver"] == config["receivers"][0]["name"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    proc = subprocess.run(
        [tool("amtool"), "check-config", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_firing_rule_reaches_the_alert_topic(files, outputs, moto_stack, boto, tmp_path):
    _, aws = moto_stack
    sqs, sns = boto("sqs"), boto("sns")
    queue = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=outputs["alert_topic_arn"], Protocol="sqs", Endpoint=queue_arn)

    # Alertmanager with the bootstrap's config; only the AWS endpoint and keys differ (on
    # the box: the regional SNS endpoint and the instance role's credentials).
    config = yaml.safe_load(files["monitoring"][CONFIG][2])
    for receiver in config["receivers"]:
        for sns_config in receiver.get("sns_configs", []):
            sns_config["api_url"] = aws["endpoint_url"]
            sns_config["sigv4"].update(access_key="testing", secret_key="testing")
    config["route"].update(group_wait="0s", group_interval="1s")
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(config))
    am_port = free_port()
    alertmanager = subprocess.Popen(
        [
            tool("prometheus-alertmanager"),
            f"--config.file={am_config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Prometheus with the production file's alerting section, aimed at that Alertmanager.
    production = yaml.safe_load(render_production("pneumonia"))
    alerting = production["alerting"]
    assert alerting["alertmanagers"][0]["static_configs"][0]["targets"] == ["localhost:9093"]
    alerting["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    (tmp_path / "rules.yml").write_text(FIRING_RULE)
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": alerting,
            }
        )
    )
    prom_port = free_port()
    prometheus = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            # An alert that fires before Alertmanager is discovered is dropped; resend soon.
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{am_port}/-/ready", alertmanager, "alertmanager")
        wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, "prometheus")

        deadline = time.monotonic() + 60
        received, delivered = [], []
        while time.monotonic() < deadline and not (received and delivered):
            alerts = requests.get(f"http://127.0.0.1:{am_port}/api/v2/alerts", timeout=5).json()
            received = [a for a in alerts if a["labels"]["alertname"] == "delivery_check"]
            for message in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                body = json.loads(message["Body"])
                if "delivery_check" in body.get("Message", "") + body.get("Subject", ""):
                    delivered.append(body)
        assert received, "Alertmanager never received the firing alert from Prometheus"
        assert received[0]["labels"]["severity"] == "info"
        assert delivered, "Alertmanager did not publish the alert to the SNS topic"
        assert delivered[0]["TopicArn"] == outputs["alert_topic_arn"]
        assert MOTO_VARS["region"] in outputs["alert_topic_arn"]
    finally:
        for proc in (prometheus, alertmanager):
            proc.terminate()
            proc.wait(timeout=10)
