"""Training checks its data against the data set's manifest (model/datasets.py): a file that
fails its hash stops the run with its name (exit 2); a verified run's card names the data set
version. The manifest is written by the standard ``sha256sum``, not by our code."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from model import train

MANIFEST = "MANIFEST.sha256"


def kermany_with_manifest(real_train_dir: Path, root: Path, per_class: int = 16) -> Path:
    """``root/train/{NORMAL,PNEUMONIA}`` of real X-rays and a sha256sum manifest beside."""
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / "train" / cls).mkdir(parents=True)
        for src in sorted((real_train_dir / cls).iterdir())[:per_class]:
            shutil.copy(src, root / "train" / cls / src.name)
    names = sorted(p.relative_to(root).as_posix() for p in (root / "train").rglob("*.jpeg"))
    listing = subprocess.run(
        ["sha256sum", *names], cwd=root, capture_output=True, text=True, check=True
    )
    (root / MANIFEST).write_text(listing.stdout)
    return root


def argv(data: Path, out: Path) -> list[str]:
    """The smoke test's quick run: 32 px, one short epoch."""
    return [
        "--data",
        str(data),
        "--img-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--steps-per-epoch",
        "2",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0.25",
        "--bootstrap",
        "50",
        "--output",
        str(out),
        "--verbose",
        "2",
    ]


@pytest.mark.slow
def test_a_verified_run_records_the_data_set_version(real_train_dir, tmp_path, caplog):
    data = kermany_with_manifest(real_train_dir, tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="model.train"):
        assert train.main(argv(data, tmp_path / "run")) == 0
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    expected = hashlib.sha256((data / MANIFEST).read_bytes()).hexdigest()
    assert card["training_data"]["manifest_sha256"] == expected
    assert f"data verified: 32 files match {MANIFEST} (data set {expected}" in caplog.text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("corrupt", "sha256 differs from MANIFEST.sha256"),
        ("remove", "listed in MANIFEST.sha256 but missing"),
        ("add unlisted", "not listed in MANIFEST.sha256"),
    ],
)
def test_a_file_that_fails_the_manifest_stops_training(
    real_train_dir, tmp_path, capsys, change, problem
):
    data = kermany_with_manifest(real_train_dir, tmp_path / "data")
    image = sorted((data / "train" / "PNEUMONIA").iterdir())[3]
    if change == "corrupt":
        image.write_bytes(image.read_bytes()[:-64] + b"\0" * 64)
    elif change == "remove":
        image.unlink()
    else:
        image = shutil.copy(image, image.with_name(f"{image.stem}-extra.jpeg"))
    name = Path(image).relative_to(data).as_posix()
    assert train.main(argv(data, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert f"{name}: {problem}" in err, err
    assert not (tmp_path / "run" / "model.keras").exists()
