"""terraform/ proven offline: formatting, validation, plan assertions with a mocked
provider, checkov, an apply/re-plan/destroy cycle against moto, and every bootstrap script
rendered and checked with shellcheck, with the configs it writes checked by their tools."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.terraform

ROLES = ["app", "ui", "nginx", "monitoring", "ml", "worker"]

# Values standing in for what the bootstrap learns at boot (IMDS, SSM).
BOOT_VALUES = {
    "PRIVATE_IP": "127.0.0.2",
    "REDIS_PASSWORD": "a" * 64,
    "API_TOKEN": "b" * 64,
    "SECRET_KEY": "c" * 64,
    "GRAFANA_PASSWORD": "d" * 64,
    "UI_REDIS_PASSWORD": "e" * 64,
}

HEREDOC = re.compile(
    r"^\s*write_file (?P<path>\S+) (?P<mode>\d{4}) (?P<owner>\S+) <<(?P<q>'?)(?P<tag>EOF_\w+)'?\n"
    r"(?P<body>.*?)\n(?P=tag)$",
    re.M | re.S,
)


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


@pytest.fixture(scope="module")
def boto(moto_stack):
    """boto3 clients on the moto server holding the applied stack."""
    import boto3

    _, aws = moto_stack
    return lambda service: boto3.client(service, **aws)


@pytest.fixture(scope="module")
def outputs(moto_stack):
    """terraform output -json of the applied stack."""
    tf, _ = moto_stack
    raw = json.loads(tf.run("output", "-json", "-no-color").stdout)
    return {k: v["value"] for k, v in raw.items()}


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
    assert cidrs == {"10.0.1.0/24", "10.0.2.0/24"}
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
    """Five hardened instances; only nginx and monitoring are publicly addressable."""
    instances = by_role(boto("ec2"))
    assert set(instances) == {"nginx", "monitoring", "ui", "app", "ml"}
    assert outputs["instance_ids"] == {r: i["InstanceId"] for r, i in instances.items()}
    for role, inst in instances.items():
        assert inst["MetadataOptions"]["HttpTokens"] == "required", role
        assert inst["IamInstanceProfile"]["Arn"].endswith(f"pneumonia-{role}"), role
        assert inst["PrivateIpAddress"] == outputs["private_ips"][role]
        groups = [g["GroupName"] for ni in inst["NetworkInterfaces"] for g in ni["Groups"]]
        assert groups == [f"pneumonia-{role}"], role
        if role in ("ui", "app", "ml"):
            assert not inst.get("PublicIpAddress"), f"{role} must not have a public IP"
    assert instances["app"]["InstanceType"] == "t3.medium"
    assert instances["ml"]["InstanceType"] == "g4dn.xlarge"  # set by the moto variables


def test_apply_security_groups(boto):
    """Redis is reachable from the ml group only; Grafana from admin_cidrs only."""
    ec2 = boto("ec2")
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["pneumonia-*"]}]
        )["SecurityGroups"]
    }
    app = groups["pneumonia-app"]
    redis = [p for p in app["IpPermissions"] if p.get("FromPort") == 6379]
    assert len(redis) == 1 and not redis[0]["IpRanges"]
    assert [p["GroupId"] for p in redis[0]["UserIdGroupPairs"]] == [
        groups["pneumonia-ml"]["GroupId"]
    ]
    grafana = [
        p for p in groups["pneumonia-monitoring"]["IpPermissions"] if p.get("FromPort") == 3000
    ]
    assert [r["CidrIp"] for p in grafana for r in p["IpRanges"]] == ["198.51.100.10/32"]
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
    assert not any(a.startswith("s3:") for a in actions("ui"))
    for role in ["nginx", "monitoring", "ui", "app", "ml"]:
        attached = iam.list_attached_role_policies(RoleName=f"pneumonia-{role}")["AttachedPolicies"]
        assert "AmazonSSMManagedInstanceCore" in {p["PolicyName"] for p in attached}


def test_replan_shows_no_changes(moto_stack):
    """A second plan right after apply has nothing to do."""
    tf, _ = moto_stack
    proc = tf.run("plan", "-detailed-exitcode", "-no-color", check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------
# Bootstrap scripts
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_data(moto_stack, boto, outputs):
    """The rendered user_data of every role, as the applied stack produced it."""
    tf, _ = moto_stack
    rendered = tf.console("{" + ", ".join(f"{r} = local.user_data_{r}" for r in ROLES) + "}")
    # What the instances actually received must be what terraform rendered.
    ec2 = boto("ec2")
    for role, instance_id in outputs["instance_ids"].items():
        attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        assert base64.b64decode(attr["UserData"]["Value"]).decode() == rendered[role], role
    return rendered


def free_port():
    """A TCP port free on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def written_files(script):
    """{path: (mode, owner, content)} of every `write_file` heredoc, boot values filled in."""
    files = {}
    for m in HEREDOC.finditer(script):
        body = m["body"]
        if not m["q"]:  # unquoted heredoc: bash expands ${VAR} at boot
            assert "$(" not in body and "`" not in body, f"{m['path']}: only ${{VAR}} expansions"
            body = re.sub(r"\$\{(\w+)\}", lambda v: BOOT_VALUES.get(v[1], v[0]), body)
            for var in re.findall(r"\$\{(\w+)\}", body):
                pytest.fail(f"{m['path']}: ${{{var}}} has no value in the script or the test")
        files[m["path"].strip('"')] = (m["mode"], m["owner"].strip('"'), body + "\n")
    return files


