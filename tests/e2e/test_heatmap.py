"""Where the model looked: Grad-CAM heatmaps through the real API and a real worker process.

The worker serves a tiny CNN trained so that a bright square in a corner means "Pneumonia"
(devstack.tiny_model.build_planted_model). A correct heatmap must light up that corner and
follow the square when it moves; a PNG coming back is not enough.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import redis
import requests
from PIL import Image

from devstack.api import AUTH, ApiServer
from devstack.client import post, result, wait_ready
from devstack.processes import wait_until
from devstack.tiny_model import planted_square
from devstack.worker import Workers
from jobs.keys import Keys

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUADRANTS = {"tl": (0, 0), "tr": (0, 1), "bl": (1, 0), "br": (1, 1)}


@pytest.fixture
def api(redis_url, tmp_path):
    server = ApiServer(redis_url, tmp_path).start()
    yield server.url
    server.stop()


class PlantedWorkers(Workers):
    """Workers serving with Keras at normal priority: exporting to OpenVINO takes minutes on a
    busy 2-core host, and the heatmap reads the version's model.keras whatever the runtime."""

    def start(self, name: str, **env):
        return super().start(name, INFERENCE_BACKEND="keras", WORKER_NICE="0", **env)


@pytest.fixture
def workers(redis_url, planted_store, tmp_path):
    w = PlantedWorkers(redis_url, planted_store.root, tmp_path)
    yield w
    w.stop_all()


def xray_with_square(tmp_path, corner: str | None, seed: int, size=(320, 256)) -> object:
    """A PNG upload, not square (the map must be stretched back to the upload's shape)."""
    square = planted_square(256, corner, np.random.default_rng(seed))
    img = Image.fromarray(square.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
    path = tmp_path / f"square-{corner or 'none'}-{seed}.png"
    img.save(path)
    return path


def heatmap(api: str, item: dict, wait: float = 5) -> requests.Response:
    return requests.get(
        api + item["links"]["heatmap"], params={"wait": wait}, headers=AUTH, timeout=30
    )


def wait_heatmap(api: str, item: dict, timeout: float = 120) -> requests.Response:
    """Poll as a client does until the PNG is there."""

    def ready():
        resp = heatmap(api, item)
        assert resp.status_code in (200, 202), resp.text
        return resp if resp.status_code == 200 else None

    return wait_until(ready, timeout=timeout, interval=0.2, what=f"heatmap of {item['id']}")


def quadrant_weights(png: bytes) -> dict[str, float]:
    """Mean opacity of the heatmap layer in each quadrant (strong evidence is opaque)."""
    alpha = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[..., 3].astype(float)
    h, w = alpha.shape[0] // 2, alpha.shape[1] // 2
    return {
        k: alpha[r * h : (r + 1) * h, c * w : (c + 1) * w].mean() for k, (r, c) in QUADRANTS.items()
    }


def test_heatmap_highlights_the_planted_square_and_follows_it(api, workers, redis_url, tmp_path):
    workers.start("w-a")
    wait_ready(api, timeout=300)  # a busy shared host: the worker imports TensorFlow
    items = {
        c: post(api, xray_with_square(tmp_path, c, seed=i)) for i, c in enumerate(("tl", "br"))
    }
    for item in items.values():
        done = result(api, item)
        assert done["status"] == "done" and done["label"] == "Pneumonia", done

    first = heatmap(api, items["tl"], wait=0)  # nothing drawn yet: asked, answered at once
    assert first.status_code in (200, 202)
    if first.status_code == 202:
        assert first.json()["status"] == "computing" and first.headers["Retry-After"] == "1"

    for corner, item in items.items():
        resp = wait_heatmap(api, item)
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["X-Model-Version"] == "planted-1"
        img = Image.open(io.BytesIO(resp.content))
        assert img.mode == "RGBA" and img.size == (320, 256)  # the upload's shape
        weights = quadrant_weights(resp.content)
        others = [v for k, v in weights.items() if k != corner]
        assert weights[corner] > 20, weights  # clearly lit where the square is
        assert weights[corner] > 3 * max(others), weights  # and nowhere else as much

    keys, r = Keys(), redis.Redis.from_url(redis_url)
    pid = items["tl"]["id"]
    image_ttl, heatmap_ttl = r.pipeline().pttl(keys.image(pid)).pttl(keys.heatmap(pid)).execute()
    assert 0 < heatmap_ttl <= image_ttl  # expires with the image, never after it
    r.delete(keys.image(pid))  # the image expires: so does the right to a heatmap
    gone = heatmap(api, items["tl"], wait=0)
    assert gone.status_code == 404 and "Upload the X-ray again" in gone.json()["error"]["message"]


def test_heatmap_asked_while_no_worker_runs_is_drawn_after_a_restart(api, workers, tmp_path):
    workers.start("w-a")
    wait_ready(api, timeout=300)  # a busy shared host: the worker imports TensorFlow
    item = post(api, xray_with_square(tmp_path, "tr", seed=7))
    assert result(api, item)["status"] == "done"
    workers.stop_all()  # every worker gone (a deploy, a crash)

    asked = heatmap(api, item, wait=1)
    assert asked.status_code == 202, asked.text  # kept in Redis, not lost, not a 500
    workers.start("w-b")
    resp = wait_heatmap(api, item)
    weights = quadrant_weights(resp.content)
    assert weights["tr"] > 3 * max(v for k, v in weights.items() if k != "tr"), weights


def test_heatmap_refusals_are_clear(api, tmp_path):
    unknown = requests.get(
        api + "/v1/predictions/" + "0" * 32 + "/heatmap", headers=AUTH, timeout=5
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    item = post(api, xray_with_square(tmp_path, None, seed=3))  # no worker yet: still queued
    waiting = heatmap(api, item, wait=0)
    assert waiting.status_code == 409 and waiting.json()["error"]["code"] == "not_ready"
    too_long = heatmap(api, item, wait=3600)
    assert too_long.status_code == 400 and "'wait'" in too_long.json()["error"]["message"]
    no_token = requests.get(api + item["links"]["heatmap"], timeout=5)
    assert no_token.status_code == 401
