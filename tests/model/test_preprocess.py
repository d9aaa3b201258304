"""Reduced-scale JPEG decoding: cheaper, and the same model input within a fraction of a grey
level (full-resolution originals from ../shared/data)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model import preprocess


@pytest.mark.parametrize("size", [64, 224])
def test_reduced_scale_decoding_matches_a_full_decode(fullres_xrays, size):
    diffs = []
    for path in fullres_xrays[::6]:
        data = path.read_bytes()
        fast = preprocess.prepare(data, size)
        full = preprocess.to_array(preprocess.decode(data), size)
        assert fast.shape == full.shape == (size, size, 3)
        diffs.append(np.abs(fast - full).mean())
    # measured: about 0.2 grey levels (of 255) at 224 px, 1 at 64 px
    assert np.mean(diffs) < (0.5 if size >= 224 else 1.5) and max(diffs) < 3, diffs


def test_training_images_are_not_reduced():
    """A 224 px training JPEG is decoded whole for any input above 56 px."""
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (224, 224), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    for size in (57, 64, 112, 224):
        full = preprocess.to_array(preprocess.decode(data), size)
        assert np.array_equal(preprocess.prepare(data, size), full)
