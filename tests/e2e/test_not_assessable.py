"""Images the model must not read, through the real API (gunicorn) and worker processes.

The served model is the tiny test network with what ``make model`` adds to a card: a
calibration and an input check fitted on real chest X-rays from ../shared/data.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import requests
from PIL import Image

from devstack.api import AUTH, ApiServer
from devstack.client import result, wait_ready
from devstack.settings import TRAIN_224
from devstack.worker import Workers
from model import ood
from model.store import LocalStore
from model.training.data import list_images, load_image
from tests.api.dicom_factory import dicom_bytes
from tests.model.test_assess import colour_photo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def knee_like(size: int = 400) -> np.ndarray:
    return ood.synthetic("knee", 1, size, seed=3)[0][..., 0].astype(np.uint8)


@pytest.fixture
def real_train_dir():
    if not (TRAIN_224 / "NORMAL").is_dir():
        pytest.skip(f"no X-rays at {TRAIN_224}: put the shared data beside the project")
    return TRAIN_224


@pytest.fixture
def store(tmp_path, tiny_model_dir, real_train_dir):
    version = tmp_path / "src" / "tiny-checked"
    shutil.copytree(tiny_model_dir, version)
    paths = list_images(real_train_dir).paths[::8]
    pixels = np.stack([load_image(p, 32) for p in paths]).astype(np.float32)
    params = ood.fit(pixels[0::2], pixels[1::2])
    card = json.loads((version / "model_card.json").read_text())
    card.update(
        version="tiny-checked",
        calibration={"method": "test", "a": 0.5, "b": -0.5, "n": 1},
        input_check={"method": ood.METHOD, "threshold": params["threshold"], "params": params},
    )
    (version / "model_card.json").write_text(json.dumps(card))
    s = LocalStore(tmp_path / "models")
    s.publish(version, "tiny-checked")
    return s


@pytest.fixture
def api(redis_url, tmp_path):
    server = ApiServer(redis_url, tmp_path).start()
    yield server.url
    server.stop()


def upload(api_url: str, name: str, data: bytes) -> dict:
    resp = requests.post(
        api_url + "/v1/predictions", headers=AUTH, files={"file": (name, data)}, timeout=30
    )
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def test_wrong_images_end_not_assessable_real_xrays_get_a_label(
    api, redis_url, store, tmp_path, fullres_xrays
):
    workers = Workers(redis_url, store.root, tmp_path)
    workers.start("w-check", INFERENCE_BACKEND="keras")
    try:
        wait_ready(api, timeout=300)  # a loaded 2-core host takes minutes to import TF
        rng = np.random.default_rng(0)
        wrong = {
            "photo.jpg": (colour_photo(), "colour image"),
            "blank.png": (png(np.full((400, 400), 250, np.uint8)), "blank"),
            "knee.png": (png(knee_like()), "does not look like the frontal chest X-rays"),
            # fine noise averages out to a flat grey at the model's 32 px: "almost uniform"
            "noise.png": (png(rng.integers(0, 255, (400, 400), dtype=np.uint8)), "almost uniform"),
            "coarse.png": (
                png(np.kron(rng.integers(0, 255, (8, 8)), np.ones((50, 50))).astype(np.uint8)),
                "does not look",
            ),
            "ct.dcm": (dicom_bytes(modality="CT"), "modality is CT"),
            "panorama.png": (png(np.tile(knee_like(100), (1, 4))), "aspect ratio 4.0"),
        }
        items = {name: upload(api, name, data) for name, (data, _) in wrong.items()}
        xrays = fullres_xrays[:3] + fullres_xrays[-3:]
        good = [upload(api, f.name, f.read_bytes()) for f in xrays]
        for name, item in items.items():
            r = result(api, item)
            assert r["status"] == "not_assessable", (name, r)
            assert wrong[name][1] in r["reason"], (name, r["reason"])
            assert r["label"] is None and r["probability"] is None
        for f, item in zip(xrays, good, strict=True):
            r = result(api, item)
            assert r["status"] == "done", (f.name, r)
            assert r["label"] in ("Normal", "Pneumonia") and r["reason"] is None
    finally:
        workers.stop_all()
