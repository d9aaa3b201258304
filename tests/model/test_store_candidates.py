"""Candidates carry their whole run; workers fetch only what they serve; promotion records
are never overwritten. The local store and S3 (moto as the stand-in) alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devstack.tiny_model import build_tiny_model
from model import publish as publish_cli
from model.card import ChecksumMismatch, checksums, verify_files
from model.serving import selection
from model.store import CARD_FILE, LocalStore, S3Store, StoreError

RUN_FILES = {
    "model.keras",
    CARD_FILE,
    "evaluation.json",
    "history.json",
    "train.log",
    "roc_pr_test.png",
    "quality.npz",
}


def training_run(folder, version: str, bias: float = 0.0):
    """A tiny model laid out as model.train leaves a run (artefacts, quality.npz, checkpoint)."""
    out = build_tiny_model(folder, version=version, bias=bias)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32), dtype=np.uint8)
    np.savez_compressed(out / "quality.npz", images=images, labels=np.arange(12) % 2)
    for name in ("evaluation.json", "history.json"):
        (out / name).write_text("{}\n")
    (out / "train.log").write_text("epoch 1\n")
    (out / "roc_pr_test.png").write_bytes(b"\x89PNG not really")
    (out / "checkpoint.keras").write_bytes(b"optimizer state: not published")
    card = json.loads((out / CARD_FILE).read_text())
    card["files"] = checksums(out)
    (out / CARD_FILE).write_text(json.dumps(card))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return training_run(root / "v1", "v1"), training_run(root / "v2", "v2", bias=2.0)


def test_the_card_checksums_the_check_set_and_a_swapped_one_is_refused(runs, tmp_path):
    card = json.loads((runs[0] / CARD_FILE).read_text())
    assert set(card["files"]) == {"model.keras", "quality.npz"}
    verify_files(runs[0], card)
    LocalStore(tmp_path / "s").add(runs[0])
    tampered = tmp_path / "s" / "v1"
    np.savez_compressed(tampered / "quality.npz", images=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ChecksumMismatch, match=r"quality\.npz"):
        verify_files(tampered, card)


def test_a_local_candidate_carries_every_artefact_and_leaves_current(tmp_path, runs, caplog):
    caplog.set_level("INFO")
    store = LocalStore(tmp_path / "store")
    publish_cli.publish(runs[0], str(store.root))
    assert store.current_version() == "v1" and "it is current now" in caplog.text
    publish_cli.publish(runs[1], str(store.root))
    assert store.current_version() == "v1" and "as a candidate" in caplog.text
    assert {p.name for p in (store.root / "v2").iterdir()} == RUN_FILES
    images, labels = selection.check_set(store.fetch("v2"), {}, 32, None, 256)
    assert images.shape == (12, 32, 32, 3) and list(labels) == [0, 1] * 6


def test_an_s3_candidate_carries_every_artefact_and_workers_fetch_what_they_serve(
    s3, tmp_path, runs
):
    store = S3Store("s3://models/prod", tmp_path / "cache", client=s3)
    store.add(runs[0])
    store.set_current("v1")
    store.add(runs[1])
    assert store.current_version() == "v1" and store.versions() == ["v1", "v2"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="prod/v2/")["Contents"]}
    assert keys == {f"prod/v2/{name}" for name in RUN_FILES}
    fetched = store.fetch("v2")
    assert {p.name for p in fetched.iterdir()} == {"model.keras", CARD_FILE, "quality.npz"}
    verify_files(fetched, json.loads((fetched / CARD_FILE).read_text()))
    assert len(selection.check_set(fetched, {}, 32, None, 256)[1]) == 12


def test_s3_uploads_the_card_last(s3, tmp_path, runs):
    calls = []

    class Recorder:
        def upload_file(self, filename, bucket, key):
            calls.append(key.rsplit("/", 1)[-1])
            return s3.upload_file(filename, bucket, key)

        def __getattr__(self, name):
            return getattr(s3, name)

    S3Store("s3://models/prod", tmp_path / "c", client=Recorder()).add(runs[0])
    assert calls[-1] == CARD_FILE and set(calls) == RUN_FILES


def record(version: str, at: str) -> dict:
    return {"version": version, "previous": None, "at": at, "by": "alice", "reason": "r"}


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_promotion_records_are_never_overwritten_and_listed_newest_first(
    kind, tmp_path, request, runs
):
    if kind == "s3":
        store = S3Store("s3://models/prod", tmp_path / "c", client=request.getfixturevalue("s3"))
    else:
        store = LocalStore(tmp_path / "store")
    store.add(runs[0])
    assert store.promotions() == []
    store.add_record(record("v1", "2026-11-27T10:00:00.000001Z"))
    store.add_record(record("v2", "2026-11-27T11:00:00.000001Z"))
    with pytest.raises(StoreError, match="exists"):
        store.add_record({**record("v1", "2026-11-27T10:00:00.000001Z"), "reason": "rewrite"})
    assert [r["version"] for r in store.promotions()] == ["v2", "v1"]
    assert store.promotions()[1]["reason"] == "r"
    assert store.versions() == ["v1"]  # promotions/ is not a version


def test_reserved_names_are_not_versions(tmp_path, runs):
    for name in ("promotions", "current"):
        with pytest.raises(StoreError):
            LocalStore(tmp_path / "s").add(runs[0], name)


def test_model_publish_to_s3_adds_candidates_after_the_first(s3, runs, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)  # open_store caches under var/model-cache
    assert publish_cli.publish(runs[0], "s3://models/prod") == "v1"
    assert publish_cli.publish(runs[1], "s3://models/prod") == "v2"
    store = S3Store("s3://models/prod", tmp_path / "c", client=s3)
    assert store.current_version() == "v1" and store.versions() == ["v1", "v2"]
