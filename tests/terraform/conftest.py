"""Fixtures for the terraform/ tests: a throw-away copy of the configuration, initialised
from the local provider mirror, and a moto server to apply it to. Nothing touches AWS and
nothing is left in the repository (state, .terraform/ and plans live in a temp dir)."""

import base64
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_SRC = ROOT / "terraform"
MIRROR_CANDIDATES = [os.environ.get("TF_PLUGIN_MIRROR", ""), "/opt/tf-plugins"]
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"


def find_mirror():
    """The filesystem mirror holding hashicorp/aws, or None."""
    for candidate in MIRROR_CANDIDATES:
        if candidate and (Path(candidate) / AWS_PROVIDER).is_dir():
            return Path(candidate)
    return None


def free_port():
    """A TCP port free on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Terraform:
    """Runs terraform in one working directory with an isolated environment."""

    def __init__(self, workdir, env):
        self.workdir = workdir
        self.env = env

    @classmethod
    def initialised(cls, workdir, tf_env) -> "Terraform":
        """``terraform init`` in ``workdir`` from the offline provider mirror (the committed
        lock file must match it), with the working directory's own data dir."""
        tf = cls(workdir, {**tf_env, "TF_DATA_DIR": str(workdir / ".terraform")})
        tf.run(
            "init",
            "-backend=false",
            "-lockfile=readonly",
            "-no-color",
            f"-plugin-dir={tf_env['TF_PLUGIN_MIRROR']}",
        )
        return tf

    def run(self, *args, check=True, timeout=300, input_text=None):
        """Run `terraform ARGS`; return the CompletedProcess (raise with output on failure)."""
        proc = subprocess.run(
            ["terraform", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def console(self, expression):
        """Evaluate one expression against the current state; decoded from JSON."""
        out = self.run("console", input_text=f"jsonencode({expression})\n").stdout.strip()
        return json.loads(json.loads(out))


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory):
    """Environment for terraform: skips the tests where terraform or the mirror is absent."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on the PATH: install Terraform >= 1.11 to run these tests")
    mirror = find_mirror()
    if mirror is None:
        pytest.skip(
            "no filesystem mirror of hashicorp/aws found (looked in $TF_PLUGIN_MIRROR and "
            "/opt/tf-plugins): these tests never download providers"
        )
    base = tmp_path_factory.mktemp("tf-env")
    cli_config = base / "terraformrc"
    cli_config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        TF_PLUGIN_MIRROR=str(mirror),
    )
    return env


def copy_config(dest):
    """Copy terraform/ without local state or provider caches."""
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfplan", "terraform.tfvars")
    shutil.copytree(TF_SRC, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="session")
def tf(tf_env, tmp_path_factory):
    """An initialised copy of terraform/ (the committed lock file must match the mirror)."""
    workdir = copy_config(tmp_path_factory.mktemp("tf") / "terraform")
    tf = Terraform.initialised(workdir, tf_env)
    return tf


MOTO_SERVICES = [
    "acm",
    "autoscaling",
    "backup",
    "ec2",
    "elbv2",
    "iam",
    "kms",
    "logs",
    "route53",
    "s3",
    "sns",
    "ssm",
    "sts",
    "secretsmanager",
]

MOTO_VARS = {
    "region": "us-east-1",
    "allowed_cidrs": ["203.0.113.0/24"],
    "admin_cidrs": ["198.51.100.10/32"],
    # moto ships only old Canonical images, and does not implement detailed monitoring.
    "ami_name_filter": "ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*",
    "enable_detailed_monitoring": False,
    "force_destroy_buckets": True,
    # The default ml type (g5.xlarge) is in moto's catalogue and offered in its us-east-1a.
}


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A moto server on a free loopback port for the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            # AWS managed policies (AmazonSSMManagedInstanceCore) exist only when loaded.
            env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"moto server exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start within 30 s")
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def moto_override(endpoint):
    """A provider override pointing every service this configuration uses at moto."""
    endpoints = "\n".join(f'    {svc} = "{endpoint}"' for svc in MOTO_SERVICES)
    return f"""provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = false
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}

# moto accepts S3 access-log delivery only through ACL grants, not the bucket policy AWS
# recommends (and this code uses); the provider retries the refusal until it times out.
# The logging configuration is asserted by the mocked plan test instead.
resource "aws_s3_bucket_logging" "this" {{
  for_each = {{}}
}}

# moto (5.2) has AWS Backup vaults and plans but no selections. The selection is asserted
# by the mocked plan test instead.
resource "aws_backup_selection" "data_volumes" {{
  count = 0
}}

# moto (5.2) keeps no tags on Backup vaults and plans, and reports a private zone without its
# VPC; both would show as a diff on re-plan. The mocked plan test asserts them instead.
resource "aws_backup_vault" "this" {{
  lifecycle {{
    ignore_changes = [tags, tags_all]
  }}
}}

resource "aws_backup_plan" "this" {{
  lifecycle {{
    ignore_changes = [tags, tags_all]
  }}
}}

resource "aws_route53_zone" "private" {{
  lifecycle {{
    ignore_changes = [vpc]
  }}
}}

