"""``python -m model.promote``: a worse candidate is refused and nothing changes; --force
--reason promotes and says so in an immutable record; rollback is the same command.

Real tiny Keras models with known behaviour: the planted model tells a bright corner square
("Pneumonia") from plain noise, the random tiny model cannot (AUC near 0.5).
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from devstack.tiny_model import build_planted_model, build_tiny_model, planted_square
from model import promote
from model.card import checksums
from model.store import LocalStore


def write_check_images(root, n: int = 24, size: int = 32):
    """``root/NORMAL`` and ``root/PNEUMONIA``: n PNGs each, the planted feature in the latter."""
    rng = np.random.default_rng(5)
    corners = ["tl", "tr", "bl", "br"]
    for label, folder in ((0, "NORMAL"), (1, "PNEUMONIA")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = planted_square(size, corners[i % 4] if label else None, rng)
            buf = io.BytesIO()
            Image.fromarray(img.astype(np.uint8), mode="L").save(buf, format="PNG")
            (root / folder / f"check-{i:03d}.png").write_bytes(buf.getvalue())
    return root


def renamed(src, dst, version: str):
    """A copy of a version directory under another version name (same weights)."""
    shutil.copytree(src, dst)
    card = json.loads((dst / "model_card.json").read_text())
    card.update(version=version, files=checksums(dst))
    (dst / "model_card.json").write_text(json.dumps(card))
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("promote-models")
    good = build_planted_model(root / "good-1", version="good-1")
    return {
        "good-1": good,
        "good-2": renamed(good, root / "good-2", "good-2"),
        "bad-1": build_tiny_model(root / "bad-1", version="bad-1"),
    }


@pytest.fixture(scope="module")
def check_dir(tmp_path_factory):
    return write_check_images(tmp_path_factory.mktemp("check"))


@pytest.fixture
def store(tmp_path, models):
    """good-1 current (its first publish), bad-1 and good-2 candidates."""
    store = LocalStore(tmp_path / "store")
    store.publish(models["good-1"])
    store.add(models["bad-1"])
    store.add(models["good-2"])
    return store


def run(store, check_dir, *extra, by="alice"):
    argv = ["--store", str(store.root), "--data", str(check_dir), "--backend", "keras"]
    return promote.main([*extra, *argv, "--by", by, "--bootstrap", "200"])


def test_a_worse_candidate_is_refused_and_nothing_changes(store, check_dir, capsys):
    assert run(store, check_dir, "bad-1", "--reason", "weekly retrain") == 1
    out, err = capsys.readouterr()
    assert "refused: bad-1 is worse than good-1" in err and "roc_auc" in err
    assert "ROC AUC" in out and "good-1" in out and "tolerance" in out
    assert store.current_version() == "good-1"
    assert store.promotions() == [] and not (store.root / "promotions").exists()


def test_force_with_a_reason_promotes_and_records_it(store, check_dir, capsys):
    reason = "the check set is not representative; clinical lead agreed"
    assert run(store, check_dir, "bad-1", "--force", "--reason", reason) == 0
    assert store.current_version() == "bad-1"
    (record,) = store.promotions()
    assert record["forced"] is True and record["rollback"] is False
    assert (record["version"], record["previous"], record["by"]) == ("bad-1", "good-1", "alice")
    assert record["reason"] == reason and record["backend"] == "keras"
    assert record["tolerance"] == {"auc": 0.005, "sensitivity": 0.02}
    candidate, current = record["comparison"]["candidate"], record["comparison"]["current"]
    assert candidate["images"] == current["images"] == 48
    assert current["roc_auc"] > 0.9 > candidate["roc_auc"]  # the planted model knows the square
    assert "48 X-rays" in record["data"] and "check-0" not in record["data"]  # no file names
    assert record["at"].endswith("Z")
    assert "FORCED" in capsys.readouterr().out


def test_an_equal_candidate_promotes_and_rollback_is_the_same_command(store, check_dir, capsys):
    assert run(store, check_dir, "good-2", "--reason", "same weights, new build") == 0
    assert store.current_version() == "good-2"
    assert run(store, check_dir, "good-1", "--reason", "back to the known one", by="bob") == 0
    assert store.current_version() == "good-1"
    newest, first = store.promotions()
    assert (newest["version"], newest["previous"], newest["by"]) == ("good-1", "good-2", "bob")
    assert newest["rollback"] is True and first["rollback"] is False
    assert newest["forced"] is False and first["version"] == "good-2"
    capsys.readouterr()
    assert promote.main(["--list", "--store", str(store.root)]) == 0
    listing = capsys.readouterr().out
    assert "  * good-1" in listing and "good-2 -> good-1 rollback" in listing
    assert listing.index("by bob") < listing.index("by alice")  # newest first


def test_a_reason_is_required_and_nothing_changes(store, check_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        run(store, check_dir, "good-2")
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err
    assert store.current_version() == "good-1" and store.promotions() == []


def test_who_promotes_must_be_known(store, check_dir, monkeypatch, capsys):
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert run(store, check_dir, "good-2", "--reason", "x", by="") == 2
    assert "--by NAME" in capsys.readouterr().err
    assert store.current_version() == "good-1"
    monkeypatch.setenv("SUDO_USER", "carol")
    assert run(store, check_dir, "good-2", "--reason", "x", by="") == 0
    assert store.promotions()[0]["by"] == "carol"


def store_trained_on(tmp_path, models, facts_a: dict, facts_b: dict) -> LocalStore:
    """tiny-a current and tiny-b candidate, their cards naming the given training data."""
    store = LocalStore(tmp_path / "store")
    for name, facts in (("tiny-a", facts_a), ("tiny-b", facts_b)):
        version = renamed(models["bad-1"], tmp_path / name, name)
        card = json.loads((version / "model_card.json").read_text())
        card["training_data"].update(facts)
        (version / "model_card.json").write_text(json.dumps(card))
        store.publish(version) if name == "tiny-a" else store.add(version)
    return store


def kermany(tmp_path):
    from tests.model.conftest import make_folder

    return make_folder(tmp_path / "xrays" / "train", 10, 10).parent


def test_without_data_versions_trained_on_other_splits_are_refused(tmp_path, models, capsys):
    data = kermany(tmp_path)
    facts = {"path": str(data), "splits": {}, "split": {"seed": 7, "test_fraction": 0.3}}
    other = {**facts, "split": {"seed": 8, "test_fraction": 0.3}}
    store = store_trained_on(tmp_path, models, facts, other)
    argv = ["tiny-b", "--store", str(store.root), "--backend", "keras", "--reason", "x"]
    assert promote.main([*argv, "--by", "alice"]) == 2
    err = capsys.readouterr().err
    assert "not trained on the same data and split" in err and "give --data DIR" in err
    assert store.current_version() == "tiny-a" and store.promotions() == []


def test_without_data_the_shared_held_out_patients_are_used(tmp_path, models, capsys):
    """Both cards trained on one folder with one split: its held-out test patients are fair."""
    from model.training.data import splits_from_card

    data = kermany(tmp_path)
    split = {"seed": 7, "test_fraction": 0.3}
    facts = {"path": str(data), "split": split, "manifest_sha256": "ab" * 32}
    # Another path to the same files (the manifest says so), e.g. synced to another disk.
    same = {**facts, "path": str(tmp_path / "elsewhere")}
    store = store_trained_on(tmp_path, models, same, facts)
    argv = ["tiny-b", "--store", str(store.root), "--backend", "keras", "--reason", "same data"]
    assert promote.main([*argv, "--by", "alice"]) == 0
    record = store.promotions()[0]
    assert record["data"].startswith("held-out test patients of xrays")
    held_out = splits_from_card(data, {"training_data": facts})["test"]
    assert record["comparison"]["candidate"]["images"] == len(held_out)
    out = capsys.readouterr().out
    assert "seed 7" in out and f"candidate trained on data manifest sha256 {'ab' * 32}" in out


def test_promoting_the_current_version_changes_nothing(store, check_dir, capsys):
    assert run(store, check_dir, "good-1", "--reason", "x") == 0
    assert "current already" in capsys.readouterr().out and store.promotions() == []


def test_an_unknown_version_is_a_clear_error(store, check_dir, capsys):
    assert run(store, check_dir, "nope-9", "--reason", "x") == 2
    assert "nope-9 is not in" in capsys.readouterr().err


def test_an_unreadable_image_is_a_clear_error_and_nothing_changes(store, tmp_path, capsys):
    check = write_check_images(tmp_path / "check", n=4)
    (check / "PNEUMONIA" / "patient-name.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert run(store, check, "good-2", "--reason", "x") == 2
    err = capsys.readouterr().err
    assert "an image in PNEUMONIA/ cannot be read" in err and "patient-name" not in err
    assert store.current_version() == "good-1" and store.promotions() == []
