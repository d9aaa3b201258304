"""The worker's not-assessable checks: colour, blank, out of distribution."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model import assess, ood, preprocess


def encoded(arr: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def colour_photo(size=256, seed=0) -> bytes:
    """A procedural outdoor scene: blue sky, green ground, a red object."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    img[: size // 2] = (90, 150, 230)
    img[size // 2 :] = (60, 140, 50)
    img[size // 3 : size // 2, size // 4 : size // 2] = (200, 40, 30)
    return encoded(np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8))


def test_a_colour_photo_is_not_assessable():
    with pytest.raises(assess.NotAssessable, match="colour image"):
        assess.prepare_checked(colour_photo(), 32)


def test_grey_xrays_saved_as_rgb_are_read(fullres_xrays):
    """Many Kermany originals are RGB JPEGs with three equal channels: not colour."""
    for path in fullres_xrays:
        data = path.read_bytes()
        assert np.array_equal(assess.prepare_checked(data, 32), preprocess.prepare(data, 32))


@pytest.mark.parametrize("level", [0, 128, 255])
def test_blank_images_are_not_assessable(level):
    flat = np.full((300, 300), level, np.uint8)
    flat[0, 0] = 255 - level  # a stray pixel does not make an image
    with pytest.raises(assess.NotAssessable, match="blank"):
        assess.prepare_checked(encoded(flat, "PNG"), 32)


def test_out_of_distribution_check_on_real_xrays(real_train_dir):
    """Fitted on real chest X-rays; held-out ones pass, generated non-chest images do not."""
    from model.training.data import list_images, load_image

    paths = list_images(real_train_dir).paths[::6]  # ~870 images, both classes
    pixels = np.stack([load_image(p, 32) for p in paths]).astype(np.float32)
    train, val, test = pixels[0::3], pixels[1::3], pixels[2::3]
    params = ood.fit(train, val)
    report = ood.evaluate(params, test, 32, n=60)
    assert report["chest_xrays_rejected"] <= 0.03
    for kind in ("noise", "knee", "document", "inverted_chest", "rotated_chest"):
        assert report[f"{kind}_caught"] >= 0.9, (kind, report)
    assert report["photo_caught"] >= 0.7, report
    # the parameters are plain JSON (they travel in the model card)
    import json

    assert ood.outside(json.loads(json.dumps(params)), test[:5]).sum() == 0
