"""Training data sets in S3 (model/datasets.py): upload, sync and verify through the real
CLI, against a moto server standing in for S3, on a few real X-rays from ../shared/data."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.datasets import MANIFEST
from tests.monitoring.aws_standin import CREDENTIALS, client, moto_server

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "pneumonia-data"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        client(endpoint, "s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        yield endpoint


@pytest.fixture
def s3(s3_endpoint):
    return client(s3_endpoint, "s3")


@pytest.fixture
def store(request):
    """A fresh prefix per test (named by a hash: the test id could echo expected messages)."""
    return f"s3://{BUCKET}/datasets/{hashlib.sha1(request.node.name.encode()).hexdigest()[:12]}"


def aws_env(endpoint: str | None) -> dict:
    """The environment of the CLI: moto's endpoint and test credentials, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONPATH=str(ROOT),
        AWS_DEFAULT_REGION="eu-west-3",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    if endpoint:
        env.update(
            AWS_ENDPOINT_URL_S3=endpoint,
            AWS_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
        )
    return env


def cli(endpoint, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "model.datasets", *map(str, args)],
        env=aws_env(endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def kermany(tmp_path, real_train_dir) -> Path:
    """A small Kermany-layout folder of real X-rays: train/ and test/, both classes."""
    root = tmp_path / "upload"
    for split, start, n in (("train", 0, 3), ("test", 3, 1)):
        for cls in ("NORMAL", "PNEUMONIA"):
            (root / split / cls).mkdir(parents=True)
            for src in sorted((real_train_dir / cls).iterdir())[start : start + n]:
                shutil.copy(src, root / split / cls / src.name)
    return root


def images(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def test_upload_then_sync_round_trip(s3_endpoint, s3, store, kermany, tmp_path):
    up = cli(s3_endpoint, "upload", kermany, store)
    assert up.returncode == 0, up.stderr
    assert "uploaded 8 files, 0 unchanged" in up.stdout

    copy = tmp_path / "copy"
    down = cli(s3_endpoint, "sync", store, copy)
    assert down.returncode == 0, down.stderr
    assert images(copy) == images(kermany)
    manifest = (copy / MANIFEST).read_bytes()
    version = hashlib.sha256(manifest).hexdigest()
    assert version in up.stdout and version in down.stdout  # the data set's version
    # sha256sum's own format: the standard tool checks the copy without our code.
    check = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=copy, capture_output=True)
    assert check.returncode == 0 and manifest.count(b"\n") == 8
    assert cli(s3_endpoint, "verify", copy).returncode == 0
    again = cli(s3_endpoint, "sync", store, copy)
    assert "0 downloaded, 8 unchanged" in again.stdout


def test_reupload_sends_only_new_or_changed_files(s3_endpoint, s3, store, kermany, real_train_dir):
    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    first = s3.get_object(Bucket=BUCKET, Key=store.split("/", 3)[3] + "/" + MANIFEST)["Body"]
    same = cli(s3_endpoint, "upload", kermany, store)
    assert "uploaded 0 files, 8 unchanged" in same.stdout, same.stdout + same.stderr
    extra = sorted((real_train_dir / "NORMAL").iterdir())[10]
    shutil.copy(extra, kermany / "train" / "NORMAL" / extra.name)
    grown = cli(s3_endpoint, "upload", kermany, store)
    assert "uploaded 1 files, 8 unchanged" in grown.stdout, grown.stdout + grown.stderr
    new = s3.get_object(Bucket=BUCKET, Key=store.split("/", 3)[3] + "/" + MANIFEST)["Body"]
    assert f"train/NORMAL/{extra.name}".encode() in new.read()
    assert f"train/NORMAL/{extra.name}".encode() not in first.read()


def test_corrupted_object_in_s3_stops_sync_naming_it(s3_endpoint, s3, store, kermany, tmp_path):
    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    bad = sorted(images(kermany))[5]
    prefix = store.split("/", 3)[3]
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{bad}", Body=b"not the uploaded X-ray")
    copy = tmp_path / "copy"
    proc = cli(s3_endpoint, "sync", store, copy)
    assert proc.returncode == 2
    assert bad in proc.stderr and "manifest" in proc.stderr
    assert not (copy / bad).exists()  # the bad copy is discarded...
    assert not (copy / MANIFEST).exists()  # ...and the folder is not marked complete


def test_a_locally_corrupted_file_fails_verify_and_sync_repairs_it(
    s3_endpoint, store, kermany, tmp_path
):
    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    copy = tmp_path / "copy"
    assert cli(s3_endpoint, "sync", store, copy).returncode == 0
    bad = sorted(images(copy))[2]
    (copy / bad).write_bytes(b"flipped")
    proc = cli(s3_endpoint, "verify", copy)
    assert proc.returncode == 2 and bad in proc.stderr
    repaired = cli(s3_endpoint, "sync", store, copy)
    assert "1 downloaded, 7 unchanged" in repaired.stdout
    assert images(copy) == images(kermany)


def test_sync_refuses_unlisted_images_unless_told_to_delete(s3_endpoint, store, kermany, tmp_path):
    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    copy = tmp_path / "copy"
    (copy / "train" / "NORMAL").mkdir(parents=True)
    stray = copy / "train" / "NORMAL" / "IM-9999-0001.jpeg"
    stray.write_bytes(b"an image nobody listed")
    (copy / "notes.txt").write_text("not an image: never touched")
    refused = cli(s3_endpoint, "sync", store, copy)
    assert refused.returncode == 2 and "train/NORMAL/IM-9999-0001.jpeg" in refused.stderr
    assert stray.exists()
    pruned = cli(s3_endpoint, "sync", store, copy, "--delete")
    assert pruned.returncode == 0 and "1 removed" in pruned.stdout
    assert not stray.exists() and (copy / "notes.txt").exists()
    assert images(copy) == {**images(kermany), "notes.txt": b"not an image: never touched"}


def test_a_manifest_cannot_write_outside_the_folder(s3_endpoint, s3, store, tmp_path):
    prefix = store.split("/", 3)[3]
    line = f"{'0' * 64}  ../../escape/NORMAL/x.jpeg\n"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=line.encode())
    proc = cli(s3_endpoint, "sync", store, tmp_path / "copy")
    assert proc.returncode == 2 and "line 1" in proc.stderr
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no manifest", "no MANIFEST.sha256 at"),
        ("no bucket", "no bucket 'no-such-bucket'"),
        ("no credentials", "no AWS credentials"),
        ("not kermany", "is not a Kermany-layout folder"),
        ("not s3", "is not s3://bucket/prefix"),
    ],
)
def test_clear_errors(s3_endpoint, store, kermany, tmp_path, case, expected):
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    argv = {
        "no manifest": ("sync", store, tmp_path / "copy"),
        "no bucket": ("sync", "s3://no-such-bucket/datasets/x", tmp_path / "copy"),
        "no credentials": ("upload", kermany, store),
        "not kermany": ("upload", empty, store),
        "not s3": ("upload", kermany, "/tmp/somewhere"),
    }[case]
    proc = cli(None if case == "no credentials" else s3_endpoint, *argv)
    assert proc.returncode == 2
    assert expected in proc.stderr, proc.stderr


