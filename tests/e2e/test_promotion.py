"""Promote and roll back against a running stack: the real CLI moves what a real worker serves.

Real redis-server, the API under gunicorn, a worker process, and ``python -m model.promote``
run as a subprocess the way an ML engineer types it. v1 is the planted model (a bright corner
square means "Pneumonia", devstack.tiny_model.build_planted_model); v2 is the same network
with another decision threshold, so the results show which version scored them.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import requests
from PIL import Image

from devstack.api import AUTH, ApiServer
from devstack.client import post, result, wait_ready
from devstack.processes import python, wait_until
from devstack.settings import ROOT
from devstack.tiny_model import planted_square
from devstack.worker import Workers
from model.card import checksums
from model.store import LocalStore
from tests.model.test_promote import write_check_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def planted_version(planted_dir, out, version: str, threshold: float):
    """The planted weights as a run directory of another version name and threshold."""
    out.mkdir()
    (out / "model.keras").write_bytes((planted_dir / "model.keras").read_bytes())
    card = json.loads((planted_dir / "model_card.json").read_text())
    card.update(version=version, threshold=threshold, files=checksums(out))
    (out / "model_card.json").write_text(json.dumps(card))
    return out


@pytest.fixture
def store(tmp_path, planted_dir):
    """v1 current (its first publish), v2 a candidate: the planted weights at threshold 0.3."""
    store = LocalStore(tmp_path / "models")
    store.publish(planted_version(planted_dir, tmp_path / "run-v1", "v1", 0.5))
    store.add(planted_version(planted_dir, tmp_path / "run-v2", "v2", 0.3))
    return store


@pytest.fixture
def stack(redis_url, store, tmp_path):
    api = ApiServer(redis_url, tmp_path).start()
    workers = Workers(redis_url, store.root, tmp_path)
    workers.start("w-promote", INFERENCE_BACKEND="keras", WORKER_NICE="0")
    wait_ready(api.url)
    yield api.url
    workers.stop_all()
    api.stop()


def promote_cli(store, tmp_path, *args) -> subprocess.CompletedProcess:
    """``python -m model.promote`` as typed on the ml box, with the workers' settings."""
    env = {
        "MODEL_STORE": str(store.root),
        "INFERENCE_BACKEND": "keras",
        "MODEL_CACHE_DIR": str(tmp_path / "promote-cache"),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [python(), "-m", "model.promote", *args, "--bootstrap", "200"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def served(api: str) -> dict:
    return requests.get(api + "/v1/model", headers=AUTH, timeout=5).json()["card"]


def upload(api: str, tmp_path, seed: int) -> dict:
    """A pneumonia-like X-ray (the planted square), scored through the API."""
    img = planted_square(256, "tr", np.random.default_rng(seed)).astype(np.uint8)
    path = tmp_path / f"upload-{seed}.png"
    Image.fromarray(img).save(path)
    return result(api, post(api, path))


def test_promote_then_roll_back_through_a_running_worker(stack, store, tmp_path):
    api, check = stack, write_check_images(tmp_path / "check")
    card = served(api)
    assert card["version"] == "v1" and card["history"] == [] and "promotion" not in card
    assert upload(api, tmp_path, 1)["model_version"] == "v1"

    done = promote_cli(store, tmp_path, "v2", "--data", str(check), "--by", "dana",
                       "--reason", "retrained on the new scanner's films")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "current -> v2 (was v1)" in done.stdout and "candidate v2" in done.stdout
    wait_until(lambda: served(api)["version"] == "v2", timeout=60, what="the worker on v2")
    card = served(api)
    assert card["promotion"]["by"] == "dana" and card["promotion"]["previous"] == "v1"
    assert card["promotion"]["reason"] == "retrained on the new scanner's films"
    assert card["promotion"]["comparison"]["current"]["images"] == 48
    scored = upload(api, tmp_path, 2)
    assert (scored["model_version"], scored["threshold"]) == ("v2", 0.3)

    back = promote_cli(store, tmp_path, "v1", "--data", str(check), "--by", "erin",
                       "--reason", "rollback: v2 flags too many normals")  # fmt: skip
    assert back.returncode == 0, back.stderr
    wait_until(lambda: served(api)["version"] == "v1", timeout=60, what="the worker on v1")
    card = served(api)
    assert card["promotion"]["rollback"] is True and card["promotion"]["by"] == "erin"
    assert [(r["version"], r["by"]) for r in card["history"]] == [("v1", "erin"), ("v2", "dana")]
    scored = upload(api, tmp_path, 3)
    assert (scored["model_version"], scored["threshold"]) == ("v1", 0.5)

    listing = promote_cli(store, tmp_path, "--history")
    assert listing.returncode == 0 and "  * v1" in listing.stdout
    assert "v2 -> v1 rollback  by erin" in listing.stdout
