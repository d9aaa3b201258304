"""The worker serves calibrated probabilities and refuses images it must not read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jobs.model import ServedModel
from model import calibration, ood, preprocess
from model.inference import Worker
from model.serving.predictor import load_predictor
from model.store import LocalStore
from tests.model.test_assess import colour_photo, encoded
from tests.model.test_inference import records, settings, submit

CALIBRATION = {"method": "test", "a": 0.4, "b": -0.8, "n": 100}


def xray_like(seed: int, size: int = 128) -> np.ndarray:
    """Dark lungs either side of a bright mediastinum, ribs, noise: a chest-film layout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 150 - 90 * np.exp(-(((xx - 0.3) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    img -= 90 * np.exp(-(((xx - 0.7) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    img += 12 * np.sin(yy * 40) + rng.normal(0, 6, (size, size)) + rng.uniform(-15, 15)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def checked_store(tmp_path, tiny_model_dir):
    """The tiny model with a calibration and an input check fitted on X-ray-like images."""
    version = tmp_path / "src" / "tiny-cal"
    shutil.copytree(tiny_model_dir, version)
    card = json.loads((version / "model_card.json").read_text())
    pixels = np.stack([preprocess.prepare(encoded(xray_like(s), "PNG"), 32) for s in range(300)])
    params = ood.fit(pixels[:200], pixels[200:])
    # generated films are far more alike than real ones: widen the margin (real X-rays:
    # tests/model/test_assess.py), so only images of another kind are turned away
    params["threshold"] *= 3
    card.update(
        version="tiny-cal",
        calibration=CALIBRATION,
        threshold=0.3,
        input_check={"method": ood.METHOD, "threshold": params["threshold"], "params": params},
    )
    (version / "model_card.json").write_text(json.dumps(card))
    store = LocalStore(tmp_path / "models")
    store.publish(version, "tiny-cal")
    return store


def test_the_served_probability_is_the_calibrated_one(
    redis_client, redis_url, checked_store, tiny_model_dir
):
    images = [encoded(xray_like(100 + i), "PNG") for i in range(4)]
    ids = [submit(redis_client, 1, image=im, seed=50 + i)[0] for i, im in enumerate(images)]
    Worker(settings(redis_url, checked_store.root)).work(burst=True)
    raw = load_predictor(tiny_model_dir)  # the same network, no calibration in its card
    batch = np.stack([preprocess.prepare(img, 32) for img in images])
    expected = calibration.apply(CALIBRATION, raw.predict(batch))
    for rec, want in zip(records(redis_client, ids), expected, strict=True):
        assert rec.status == "done", rec.reason
        assert rec.probability == pytest.approx(want, abs=1e-4)
        assert rec.threshold == 0.3  # on the same scale
        assert rec.label == ("Pneumonia" if rec.probability >= 0.3 else "Normal")
    # the card the API and UI see leaves out the detector's bulky parameters
    served = ServedModel(redis_client).card()
    assert served["calibration"] == CALIBRATION and "params" not in served["input_check"]


def test_images_the_model_must_not_read_end_not_assessable(redis_client, redis_url, checked_store):
    rng = np.random.default_rng(0)
    cases = {
        "colour": (colour_photo(), "colour image"),
        "blank": (encoded(np.full((200, 200), 3, np.uint8), "PNG"), "blank"),
        # coarse blocks survive the resize (fine noise averages to grey: "blank")
        "blocks": (
            encoded(
                np.kron(rng.integers(0, 255, (8, 8)), np.ones((25, 25))).astype(np.uint8), "PNG"
            ),
            "does not look",
        ),
    }
    ids = {
        k: submit(redis_client, 1, image=img, seed=i)[0]
        for i, (k, (img, _)) in enumerate(cases.items())
    }
    good = submit(redis_client, 1, image=encoded(xray_like(7), "PNG"), seed=99)
    worker = Worker(settings(redis_url, checked_store.root))
    assert worker.work(burst=True) == 4
    for kind, pid in ids.items():
        [rec] = records(redis_client, [pid])
        assert rec.status == "not_assessable", kind
        assert cases[kind][1] in rec.reason
        assert rec.label is None and rec.probability is None and rec.error is None
        assert rec.model_version == "tiny-cal" and rec.attempts == 1
    [ok] = records(redis_client, good)
    assert ok.status == "done" and ok.label in ("Normal", "Pneumonia")


def test_an_external_evaluation_recorded_later_reaches_the_served_card(
    redis_client, redis_url, checked_store
):
    worker = Worker(settings(redis_url, checked_store.root))
    worker.maybe_reload()
    assert "external_evaluations" not in ServedModel(redis_client).card()
    path = checked_store.fetch("tiny-cal") / "model_card.json"
    card = json.loads(path.read_text())
    card["external_evaluations"] = [{"name": "other-hospital", "metrics": {"roc_auc": 0.9}}]
    path.write_text(json.dumps(card))  # what python -m model.evaluate does
    worker._next_poll = 0
    worker.maybe_reload()
    served = ServedModel(redis_client).card()
    assert served["external_evaluations"][0]["name"] == "other-hospital"
    assert worker.predictor.version == "tiny-cal"  # not reloaded, only the card refreshed
