"""The training data set on AWS, against the stack applied to moto: `make data-upload`
finds the store through `terraform output`, and the ml box's training unit's own sync
command (its ExecStartPre, as rendered) fetches and checks it, and stops on a bad file."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from devstack.settings import TRAIN_224
from tests.terraform.conftest import ROOT
from tests.terraform.test_terraform import units

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def aws_env(moto_stack, plain_http_bucket):
    """An operator's environment: AWS credentials, terraform's state, no DATA_STORE."""
    tf, aws = moto_stack
    return {
        **tf.env,
        "AWS_ENDPOINT_URL_S3": aws["endpoint_url"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": str(ROOT),
        "TF_DIR": str(tf.workdir),
    }


@pytest.fixture
def kermany(tmp_path):
    """A few real X-rays in train/{NORMAL,PNEUMONIA}."""
    if not (TRAIN_224 / "NORMAL").is_dir():
        pytest.skip(f"no X-rays at {TRAIN_224}: set SHARED_DATA")
    for cls in ("NORMAL", "PNEUMONIA"):
        (tmp_path / "up" / "train" / cls).mkdir(parents=True)
        for src in sorted((TRAIN_224 / cls).iterdir())[:3]:
            shutil.copy(src, tmp_path / "up" / "train" / cls / src.name)
    return tmp_path / "up"


def unit_sync(files, target, env) -> subprocess.CompletedProcess:
    """The training unit's ExecStartPre as rendered, into ``target`` instead of /data."""
    unit = units(files)["pneumonia-train.service"]
    (pre,) = [ln.split("=", 1)[1] for ln in unit.splitlines() if ln.startswith("ExecStartPre=")]
    argv = [str(target) if a == "/data/chest_xray" else a for a in pre.split()]
    assert argv[0] == "/opt/pneumonia/app/venv/bin/python", pre
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=120
    )


def test_upload_then_the_training_unit_syncs_and_checks_it(
    files, outputs, aws_env, boto, kermany, tmp_path
):
    assert outputs["dataset_store"] == f"s3://{outputs['model_bucket']}/datasets/chest_xray"
    up = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "data-upload",
            f"DATA={kermany}",
            f"PY={sys.executable}",
        ],
        cwd=ROOT,
        env=aws_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stderr
    assert "uploaded 6 files, 0 unchanged; data set" in up.stdout
    assert outputs["dataset_store"] in up.stdout  # the store terraform output names

    box = tmp_path / "data" / "chest_xray"
    synced = unit_sync(files, box, aws_env)
    assert synced.returncode == 0, synced.stderr
    for path in kermany.rglob("*.jpeg"):
        assert (box / path.relative_to(kermany)).read_bytes() == path.read_bytes()
    assert (box / "MANIFEST.sha256").is_file()

    bad = sorted(kermany.rglob("*.jpeg"))[4].relative_to(kermany).as_posix()
    boto("s3").put_object(
        Bucket=outputs["model_bucket"], Key=f"datasets/chest_xray/{bad}", Body=b"swapped"
    )
    shutil.rmtree(box)
    stopped = unit_sync(files, box, aws_env)
    assert stopped.returncode == 2 and bad in stopped.stderr, stopped.stderr
    assert "Traceback" not in stopped.stderr
