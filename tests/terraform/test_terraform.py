"""terraform/ proven offline: formatting, validation, plan assertions with a mocked
provider, checkov, an apply/re-plan/destroy cycle against moto, and every bootstrap script
rendered and checked with shellcheck, with the configs it writes checked by their tools."""

import base64
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.terraform.conftest import ROLES, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.terraform


# ---------------------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------------------


def test_fmt(tf):
    """Every .tf and .tftest.hcl file is in canonical format."""
    tf.run("fmt", "-check", "-recursive", "-diff", "-no-color")


def test_validate(tf):
    """The configuration is valid for the pinned provider."""
    tf.run("validate", "-no-color")


def test_terraform_test_mocked_plan(tf):
    """terraform test (tests/plan.tftest.hcl) passes with the mocked provider."""
    out = tf.run("test", "-no-color", timeout=300).stdout
    assert re.search(r"Success! \d+ passed, 0 failed", out), out


def test_no_state_or_secrets_committed():
    """State and tfvars are git-ignored; the lock file is committed."""
    tracked = subprocess.run(
        ["git", "ls-files", "terraform"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "terraform/.terraform.lock.hcl" in tracked
    assert not [f for f in tracked if f.endswith((".tfstate", ".tfvars")) or "/.terraform/" in f]


def test_checkov_passes():
    """checkov finds no failed check; every skip carries its reason inline."""
    script = ROOT / "scripts" / "checkov.sh"
    proc = subprocess.run(
        [
            "bash",
            str(script),
            "--directory",
            str(ROOT / "terraform"),
            "--framework",
            "terraform",
            "--skip-download",
            "--skip-path",
            "tests",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip().startswith(("{", "[")):
        pytest.fail(f"checkov did not run: {proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}"
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    skipped = report["results"].get("skipped_checks", [])
    no_reason = [
        c["check_id"]
        for c in skipped
        if len((c["check_result"].get("suppress_comment") or "").strip()) < 15
    ]
    assert not no_reason, f"skips without a reason: {no_reason}"


# ---------------------------------------------------------------------------------------
# Apply against moto
# ---------------------------------------------------------------------------------------


def by_role(ec2):
    """Running instances of the stack, keyed by their Role tag."""
    found = {}
    for res in ec2.describe_instances(
        Filters=[
            {"Name": "tag:Project", "Values": ["pneumonia"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]:
        for inst in res["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            found[tags["Role"]] = inst
    return found


def test_apply_network(boto, outputs):
    """VPC, subnets, NAT, flow logs and an emptied default security group exist."""
    ec2 = boto("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[outputs["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    cidrs = {
        s["CidrBlock"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    }
    assert cidrs == {"10.0.1.0/24", "10.0.2.0/24", "10.0.4.0/24"}
    endpoints = {
        e["ServiceName"].rsplit(".", 1)[1]: e["VpcEndpointType"]
        for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "VpcEndpoints"
        ]
    }
    assert endpoints == {
        "s3": "Gateway",
        **dict.fromkeys(["ssm", "ssmmessages", "ec2messages", "kms", "logs"], "Interface"),
    }
    assert ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "NatGateways"
    ]
    assert ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])[
        "FlowLogs"
    ]
    default = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"][0]
    assert default["IpPermissions"] == [] and default["IpPermissionsEgress"] == []


def test_apply_instances(boto, outputs):
    """Five hardened instances; only nginx is publicly addressable."""
    instances = by_role(boto("ec2"))
    assert set(instances) == {"nginx", "monitoring", "ui", "app", "ml"}
    assert outputs["instance_ids"] == {r: i["InstanceId"] for r, i in instances.items()}
    for role, inst in instances.items():
        assert inst["MetadataOptions"]["HttpTokens"] == "required", role
        assert inst["IamInstanceProfile"]["Arn"].endswith(f"pneumonia-{role}"), role
        assert inst["PrivateIpAddress"] == outputs["private_ips"][role]
        groups = [g["GroupName"] for ni in inst["NetworkInterfaces"] for g in ni["Groups"]]
        assert groups == [f"pneumonia-{role}"], role
        if role != "nginx":
            assert not inst.get("PublicIpAddress"), f"{role} must not have a public IP"
    assert instances["app"]["InstanceType"] == "t3.medium"
    assert instances["ml"]["InstanceType"] == "g5.xlarge"  # the default, offered in moto's zone


def test_apply_security_groups(security_groups):
    """Redis is reachable from the ml group only; Grafana from nginx only, nothing public."""
    groups = security_groups
    app = groups["pneumonia-app"]
    redis = [p for p in app["IpPermissions"] if p.get("FromPort") == 6379]
    assert len(redis) == 1 and not redis[0]["IpRanges"]
    assert [p["GroupId"] for p in redis[0]["UserIdGroupPairs"]] == [
        groups["pneumonia-ml"]["GroupId"]
    ]
    grafana = [
        p for p in groups["pneumonia-monitoring"]["IpPermissions"] if p.get("FromPort") == 3000
    ]
    assert [g["GroupId"] for p in grafana for g in p["UserIdGroupPairs"]] == [
        groups["pneumonia-nginx"]["GroupId"]
    ]
    assert not [p for p in grafana if p["IpRanges"]]
    monitoring_ports = {p.get("FromPort") for p in groups["pneumonia-monitoring"]["IpPermissions"]}
    assert not monitoring_ports & {9090, 9093}, "Prometheus and Alertmanager have no open port"
    for g in groups.values():
        assert not [p for p in g["IpPermissions"] if p.get("FromPort") == 22], g["GroupName"]


def test_apply_buckets(boto, outputs):
    """The model bucket is versioned, KMS-encrypted, private and TLS-only."""
    s3 = boto("s3")
    bucket = outputs["model_bucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(
        s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s)
        for s in policy["Statement"]
    )
    assert s3.get_bucket_versioning(Bucket=outputs["access_log_bucket"])["Status"] == "Enabled"


def test_apply_secrets_not_in_state(boto, outputs, moto_stack):
    """Generated secrets are SecureStrings in SSM and appear in no state or output."""
    tf, _ = moto_stack
    ssm = boto("ssm")
    state = tf.run("state", "pull").stdout
    for name in outputs["secret_parameters"].values():
        param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        assert param["Type"] == "SecureString"
        assert re.fullmatch(r"[0-9a-f]{64}", param["Value"]), name
        assert param["Value"] not in state, f"{name} leaked into the state"


def test_apply_iam_least_privilege(boto):
    """ml may write models, app only read; only monitoring may describe instances."""
    iam = boto("iam")

    def actions(role):
        names = iam.list_role_policies(RoleName=f"pneumonia-{role}")["PolicyNames"]
        docs = [
            iam.get_role_policy(RoleName=f"pneumonia-{role}", PolicyName=n)["PolicyDocument"]
            for n in names
        ]
        return {
            a
            for d in docs
            for s in d["Statement"]
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }

    assert "s3:PutObject" in actions("ml")
    assert "s3:GetObject" in actions("app") and "s3:PutObject" not in actions("app")
    assert "ec2:DescribeInstances" in actions("monitoring")
    assert not {"s3:PutObject", "s3:ListBucket"} & actions("ui")
    for role in ["nginx", "monitoring", "ui", "app", "ml"]:
        attached = iam.list_attached_role_policies(RoleName=f"pneumonia-{role}")["AttachedPolicies"]
        assert {p["PolicyName"] for p in attached} == {"pneumonia-ssm-session"}, role


def test_replan_shows_no_changes(moto_stack):
    """A second plan right after apply has nothing to do."""
    tf, _ = moto_stack
    proc = tf.run("plan", "-detailed-exitcode", "-no-color", check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------
# Bootstrap scripts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_user_data_shellcheck(user_data, role, tmp_path):
    """Each rendered bootstrap is strict bash that shellcheck accepts, under EC2's 16 KiB
    once gzipped and base64-encoded (as modules/instance sends it)."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make system)")
    script = user_data[role]
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert len(base64.b64encode(gzip.compress(script.encode()))) < 16384
    assert 'main "$@"' in script
    path = tmp_path / f"{role}.sh"
    path.write_text(script)
    proc = subprocess.run(
        ["shellcheck", "-s", "bash", "-S", "style", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


def test_written_scripts_shellcheck(files, tmp_path):
    """Every script a bootstrap writes (the GPU box's idle stop and GPU check...) is strict
    bash that shellcheck accepts, as written on the box."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make system)")
    scripts = {
        f"{role}:{path}": content
        for role, written in files.items()
        for path, (_, _, content) in written.items()
        if content.startswith("#!/usr/bin/env bash\n")
    }
    assert {
        "ml:/usr/local/sbin/pneumonia-idle-stop",
        "ml:/usr/local/sbin/pneumonia-gpu-check",
    } <= set(scripts)
    for name, content in scripts.items():
        path = tmp_path / name.replace("/", "_").replace(":", "_")
        path.write_text(content)
        proc = subprocess.run(
            ["shellcheck", "-s", "bash", "-S", "style", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{name}:\n{proc.stdout}"


@pytest.mark.parametrize("role", ROLES)
def test_user_data_carries_no_secret(user_data, role):
    """Only parameter names travel in user_data, never a secret or a key."""
    script = user_data[role]
    assert 'readonly PARAMETER_PATH="/pneumonia"' in script
    assert not re.search(r"(password|token|secret)\w*=[\"']?[0-9a-f]{32,}", script, re.I)
    assert "BEGIN" not in script and "PRIVATE KEY" not in script


def test_user_data_uses_names_not_addresses(user_data, outputs):
    """Each tier finds its neighbours by their private-zone name; no bootstrap holds an
    address of another box, so replacing one box changes no other box's user_data."""
    names = outputs["hostnames"]
    assert names["app"] == "app.pneumonia.internal"
    assert f'readonly API_URL="http://{names["app"]}:5000"' in user_data["ui"]
    assert f'readonly UI_UPSTREAM="{names["ui"]}:5001"' in user_data["nginx"]
    assert f'readonly GRAFANA_UPSTREAM="{names["monitoring"]}:3000"' in user_data["nginx"]
    assert f'readonly REDIS_HOST="{names["app"]}"' in user_data["ml"]
    assert f'readonly MODEL_STORE="s3://{outputs["model_bucket"]}/models"' in user_data["app"]
    for role, script in user_data.items():
        for other, ip in outputs["private_ips"].items():
            assert ip not in script, f"{role}'s bootstrap holds {other}'s address {ip}"
        assert "repo_ref" not in script.lower() and "git " not in script, role


@pytest.mark.parametrize("role", ["app", "ui", "ml", "worker"])
def test_env_file(files, role):
    """The env file is 0640 root:pneumonia and carries what the services read."""
    mode, owner, content = files[role]["$ENV_FILE"]
    assert (mode, owner) == ("0640", "root:$SERVICE_USER")
    env = dict(line.split("=", 1) for line in content.splitlines() if line)
    assert env["APP_ENV"] == "production"
    needed = {
        "app": {"REDIS_URL", "API_TOKEN", "MODEL_STORE", "WORKER_METRICS_PORT"},
        "ui": {"API_URL", "API_TOKEN", "SECRET_KEY"},
        "ml": {"REDIS_URL", "MODEL_STORE", "DATA_STORE", "WORKER_METRICS_PORT"},
        "worker": {"REDIS_URL", "MODEL_STORE", "WORKER_METRICS_PORT"},
    }[role]
    assert needed <= set(env)
    if "REDIS_URL" in env:
        host = "127.0.0.1" if role == "app" else r"app\.pneumonia\.internal"
        assert re.fullmatch(rf"redis://:a{{64}}@{host}:6379/0", env["REDIS_URL"]), env["REDIS_URL"]


def test_training_textfile_is_writable_by_the_trainer(files, user_data):
    """The trainer (the unit's user) owns the node_exporter textfile directory its gauges go
    to; the Debian default belongs to prometheus, where the trainer could not write."""
    env = dict(ln.split("=", 1) for ln in files["ml"]["$ENV_FILE"][2].splitlines() if ln)
    directory = os.path.dirname(env["TRAINING_METRICS_TEXTFILE"])
    assert f'readonly TEXTFILE_DIR="{directory}"' in user_data["ml"]
    assert 'install -d -m 0775 -o "$SERVICE_USER" -g prometheus "$TEXTFILE_DIR"' in user_data["ml"]
    assert "User=pneumonia" in units(files)["pneumonia-train.service"]


def test_redis_conf_runs_and_requires_auth(files, tmp_path):
    """The app's redis.conf starts a real Redis that is protected and demands the password."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (make system)")
    mode, owner, conf = files["app"]["/etc/redis/redis.conf"]
    assert (mode, owner) == ("0640", "redis:redis")
    for line in [
        "protected-mode yes",
        "appendonly yes",
        f"requirepass {'a' * 64}",
        "bind 127.0.0.1 127.0.0.2",
    ]:
        assert line in conf.splitlines()
    path = tmp_path / "redis.conf"
    path.write_text(conf)
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            str(path),
            "--port",
            str(port),
            "--dir",
            str(tmp_path),
            "--logfile",
            "",
            "--pidfile",
            str(tmp_path / "redis.pid"),
            "--supervised",
            "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        cli = ["redis-cli", "-h", "127.0.0.2", "-p", str(port)]
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.2", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
        noauth = subprocess.run([*cli, "PING"], capture_output=True, text=True).stdout
        assert "NOAUTH" in noauth
        env = {**os.environ, "REDISCLI_AUTH": "a" * 64}
        assert (
            subprocess.run([*cli, "PING"], capture_output=True, text=True, env=env).stdout.strip()
            == "PONG"
        )
        aof = subprocess.run(
            [*cli, "CONFIG", "GET", "appendonly"], capture_output=True, text=True, env=env
        ).stdout.split()
        assert aof == ["appendonly", "yes"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def units(files):
    """All systemd unit files the bootstraps write: {name: content}."""
    return {
        Path(p).name: c
        for role in files.values()
        for p, (_, _, c) in role.items()
        if p.startswith("/etc/systemd/system/")
        and p.endswith((".service", ".timer"))
        and ".d/" not in p
    }


def test_systemd_units_verify(files, tmp_path):
    """systemd-analyze verify accepts every unit (executables stubbed in a temp root)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not available")
    found = units(files)
    assert {
        "pneumonia-api.service",
        "pneumonia-ui.service",
        "pneumonia-worker.service",
        "pneumonia-train.service",
        "pneumonia-idle-stop.service",
        "pneumonia-idle-stop.timer",
        "pneumonia-gpu-check.service",
        "pneumonia-boot-resume.service",
    } <= set(found)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for name, content in found.items():
        # Point the absolute executables at stubs so verify checks the unit, not the host.
        for exe in set(re.findall(r"^Exec\w+=[+\-@!]*(/\S+)", content, re.M)):
            stub = tmp_path / "bin" / exe.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
            content = content.replace(exe, str(stub))
        (unit_dir / name).write_text(content)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in unit_dir.iterdir())],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [
        line
        for line in proc.stderr.splitlines()
        if "pneumonia" in line and "is not executable" not in line and "Failed to" not in line
    ]
    assert proc.returncode == 0 or not problems, proc.stderr


def test_units_run_services_unprivileged(files):
    """Long-running application units run as the service user, hardened."""
    for name, content in units(files).items():
        if name.startswith(
            ("pneumonia-idle-stop", "pneumonia-upstream-watch", "pneumonia-boot-resume")
        ):
            continue  # power the machine off, reload nginx, finish the bootstrap: root by design
        assert "User=pneumonia" in content, name
        assert "NoNewPrivileges=yes" in content, name
        assert "EnvironmentFile=/etc/pneumonia/pneumonia.env" in content, name


def test_ml_training_unit_runs_the_gpu_recipe(files):
    """The GPU box trains with the named recipe model/README.md documents, nothing else."""
    unit = units(files)["pneumonia-train.service"]
    (start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    argv = start.split()
    assert argv[1:5] == ["-m", "model.train", "--recipe", "gpu"], start
    assert not {"--weights", "--img-size", "--allow-cpu", "--max-minutes"} & set(argv), start


def test_ml_training_unit_syncs_the_data_set_before_training_on_it(files, outputs):
    """Before the gpu recipe starts, the unit syncs the data set from terraform's data store
    into the folder it trains on, checking each file against the manifest; a bad file fails
    the ExecStartPre, and systemd then never runs ExecStart (tests/terraform/test_datasets.py
    runs this very command)."""
    unit = units(files)["pneumonia-train.service"]
    (pre,) = re.findall(r"^ExecStartPre=(.*)$", unit, re.M)
    (start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    sync = pre.split()
    assert sync[0] == start.split()[0] == "/opt/pneumonia/app/venv/bin/python"
    assert sync[1:] == [
        "-m",
        "model.datasets",
        "sync",
        outputs["dataset_store"],
        "/data/chest_xray",
        "--delete",
    ]
    assert start.split()[5:7] == ["--data", "/data/chest_xray"], start
    assert "AssertPathIsDirectory=/data" in unit and "ConditionPath" not in unit
    env = dict(ln.split("=", 1) for ln in files["ml"]["$ENV_FILE"][2].splitlines() if ln)
    assert env["DATA_STORE"] == outputs["dataset_store"]


def test_grafana_provisioning_glue(files):
    """Grafana reads its admin password from a private env file and the repo's provisioning."""
    mode, owner, env = files["monitoring"]["/etc/pneumonia/grafana.env"]
    assert (mode, owner) == ("0640", "root:grafana")
    settings = dict(line.split("=", 1) for line in env.splitlines() if line)
    assert settings["GF_SECURITY_ADMIN_PASSWORD"] == "d" * 64
    assert settings["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert settings["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert settings["GF_PATHS_PROVISIONING"] == "/etc/grafana/provisioning"
    # Served by nginx under https://<site>/grafana/, never on a port of its own.
    assert settings["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert settings["GF_SERVER_ROOT_URL"].endswith("/grafana/")
    dropin = files["monitoring"]["/etc/systemd/system/grafana-server.service.d/pneumonia.conf"][2]
    assert "EnvironmentFile=/etc/pneumonia/grafana.env" in dropin


def nginx_site(user_data, files, tmp_path, real_ip_from="", admin_cidrs="198.51.100.10/32"):
    """The nginx box's config in ``tmp_path``, as its bootstrap writes it: the repo template
    rendered with the bootstrap's envsubst list, the stub_status server, and the snippets of
    its own write_snippets() (run for real, writing under ``tmp_path``). Listens on free
    loopback ports; the UI and Grafana upstreams point at closed local ports. Returns
    (nginx.conf, https port)."""
    template = ROOT / "nginx" / "pneumonia.conf.template"
    if shutil.which("nginx") is None or shutil.which("envsubst") is None:
        pytest.skip("nginx/envsubst not installed (make system)")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=test", "-keyout", str(tmp_path / "key.pem")),
            *("-out", str(tmp_path / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    https_port = free_port()
    env = {
        **os.environ,
        "LISTEN_HTTP": str(free_port()),
        "LISTEN_HTTPS": str(https_port),
        "UI_UPSTREAM": f"127.0.0.1:{free_port()}",
        "SERVER_NAME": "_",
        "TLS_CERT": str(tmp_path / "cert.pem"),
        "TLS_KEY": str(tmp_path / "key.pem"),
        "MONITORING_CIDR": "10.0.2.0/24",
        "MAX_BODY": "30m",
        "ACCESS_LOG": str(tmp_path / "access.log"),
    }
    shell_format = (
        "${LISTEN_HTTP} ${LISTEN_HTTPS} ${UI_UPSTREAM} ${SERVER_NAME} ${TLS_CERT} ${TLS_KEY} "
        "${MONITORING_CIDR} ${MAX_BODY} ${ACCESS_LOG}"
    )
    assert shell_format in user_data["nginx"]
    site = subprocess.run(
        ["envsubst", shell_format],
        input=template.read_text(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stub = files["nginx"]["/etc/nginx/conf.d/stub-status.conf"][2]
    stub = stub.replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{free_port()}")
    # write_snippets() itself, with its inputs, writing below tmp_path instead of /etc.
    functions = "\n".join(
        re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", user_data["nginx"], re.M | re.S)[0]
        for name in ("write_snippets",)
    )
    subprocess.run(
        [
            "bash",
            "-c",
            "set -euo pipefail\n"
            'write_file() { mkdir -p "$ROOT$(dirname "$1")"; cat >"$ROOT$1"; }\n'
            f"{functions}\nwrite_snippets\n",
        ],
        env={
            **os.environ,
            "ROOT": str(tmp_path),
            "REAL_IP_FROM": real_ip_from,
            "ADMIN_CIDRS": admin_cidrs,
            "GRAFANA_UPSTREAM": f"127.0.0.1:{free_port()}",
        },
        check=True,
    )
    # The template includes pneumonia.d/*.conf relative to nginx.conf's directory.
    shutil.copytree(tmp_path / "etc" / "nginx" / "pneumonia.d", tmp_path / "pneumonia.d")
    real_ip = (tmp_path / "etc" / "nginx" / "conf.d" / "real-ip.conf").read_text()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {tmp_path};\n"
        f"  proxy_temp_path {tmp_path};\n"
        f"{real_ip}\n{site}\n{stub}\n}}\n"
    )
    return conf, https_port


def test_nginx_config(files, user_data, tmp_path):
    """The repo's nginx template, rendered as the bootstrap renders it, with the bootstrap's
    stub_status server and snippets (real_ip behind the ALB, Grafana), passes nginx -t."""
    conf, _ = nginx_site(user_data, files, tmp_path, real_ip_from="10.0.1.0/24 10.0.3.0/24")
    assert "set_real_ip_from 10.0.3.0/24;" in conf.read_text()
    grafana = (tmp_path / "pneumonia.d" / "grafana.conf").read_text()
    assert "allow 198.51.100.10/32;" in grafana and "deny all;" in grafana
    proc = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def live_nginx(files, user_data, tmp_path):
    """Start nginx with the box's config; yields a function (real_ip_from) -> https URL."""
    procs = []

    def start(real_ip_from):
        root = tmp_path / f"nginx-{len(procs)}"
        root.mkdir()
        conf, port = nginx_site(user_data, files, root, real_ip_from=real_ip_from)
        procs.append(
            subprocess.Popen(
                ["nginx", "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
                stderr=subprocess.PIPE,
            )
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return f"https://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def upload_statuses(url, clients):
    """Statuses of uploads sent all at once through the ALB, one per entry of ``clients``
    (its X-Forwarded-For). nginx admits one and queues a burst of 20 per address at once;
    beyond that it answers 429."""
    import requests

    barrier = threading.Barrier(len(clients))

    def one(client):
        with requests.Session() as session:  # verify=False per call: a CA bundle in the
            # environment would override a session-wide setting
            session.get(url + "/nginx_status", verify=False, timeout=30)  # handshake first
            barrier.wait(timeout=60)  # then every upload at the same moment
            headers = {"X-Forwarded-For": client}
            return session.post(
                url + "/upload", headers=headers, verify=False, timeout=30
            ).status_code

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(one, clients))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_behind_the_alb_each_client_has_its_own_rate_limit(live_nginx):
    """Two clients behind the ALB sending 20 uploads each at once: with the ALB's subnets
    trusted (real_ip) each has its own limit and none is refused, while one client sending
    40 is; without real_ip both share the ALB's address, so one limit, and some are refused.
    The UI is down here, so an admitted upload answers 502."""
    two_clients = ["203.0.113.7"] * 20 + ["203.0.113.8"] * 20
    url = live_nginx("127.0.0.0/8")  # the "ALB" is loopback in this test
    assert 429 not in upload_statuses(url, two_clients)
    assert 429 in upload_statuses(url, ["203.0.113.9"] * 50)
    shared = live_nginx("")  # no real_ip: the behaviour before
    assert 429 in upload_statuses(shared, two_clients)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_grafana_only_for_admin_cidrs(live_nginx):
    """/grafana/ answers the administrators' addresses only (nginx then proxies: 502 with
    Grafana down here), everyone else gets 403."""
    import requests

    url = live_nginx("127.0.0.0/8")

    def status(client):
        headers = {"X-Forwarded-For": client}
        return requests.get(url + "/grafana/", headers=headers, verify=False, timeout=10)

    admin, other = status("198.51.100.10"), status("203.0.113.7")
    assert (admin.status_code, other.status_code) == (502, 403)


def test_prometheus_config(tmp_path):
    """The repo's production prometheus.yml (EC2 discovery, no IPs) passes promtool."""
    src = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
    if not src.exists():
        pytest.skip(
            "monitoring/prometheus/prometheus.yml is not in this branch yet (comes with main)"
        )
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (make system)")
    text = src.read_text()
    assert "ec2_sd_configs" in text
    assert not re.search(r"\b10\.\d+\.\d+\.\d+:\d+", text), "no hard-coded private IPs"
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(text)
    # On EC2, Prometheus takes the region from the instance metadata; off EC2 promtool
    # refuses a blank one, so the copy checked here names a region.
    for job in config.get("scrape_configs", []):
        for sd in job.get("ec2_sd_configs", []):
            sd.setdefault("region", "eu-west-1")
    # The bootstrap installs the config as /etc/prometheus/prometheus.yml and the rules
    # beside it in rules/: reproduce that layout.
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    rules = src.parent / "rules"
    if rules.is_dir():
        shutil.copytree(rules, tmp_path / "rules")
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
