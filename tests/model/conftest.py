"""Fixtures for the model tests: small generated folders in the Kermany layout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from devstack.settings import TRAIN_224


def jpeg_bytes(seed: int, size: int = 48, bright: bool = False) -> bytes:
    """A small greyscale JPEG; 'pneumonia' images get a bright blob so a model can tell."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 90, (size, size), dtype=np.uint8)
    if bright:
        arr[size // 4 : size // 2, size // 4 : 3 * size // 4] += 120
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="JPEG")
    return buf.getvalue()


def make_folder(root: Path, normal_patients: int = 6, pneumonia_patients: int = 6) -> Path:
    """``root/{NORMAL,PNEUMONIA}`` with Kermany-style names, several films per patient."""
    (root / "NORMAL").mkdir(parents=True, exist_ok=True)
    (root / "PNEUMONIA").mkdir(parents=True, exist_ok=True)
    seed = 0
    for p in range(normal_patients):
        prefix = "NORMAL2-IM-" if p % 2 else "IM-"
        for film in range(1 + p % 3):
            seed += 1
            name = f"{prefix}{1000 + p:04d}-{film + 1:04d}.jpeg"
            (root / "NORMAL" / name).write_bytes(jpeg_bytes(seed))
    for p in range(pneumonia_patients):
        kind = "bacteria" if p % 2 else "virus"
        for _film in range(1 + p % 3):
            seed += 1
            name = f"person{p + 1}_{kind}_{seed}.jpeg"
            (root / "PNEUMONIA" / name).write_bytes(jpeg_bytes(seed, bright=True))
    return root


@pytest.fixture
def kermany_train_only(tmp_path) -> Path:
    """``<root>/train/{NORMAL,PNEUMONIA}`` like ../shared/data/chest_xray_224."""
    make_folder(tmp_path / "xrays" / "train", 20, 20)
    return tmp_path / "xrays"


@pytest.fixture
def kermany_full(tmp_path) -> Path:
    """``<root>/{train,val,test}/{NORMAL,PNEUMONIA}`` like the published dataset."""
    root = tmp_path / "kermany"
    make_folder(root / "train", 8, 8)
    make_folder(root / "val", 2, 2)
    make_folder(root / "test", 3, 3)
    return root


@pytest.fixture(scope="session")
def real_train_dir() -> Path:
    """The real 224 px train split (skip when the shared data is absent)."""
    if not (TRAIN_224 / "NORMAL").is_dir():
        pytest.skip(
            f"no X-rays at {TRAIN_224}: put the shared data beside the project or set SHARED_DATA"
        )
    return TRAIN_224


@pytest.fixture
def s3():
    """A moto S3 (in process) with the bucket ``models``, for the model store's S3 tests."""
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield client