# moto drops the description of rules that reference another security group, which
# would show as a diff on re-plan. Descriptions are asserted by the mocked plan test.
resource "aws_vpc_security_group_ingress_rule" "this" {{
  lifecycle {{
    ignore_changes = [description]
  }}
}}

resource "aws_vpc_security_group_egress_rule" "this" {{
  lifecycle {{
    ignore_changes = [description]
  }}
}}
"""


# moto (5.2) deviations on EC2 instances: an explicit associate_public_ip_address makes
# the provider send a network-interface spec, for which moto hands out a public IP
# anyway; and it reports the groups only on the network interface, not the instance.
# The mocked plan test asserts the real arguments; test_apply_instances checks the
# groups on the network interfaces.
MOTO_INSTANCE_OVERRIDE = """resource "aws_instance" "this" {
  associate_public_ip_address = null
  lifecycle {
    ignore_changes = [ami, vpc_security_group_ids]
  }
}
"""


@pytest.fixture(scope="session")
def moto_stack(tf_env, moto_endpoint, tmp_path_factory):
    """terraform apply against moto; yields (Terraform, boto3 session kwargs); destroys after."""
    workdir = copy_config(tmp_path_factory.mktemp("tf-moto") / "terraform")
    (workdir / "moto_override.tf").write_text(moto_override(moto_endpoint))
    (workdir / "modules" / "instance" / "moto_override.tf").write_text(MOTO_INSTANCE_OVERRIDE)
    (workdir / "moto.auto.tfvars.json").write_text(json.dumps(MOTO_VARS))
    tf = Terraform.initialised(workdir, tf_env)
    tf.run("apply", "-auto-approve", "-no-color", "-parallelism=30", timeout=600)
    aws = {
        "endpoint_url": moto_endpoint,
        "region_name": MOTO_VARS["region"],
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    yield tf, aws
    # The re-plan test has just refreshed everything: skip destroy's own refresh.
    tf.run(
        "destroy", "-auto-approve", "-no-color", "-parallelism=30", "-refresh=false", timeout=600
    )
    import boto3

    ec2 = boto3.client("ec2", **aws)
    left = [
        i["InstanceId"]
        for r in ec2.describe_instances(
            Filters=[
                {"Name": "tag:Project", "Values": ["pneumonia"]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
            ]
        )["Reservations"]
        for i in r["Instances"]
    ]
    assert not left, f"destroy left instances behind: {left}"
    assert not ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["pneumonia"]}])["Vpcs"]
    assert not [
        b
        for b in boto3.client("s3", **aws).list_buckets()["Buckets"]
        if b["Name"].startswith("pneumonia-")
    ]


ROLES = ["app", "ui", "nginx", "monitoring", "ml", "worker"]

# Values standing in for what the bootstrap learns at boot (IMDS, SSM).
BOOT_VALUES = {
    "PRIVATE_IP": "127.0.0.2",
    "REDIS_PASSWORD": "a" * 64,
    "API_TOKEN": "b" * 64,
    "SECRET_KEY": "c" * 64,
    "GRAFANA_PASSWORD": "d" * 64,
    "UI_REDIS_PASSWORD": "e" * 64,
    "REDIS_MAXMEMORY_KB": "2000000",
}

HEREDOC = re.compile(
    r"^\s*write_file (?P<path>\S+) (?P<mode>\d{4}) (?P<owner>\S+) <<(?P<q>'?)(?P<tag>EOF_\w+)'?\n"
    r"(?P<body>.*?)\n(?P=tag)$",
    re.M | re.S,
)


@pytest.fixture(scope="session")
def boto(moto_stack):
    """boto3 clients on the moto server holding the applied stack."""
    import boto3

    _, aws = moto_stack
    return lambda service: boto3.client(service, **aws)


@pytest.fixture(scope="session")
def outputs(moto_stack):
    """terraform output -json of the applied stack."""
    tf, _ = moto_stack
    raw = json.loads(tf.run("output", "-json", "-no-color").stdout)
    return {k: v["value"] for k, v in raw.items()}


@pytest.fixture
def security_groups(boto) -> dict:
    """The project's security groups as moto holds them after the apply, by name."""
    return {
        g["GroupName"]: g
        for g in boto("ec2").describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["pneumonia-*"]}]
        )["SecurityGroups"]
    }


@pytest.fixture(scope="module")
def plain_http_bucket(moto_stack, boto, outputs):
    """The model bucket without its TLS-only policy while a module's tests run: moto (5.2)
    applies the policy's Deny without evaluating its `aws:SecureTransport` condition, and its
    server speaks plain HTTP. test_apply_buckets asserts the policy; it is put back after."""
    s3 = boto("s3")
    bucket = outputs["model_bucket"]
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    yield bucket
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)


@pytest.fixture(scope="session")
def user_data(moto_stack, boto, outputs):
    """The rendered user_data of every role, as the applied stack produced it."""
    tf, _ = moto_stack
    rendered = tf.console("{" + ", ".join(f"{r} = local.user_data_{r}" for r in ROLES) + "}")
    # What the instances actually received must be what terraform rendered.
    ec2 = boto("ec2")
    for role, instance_id in outputs["instance_ids"].items():
        attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        received = gzip.decompress(base64.b64decode(attr["UserData"]["Value"])).decode()
        assert received == rendered[role], role
    return rendered


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


@pytest.fixture(scope="session")
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
