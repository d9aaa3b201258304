"""Releases in place and state that outlives instances, against the stack applied to moto.

- a new release plans no change at all (user_data holds no release);
- replacing the app box plans no other replacement, and its data volume stays;
- `make release` uploads an immutable artifact with its sha256;
- the host script's deploy (the code the SSM document runs) installs a release after
  checking its sha256, refuses a tampered one, and rolls back when the health check fails;
- `make deploy` rolls the tiers in order through the deploy document and then records the
  release for boxes that boot later.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile

import pytest

from scripts.locks import parse_lock
from tests.terraform.conftest import MOTO_VARS, ROOT

pytestmark = pytest.mark.terraform

# The lock each host installs (requirements/, `make lock`); None: it runs no Python of ours.
HOST_LOCKS = {
    "app": "requirements/cpu.lock",
    "worker": "requirements/cpu.lock",
    "ml": "requirements/gpu.lock",
    "ui": "requirements/web.lock",
    "nginx": None,
    "monitoring": None,
}
# The one TensorFlow build each lock brings: CUDA on the GPU box, none where no model runs.
TENSORFLOW_BUILD = {
    "requirements/cpu.lock": {"tensorflow-cpu"},
    "requirements/gpu.lock": {"tensorflow"},
    "requirements/web.lock": set(),
}
# The only two pip commands of any bootstrap (install_release in common.sh.tftpl).
PIP_INSTALLS = [
    'pip" install --quiet --require-hashes -r "$dir/$LOCK_FILE"',
    'pip" install --quiet --no-deps --no-build-isolation "$dir"',
]

INSTANCES = {
    "module.app.aws_instance.this",
    "module.ui.aws_instance.this",
    "module.nginx.aws_instance.this",
    "module.monitoring.aws_instance.this",
    "module.ml[0].aws_instance.this",
}


def planned_changes(tf, *args) -> dict[str, list[str]]:
    """address -> actions of a plan made with ``args`` (refresh off: moto was just applied)."""
    tf.run("plan", "-refresh=false", "-no-color", "-out=lifecycle.tfplan", *args, timeout=300)
    shown = json.loads(tf.run("show", "-json", "lifecycle.tfplan").stdout)
    return {c["address"]: c["change"]["actions"] for c in shown.get("resource_changes", [])}


def test_new_release_plans_no_change(moto_stack):
    """A release is data (the release parameter, `make deploy`), never user_data: naming a
    new one to terraform changes nothing, so no instance is replaced."""
    tf, _ = moto_stack
    changes = planned_changes(tf, "-var", "initial_release=" + "ab12" * 10)
    assert {a: c for a, c in changes.items() if c != ["no-op"]} == {}
    assert set(changes) >= INSTANCES


def test_replacing_app_replaces_nothing_else_and_keeps_its_data(moto_stack):
    """Replacing the app box re-creates it and its volume attachment only; its data volume,
    every other box and every other box's user_data stay; its name follows it."""
    tf, _ = moto_stack
    changes = planned_changes(tf, "-replace=module.app.aws_instance.this")
    replaced = {a for a, c in changes.items() if "delete" in c}
    assert replaced == {"module.app.aws_instance.this", "module.app.aws_volume_attachment.data[0]"}
    assert changes["module.app.aws_ebs_volume.data[0]"] == ["no-op"]
    for address in INSTANCES - {"module.app.aws_instance.this"}:
        assert changes[address] == ["no-op"], address
    updated = {a for a, c in changes.items() if c == ["update"]}
    assert updated <= {'aws_route53_record.private["app"]'}, updated