@pytest.fixture(scope="module")
def files(user_data):
    """Files written per role."""
    out = {}
    for role, script in user_data.items():
        # Resolve the script's own readonly constants used inside heredocs.
        consts = dict(re.findall(r'^readonly (\w+)="([^"$]*)"$', script, re.M))
        saved = dict(BOOT_VALUES)
        BOOT_VALUES.update(consts)
        try:
            out[role] = written_files(script)
        finally:
            BOOT_VALUES.clear()
            BOOT_VALUES.update(saved)
    return out


@pytest.mark.parametrize("role", ROLES)
def test_user_data_shellcheck(user_data, role, tmp_path):
    """Each rendered bootstrap is strict bash that shellcheck accepts, under 16 KiB."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make system)")
    script = user_data[role]
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert len(script.encode()) < 16384
    assert 'main "$@"' in script
    path = tmp_path / f"{role}.sh"
    path.write_text(script)
    proc = subprocess.run(
        ["shellcheck", "-s", "bash", "-S", "style", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("role", ROLES)
def test_user_data_carries_no_secret(user_data, role):
    """Only parameter names travel in user_data, never a secret or a key."""
    script = user_data[role]
    assert 'readonly PARAMETER_PATH="/pneumonia"' in script
    assert not re.search(r"(password|token|secret)\w*=[\"']?[0-9a-f]{32,}", script, re.I)
    assert "BEGIN" not in script and "PRIVATE KEY" not in script


def test_user_data_wires_private_ips(user_data, outputs):
    """Each tier is given its neighbours' private addresses."""
    ips = outputs["private_ips"]
    assert f'readonly API_URL="http://{ips["app"]}:5000"' in user_data["ui"]
    assert f'readonly UI_UPSTREAM="{ips["ui"]}:5001"' in user_data["nginx"]
    assert f'readonly MONITORING_CIDR="{ips["monitoring"]}/32"' in user_data["nginx"]
    assert f'readonly REDIS_HOST="{ips["app"]}"' in user_data["ml"]
    assert f'readonly MODEL_STORE="s3://{outputs["model_bucket"]}/models"' in user_data["app"]


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
        "ml": {"REDIS_URL", "MODEL_STORE", "WORKER_METRICS_PORT"},
        "worker": {"REDIS_URL", "MODEL_STORE", "WORKER_METRICS_PORT"},
    }[role]
    assert needed <= set(env)
    if "REDIS_URL" in env:
        host = "127.0.0.1" if role == "app" else r"10\.0\.2\.\d+"
        assert re.fullmatch(rf"redis://:a{{64}}@{host}:6379/0", env["REDIS_URL"]), env["REDIS_URL"]


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
        if name.startswith("pneumonia-idle-stop"):
            continue  # powers the machine off: root by design
        assert "User=pneumonia" in content, name
        assert "NoNewPrivileges=yes" in content, name
        assert "EnvironmentFile=/etc/pneumonia/pneumonia.env" in content, name


def test_grafana_provisioning_glue(files):
    """Grafana reads its admin password from a private env file and the repo's provisioning."""
    mode, owner, env = files["monitoring"]["/etc/pneumonia/grafana.env"]
    assert (mode, owner) == ("0640", "root:grafana")
    settings = dict(line.split("=", 1) for line in env.splitlines() if line)
    assert settings["GF_SECURITY_ADMIN_PASSWORD"] == "d" * 64
    assert settings["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert settings["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert settings["GF_PATHS_PROVISIONING"] == "/etc/grafana/provisioning"
    dropin = files["monitoring"]["/etc/systemd/system/grafana-server.service.d/pneumonia.conf"][2]
    assert "EnvironmentFile=/etc/pneumonia/grafana.env" in dropin


def test_nginx_config(files, user_data, tmp_path):
    """The repo's nginx template, rendered as the bootstrap renders it, passes nginx -t."""
    template = ROOT / "nginx" / "pneumonia.conf.template"
    if not template.exists():
        pytest.skip("nginx/pneumonia.conf.template is not in this branch yet (comes with main)")
    if shutil.which("nginx") is None or shutil.which("envsubst") is None:
        pytest.skip("nginx/envsubst not installed (make system)")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "LISTEN_HTTP": "80",
        "LISTEN_HTTPS": "443",
        "UI_UPSTREAM": "127.0.0.1:5001",
        "SERVER_NAME": "_",
        "TLS_CERT": str(tmp_path / "cert.pem"),
        "TLS_KEY": str(tmp_path / "key.pem"),
        "MONITORING_CIDR": "10.0.1.10/32",
        "MAX_BODY": "30m",
        "ACCESS_LOG": str(tmp_path / "access.log"),
    }
    shell_format = (
        "${LISTEN_HTTP} ${LISTEN_HTTPS} ${UI_UPSTREAM} ${SERVER_NAME} ${TLS_CERT} ${TLS_KEY} "
        "${MONITORING_CIDR} ${MAX_BODY} ${ACCESS_LOG}"
    )
    assert (
        shell_format.replace("$", "$$") in user_data["nginx"] or shell_format in user_data["nginx"]
    )
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
    # Unprivileged test run: move the site's listen ports off 80/443.
    site = re.sub(r"listen\s+(\[::\]:)?443", f"listen {free_port()}", site)
    site = re.sub(r"listen\s+(\[::\]:)?80\b", f"listen {free_port()}", site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {tmp_path};\n"
        f"{site}\n{stub}\n}}\n"
    )
    proc = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


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
