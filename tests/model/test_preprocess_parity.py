"""Serving cannot drift from training: the same file gives the same tensor on both paths."""

from __future__ import annotations

import numpy as np
import pytest

from model import preprocess
from model.training import data
from tests.model.conftest import make_folder


def training_tensor(path: str, size: int) -> np.ndarray:
    """What model.training feeds the model for one file (the cached tf.data pipeline)."""
    split = data.Split([path], [1])
    ((image, _label),) = data.dataset(split, size, cache="").as_numpy_iterator()
    return image.astype(np.float32)  # the model's first layer sees it as float32


def serving_tensor(path: str, size: int) -> np.ndarray:
    """What the inference worker feeds the model: preprocess.prepare on the uploaded bytes."""
    with open(path, "rb") as fh:
        return preprocess.prepare(fh.read(), size)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_generated_file_same_tensor(tmp_path, size):
    root = make_folder(tmp_path / "x", 1, 1)
    for path in data.list_images(root).paths:
        train, serve = training_tensor(path, size), serving_tensor(path, size)
        assert train.shape == serve.shape == (size, size, 3)
        np.testing.assert_array_equal(train, serve)


@pytest.mark.parametrize("size", [64, 224])
def test_real_xray_same_tensor(real_train_dir, size):
    path = str(sorted((real_train_dir / "PNEUMONIA").glob("*.jpeg"))[0])
    np.testing.assert_array_equal(training_tensor(path, size), serving_tensor(path, size))


def test_fullres_upload_same_tensor(fullres_xrays):
    """A full-resolution film, as a clinician uploads it, goes through the same function."""
    path = str(fullres_xrays[0])
    np.testing.assert_array_equal(training_tensor(path, 64), serving_tensor(path, 64))