def test_data_volumes_are_encrypted_tagged_and_attached(boto, outputs):
    """Each stateful role has its own encrypted volume, with the project key, tagged for
    the snapshot plan, attached to its box."""
    ec2, kms = boto("ec2"), boto("kms")
    alias = next(a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/pneumonia")
    key = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
    ids = outputs["data_volume_ids"]
    assert set(ids) == {"app", "ui", "monitoring", "ml"}
    for role, volume_id in ids.items():
        volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
        assert volume["Encrypted"] and volume["KmsKeyId"] == key, role
        assert tags["Backup"] == "pneumonia" and tags["Role"] == role
        assert [a["InstanceId"] for a in volume["Attachments"]] == [outputs["instance_ids"][role]]
    plans = boto("backup").list_backup_plans()["BackupPlansList"]
    assert [p["BackupPlanName"] for p in plans] == ["pneumonia-data"]


# --- make release / the host's deploy / make deploy --------------------------------------


@pytest.fixture(scope="module")
def aws_env(moto_stack, plain_http_bucket):
    """Environment for the AWS CLI (and terraform output) against the moto stack."""
    tf, aws = moto_stack
    return {
        **tf.env,
        "AWS_ENDPOINT_URL": aws["endpoint_url"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": MOTO_VARS["region"],
        "AWS_DEFAULT_REGION": MOTO_VARS["region"],
        "TF_DIR": str(tf.workdir),
    }


def make(target, env, **extra):
    return subprocess.run(
        ["make", "--no-print-directory", target, *[f"{k}={v}" for k, v in extra.items()]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def released(aws_env, boto, outputs):
    """`make release` of HEAD: (commit, sha256) as it printed them."""
    proc = make("release", aws_env)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"RELEASE=([0-9a-f]{40}) SHA256=([0-9a-f]{64})", proc.stdout)
    assert found, proc.stdout
    return found[1], found[2]


def test_make_release_uploads_an_immutable_artifact(released, aws_env, boto, outputs):
    commit, sha = released
    bucket, prefix = outputs["release_store"].removeprefix("s3://").split("/", 1)
    s3 = boto("s3")
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{commit}.tar.gz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    recorded = s3.get_object(Bucket=bucket, Key=f"{prefix}/{commit}.tar.gz.sha256")["Body"].read()
    assert recorded.decode().split()[0] == sha
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = tar.getnames()
    assert set(HOST_LOCKS.values()) - {None} <= set(names)
    assert {"pyproject.toml", "terraform/README.md"} <= set(names)
    assert not [n for n in names if n.startswith(("var/", ".venv"))]
    again = make("release", aws_env)  # the same commit again: nothing is overwritten
    assert again.returncode == 0 and "immutable" in again.stderr
    assert f"SHA256={sha}" in again.stdout


def test_each_host_installs_exactly_its_role_lock(released, user_data, boto, outputs):
    """Each bootstrap installs one lock file, every hash checked, then the project with no
    dependency of its own: nothing else reaches pip. In the release that boxes install, the
    ml box's lock brings TensorFlow's CUDA build, the app and worker boxes' tensorflow-cpu,
    the UI's none: one TensorFlow build per host."""
    commit, _ = released
    bucket, prefix = outputs["release_store"].removeprefix("s3://").split("/", 1)
    body = boto("s3").get_object(Bucket=bucket, Key=f"{prefix}/{commit}.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        locks = {
            name: [p.name for p in parse_lock(tar.extractfile(name).read().decode())]
            for name in TENSORFLOW_BUILD
        }
    for role, script in user_data.items():
        assigned = [v.strip('"') for v in re.findall(r"^LOCK_FILE=(\S*)", script, re.M)]
        assert (assigned[-1] or None) == HOST_LOCKS[role], f"{role} installs {assigned[-1]!r}"
        assert re.findall(r"\bpip3?\"? install .*", script) == PIP_INSTALLS, role
        assert "PIP_EXTRA" not in script, role
        if HOST_LOCKS[role]:
            names = locks[HOST_LOCKS[role]]
            builds = {n for n in names if n in {"tensorflow", "tensorflow-cpu"}}
            assert builds == TENSORFLOW_BUILD[HOST_LOCKS[role]], f"{role}: {builds}"
    assert [n for n in locks["requirements/gpu.lock"] if n.startswith("nvidia-cudnn-cu")]


def host_functions(script: str, names: list[str]) -> str:
    """The bash functions ``names`` exactly as the rendered host script defines them."""
    out = []
    for name in names:
        found = re.search(rf"^{name}\(\) \{{ .*\}}$\n", script, re.M) or re.search(
            rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.M | re.S
        )
        assert found, f"{name}() is not in the host script"
        out.append(found[0])
    return "\n".join(out)


def upload(s3, bucket, key, data: bytes):
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def tar_without(source: bytes, missing: str) -> bytes:
    """The release ``source`` without the member ``missing`` (a broken release)."""
    buf = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(source)) as src,
        tarfile.open(fileobj=buf, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            if member.name != missing:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return buf.getvalue()


def test_host_deploy_checks_sha_and_rolls_back(
    released, user_data, aws_env, boto, outputs, tmp_path
):
    """The deploy code of the host script, run here against the moto bucket: the release is
    installed and made current; a tampered artifact is refused; a release whose health check
    fails is rolled back to the one before. The role's configure and health are replaced by
    a check that the release has its pyproject.toml (the services themselves need a box)."""
    commit, sha = released
    store = outputs["release_store"]
    bucket, prefix = store.removeprefix("s3://").split("/", 1)
    s3 = boto("s3")
    good = s3.get_object(Bucket=bucket, Key=f"{prefix}/{commit}.tar.gz")["Body"].read()
    broken = tar_without(good, "pyproject.toml")
    broken_id = "b" * 40
    upload(s3, bucket, f"{prefix}/{broken_id}.tar.gz", broken)

    functions = host_functions(
        user_data["app"],
        ["log", "retry", "install_release", "switch_release", "current_release", "deploy"],
    )
    script = tmp_path / "host.sh"
    script.write_text(
        "set -euo pipefail\n"
        f"RELEASES={tmp_path}/releases\nAPP_DIR={tmp_path}/app\nROLE=app\n"
        f'RELEASE_STORE={store}\nLOCK_FILE=""\nSERVICES=()\n'
        "systemctl() { :; }\n"  # no services on this machine
        "configure() { :; }\nhealth() { [[ -f $APP_DIR/pyproject.toml ]]; }\n"
        f"{functions}\n"
        'mkdir -p "$RELEASES"\ndeploy "$@"\n'
    )

    def run(release, digest):
        return subprocess.run(
            ["bash", str(script), release, digest],
            env=aws_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    current = tmp_path / "app"
    first = run(commit, sha)
    assert first.returncode == 0, first.stdout + first.stderr
    assert os.readlink(current).endswith(f"/releases/{commit}")
    assert (current / "requirements/cpu.lock").is_file()

    tampered = run(broken_id, sha)  # the artifact does not match the digest given
    assert tampered.returncode == 1 and "does not match its sha256" in tampered.stdout
    assert os.readlink(current).endswith(f"/releases/{commit}")

    failing = run(broken_id, hashlib.sha256(broken).hexdigest())
    assert failing.returncode == 1 and "rolling back" in failing.stdout, failing.stdout
    assert os.readlink(current).endswith(f"/releases/{commit}")


def test_make_deploy_rolls_tiers_in_order_then_records_the_release(
    released, aws_env, boto, outputs
):
    commit, sha = released
    ssm = boto("ssm")
    before = {c["CommandId"] for c in ssm.list_commands()["Commands"]}
    proc = make("deploy", {**aws_env, "DEPLOY_POLL_SECONDS": "0"}, RELEASE=commit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent = [c for c in ssm.list_commands()["Commands"] if c["CommandId"] not in before]
    sent.sort(key=lambda c: c["RequestedDateTime"])
    # The tier is named in each command's comment (moto 5.2 records every instance of the
    # account as a command's targets, whatever instance ids were sent).
    tiers = [c["Comment"].rsplit(" on ", 1)[1] for c in sent]
    assert tiers == [t for t in outputs["deploy_order"] if t in outputs["instance_ids"]]
    for tier, command in zip(tiers, sent, strict=True):
        assert outputs["instance_ids"][tier] in command["InstanceIds"]
        assert command["Comment"] == f"deploy {commit} on {tier}"
    for command in sent:
        assert command["DocumentName"] == outputs["deploy_document"]
        assert command["Parameters"] == {
            "Action": ["deploy"],
            "Release": [commit],
            "Sha256": [sha],
        }
        assert command["MaxConcurrency"] == "1" and command["MaxErrors"] == "0"
    value = ssm.get_parameter(Name=outputs["release_parameter"])["Parameter"]["Value"]
    assert value == commit


def test_make_deploy_refuses_a_release_never_made(aws_env):
    proc = make("deploy", aws_env, RELEASE="c" * 40)
    assert proc.returncode != 0
    assert "run make release first" in proc.stderr
