"""Loaders: both folder layouts, patient ids, and a patient-disjoint stratified split."""

from __future__ import annotations

import pytest

from model.training import data


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person123_bacteria_456.jpeg", "person123"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-1326-0001.jpeg", "NORMAL2-IM-1326"),
        ("scan.png", "scan"),
    ],
)
def test_patient_id_follows_the_kermany_names(name, patient):
    assert data.patient_id(f"/x/NORMAL/{name}") == patient


def test_train_only_layout_is_carved_by_patient(kermany_train_only):
    splits = data.training_splits(kermany_train_only, 0.2, 0.2, seed=7)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert train.patients().isdisjoint(val.patients())
    assert train.patients().isdisjoint(test.patients())
    assert val.patients().isdisjoint(test.patients())
    everything = data.list_images(kermany_train_only / "train")
    assert sorted(train.paths + val.paths + test.paths) == sorted(everything.paths)
    for part in (val, test):  # stratified: both classes on every side
        assert part.counts()["NORMAL"] > 0 and part.counts()["PNEUMONIA"] > 0


def test_split_is_seeded(kermany_train_only):
    a = data.training_splits(kermany_train_only, 0.2, 0.2, seed=1)
    b = data.training_splits(kermany_train_only, 0.2, 0.2, seed=1)
    c = data.training_splits(kermany_train_only, 0.2, 0.2, seed=2)
    assert a["val"].paths == b["val"].paths
    assert a["val"].paths != c["val"].paths


def test_full_layout_uses_given_test_and_carves_a_too_small_val(kermany_full):
    splits = data.training_splits(kermany_full, 0.25, 0.25)
    assert splits["test"].paths == data.list_images(kermany_full / "test").paths
    # the given val/ has < MIN_VAL_IMAGES images (like Kaggle's 16): carved from train instead
    assert all("/train/" in p for p in splits["val"].paths)
    assert splits["train"].patients().isdisjoint(splits["val"].patients())


def test_full_layout_keeps_a_large_enough_val(kermany_full, monkeypatch):
    monkeypatch.setattr(data, "MIN_VAL_IMAGES", 1)
    splits = data.training_splits(kermany_full, 0.25, 0.25)
    assert splits["val"].paths == data.list_images(kermany_full / "val").paths


def test_labels_follow_the_class_folders(kermany_full):
    split = data.list_images(kermany_full / "train")
    for path, label in zip(split.paths, split.labels, strict=True):
        assert ("/PNEUMONIA/" in path) == (label == 1)


def test_evaluation_split_reads_test_only_and_bare_folders(kermany_full, tmp_path):
    name, split = data.evaluation_split(kermany_full)
    assert name == "test" and len(split) == len(data.list_images(kermany_full / "test"))
    bare = kermany_full / "test"
    name, split = data.evaluation_split(bare)
    assert name == "test" and len(split) > 0


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(data.DataError, match="Kermany"):
        data.resolve_root(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(data.DataError, match="--data"):
        data.training_splits(tmp_path / "empty")


def test_class_weights_balance_the_classes():
    weights = data.class_weights([0] * 25 + [1] * 75)
    assert weights[0] * 25 == pytest.approx(weights[1] * 75)
    assert data.class_weights([1, 1]) == {0: 1.0, 1: 1.0}


def test_real_train_split_is_patient_disjoint(real_train_dir):
    splits = data.training_splits(real_train_dir.parent)
    assert sum(len(s) for s in splits.values()) == 5216
    assert (
        splits["train"].patients().isdisjoint(splits["val"].patients() | splits["test"].patients())
    )
    for part in splits.values():  # stratified: NORMAL share stays near 1341 / 5216
        assert abs(part.counts()["NORMAL"] / len(part) - 1341 / 5216) < 0.03


def test_shifted_split_holds_out_the_latest_patients_of_each_family(kermany_train_only):
    full = data.list_images(kermany_train_only / "train")
    early, late = data.shifted_split(full, 0.25)
    assert len(early) + len(late) == len(full)
    assert not early.patients() & late.patients()
    for fam in {data.family(p) for p in full.patients()}:
        early_ids = [data.patient_number(p) for p in early.patients() if data.family(p) == fam]
        late_ids = [data.patient_number(p) for p in late.patients() if data.family(p) == fam]
        assert late_ids and max(early_ids) < min(late_ids)  # every family, its latest ids


def test_training_splits_with_shift_and_calibration_are_patient_disjoint(kermany_train_only):
    splits = data.training_splits(
        kermany_train_only, 0.15, 0.15, seed=3, shift_fraction=0.3, calib_fraction=0.15
    )
    assert set(splits) == {"train", "val", "test", "calib", "shift_val", "shift_test"}
    names = list(splits)
    for i, a in enumerate(names):
        assert splits[a].paths, a
        for b in names[i + 1 :]:
            assert not splits[a].patients() & splits[b].patients(), (a, b)
    # the card's record of the split rebuilds exactly the same held-out patients
    card = {
        "training_data": {
            "split": {
                "val_fraction": 0.15,
                "test_fraction": 0.15,
                "seed": 3,
                "shift_fraction": 0.3,
                "calib_fraction": 0.15,
            }
        }
    }
    name, rebuilt = data.evaluation_split(kermany_train_only, card, "shift_test")
    assert name == "shift_test" and rebuilt.paths == splits["shift_test"].paths
