"""Publishing: versions land complete before the ``current`` pointer moves (local and S3)."""

from __future__ import annotations

import json
import threading

import pytest

from devstack.tiny_model import build_tiny_model
from model import publish as publish_cli
from model.store import CARD_FILE, MODEL_FILE, LocalStore, S3Store, StoreError, open_store


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return (
        build_tiny_model(root / "a", version="20261123T1200Z-aaaaaaa"),
        build_tiny_model(root / "b", version="20261123T1300Z-bbbbbbb", bias=2.0),
    )


def test_the_first_publish_is_current_and_later_ones_are_candidates(tmp_path, two_models, capsys):
    a, b = two_models
    store_dir = tmp_path / "store"
    assert publish_cli.main(["--model", str(a), "--store", str(store_dir)]) == 0
    assert "current -> 20261123T1200Z-aaaaaaa" in capsys.readouterr().out
    assert publish_cli.main(["--model", str(b), "--store", str(store_dir)]) == 0
    assert "candidate 20261123T1300Z-bbbbbbb" in capsys.readouterr().out
    store = open_store(str(store_dir))
    assert store.versions() == ["20261123T1200Z-aaaaaaa", "20261123T1300Z-bbbbbbb"]
    assert store.current_version() == "20261123T1200Z-aaaaaaa"  # b waits for model.promote
    assert store.card("20261123T1300Z-bbbbbbb")["version"] == "20261123T1300Z-bbbbbbb"


def test_publish_no_longer_rolls_back_and_points_to_promote(tmp_path, two_models, capsys):
    publish_cli.publish(two_models[0], str(tmp_path / "s"))
    publish_cli.publish(two_models[1], str(tmp_path / "s"))
    argv = ["--store", str(tmp_path / "s"), "--rollback", "20261123T1300Z-bbbbbbb"]
    assert publish_cli.main(argv) == 2
    assert "python -m model.promote 20261123T1300Z-bbbbbbb --reason" in capsys.readouterr().err
    assert LocalStore(tmp_path / "s").current_version() == "20261123T1200Z-aaaaaaa"


def test_an_incomplete_model_dir_is_not_published(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / MODEL_FILE).write_bytes(b"x")
    with pytest.raises(StoreError, match=CARD_FILE):
        LocalStore(tmp_path / "s").publish(tmp_path / "half")


def test_readers_never_see_a_half_published_version(tmp_path, two_models):
    """A worker polling while versions are published sees only complete versions."""
    store = LocalStore(tmp_path / "store")
    store.publish(two_models[0])
    stop, problems = threading.Event(), []

    def reader():
        while not stop.is_set():
            version = store.current_version()
            try:
                folder = store.fetch(version)
                card = json.loads((folder / CARD_FILE).read_text())
                size = (folder / MODEL_FILE).stat().st_size
            except Exception as exc:  # anything at all is a failure of atomicity
                problems.append(repr(exc))
                continue
            if card["version"] != version or size == 0:
                problems.append(f"{version}: card {card['version']}, {size} bytes")
            if any(v.startswith(".") for v in store.versions()):
                problems.append("a staging directory is listed as a version")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(30):
        store.publish(two_models[i % 2])
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert sorted(p.name for p in store.root.iterdir()) == [
        "20261123T1200Z-aaaaaaa",
        "20261123T1300Z-bbbbbbb",
        "current",
    ]


class Recorder:
    """Wraps the S3 client and records the order of writes."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def upload_file(self, filename, bucket, key):
        self.calls.append(("upload", key))
        return self.client.upload_file(filename, bucket, key)

    def put_object(self, **kw):
        self.calls.append(("put", kw["Key"]))
        return self.client.put_object(**kw)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_s3_publish_uploads_everything_before_moving_current(s3, tmp_path, two_models):
    recorder = Recorder(s3)
    store = S3Store("s3://models/prod", tmp_path / "cache", client=recorder)
    assert store.current_version() is None
    version = store.publish(two_models[0])
    assert recorder.calls == [
        ("upload", f"prod/{version}/{MODEL_FILE}"),
        ("upload", f"prod/{version}/{CARD_FILE}"),
        ("put", "prod/current"),
    ]
    store.publish(two_models[1])
    assert store.versions() == ["20261123T1200Z-aaaaaaa", "20261123T1300Z-bbbbbbb"]
    assert store.current_version() == "20261123T1300Z-bbbbbbb"
    fetched = store.fetch("20261123T1300Z-bbbbbbb")
    assert (fetched / MODEL_FILE).read_bytes() == (two_models[1] / MODEL_FILE).read_bytes()
    store.set_current("20261123T1200Z-aaaaaaa")  # rollback
    assert S3Store("s3://models/prod", tmp_path / "c2", client=s3).current_version() == (
        "20261123T1200Z-aaaaaaa"
    )


@pytest.mark.parametrize("bad", ["../etc", "a/b", ".hidden", "x" * 200])
def test_unsafe_versions_are_refused(tmp_path, two_models, bad):
    with pytest.raises(StoreError):
        LocalStore(tmp_path).publish(two_models[0], bad)


def test_versions_are_immutable(tmp_path, two_models):
    store = LocalStore(tmp_path / "s")
    store.publish(two_models[0])
    store.publish(two_models[1])
    assert store.publish(two_models[0]) == "20261123T1200Z-aaaaaaa"  # same files: pointer only
    assert store.current_version() == "20261123T1200Z-aaaaaaa"
    with pytest.raises(StoreError, match="immutable"):
        store.publish(two_models[1], "20261123T1200Z-aaaaaaa")