def make_data_upload(tmp_path, endpoint, **variables) -> subprocess.CompletedProcess:
    """`make data-upload` as an operator types it (terraform/ replaced by an empty folder)."""
    env = aws_env(endpoint)
    env["TF_DIR"] = str(tmp_path / "no-terraform-here")
    (tmp_path / "no-terraform-here").mkdir(exist_ok=True)
    env.pop("DATA_STORE", None)
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "data-upload", f"PY={sys.executable}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_data_upload_needs_a_store(tmp_path, kermany):
    proc = make_data_upload(tmp_path, None, DATA=kermany)
    assert proc.returncode != 0
    assert "DATA_STORE" in proc.stderr and "terraform output" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_make_data_upload_puts_the_folder_in_the_store(s3_endpoint, s3, store, kermany, tmp_path):
    proc = make_data_upload(tmp_path, s3_endpoint, DATA=kermany, DATA_STORE=store)
    assert proc.returncode == 0, proc.stderr
    prefix = store.split("/", 3)[3]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert keys == {f"{prefix}/{p}" for p in [*images(kermany), MANIFEST]}


def test_training_from_an_s3_data_set_syncs_it_first(
    s3_endpoint, store, kermany, tmp_path, monkeypatch
):
    """`model.train --data s3://...` trains on a checked local copy of the data set."""
    from model.training import data

    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    for name, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATASET_CACHE", str(tmp_path / "cache"))
    root = data.resolve_root(store)
    assert root.is_relative_to(tmp_path / "cache") and images(root) == images(kermany)
    assert data.manifest_sha256(root) == hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()


def test_training_from_an_s3_data_set_stops_on_a_bad_file(
    s3_endpoint, s3, store, kermany, tmp_path
):
    assert cli(s3_endpoint, "upload", kermany, store).returncode == 0
    bad = sorted(images(kermany))[1]
    s3.put_object(Bucket=BUCKET, Key=f"{store.split('/', 3)[3]}/{bad}", Body=b"swapped")
    env = {**aws_env(s3_endpoint), "DATASET_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "model.train", "--data", store, "--output", tmp_path / "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot sync the training data from {store}: {bad}:" in proc.stderr
    assert not (tmp_path / "run" / "model.keras").exists()
