"""A broken model never reads "Normal", a tampered one is never served, and the stream the
worker consumes is trimmed only below what it acknowledged. Real Redis, real tiny models."""

from __future__ import annotations

import json
import shutil
import threading

from devstack.processes import wait_until
from devstack.tiny_model import build_tiny_model
from jobs.registry import WorkerRegistry
from model.inference import Worker
from model.store import LocalStore
from tests.model.test_inference import records, settings, submit


def test_a_nan_probability_fails_the_job_with_its_reason(redis_client, redis_url, tmp_path):
    store = LocalStore(tmp_path / "store")
    store.publish(build_tiny_model(tmp_path / "nan", version="nan-1", bias=float("nan")), "nan-1")
    ids = submit(redis_client, 3)
    Worker(settings(redis_url, store.root)).work(burst=True)
    for rec in records(redis_client, ids):
        assert rec.status == "failed" and rec.label is None
        assert "no valid probability (nan)" in rec.error
    assert redis_client.xlen("pneumonia:jobs:dead") == 3


def test_a_model_that_does_not_match_its_card_is_refused_and_the_old_one_kept(
    redis_client, redis_url, model_store, tmp_path
):
    worker = Worker(settings(redis_url, model_store.root))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.predictor and worker.predictor.version == "tiny-1", timeout=30)
        swapped = build_tiny_model(tmp_path / "v2", version="tiny-2", bias=3.0)
        other = build_tiny_model(tmp_path / "other", version="other", bias=-3.0)
        shutil.copy(other / "model.keras", swapped / "model.keras")  # card still says tiny-2's
        model_store.publish(swapped, "tiny-2")

        def refused():
            beats = WorkerRegistry(redis_client).alive(10)
            return beats and "tiny-2 failed to load" in beats[0]["detail"]

        wait_until(refused, timeout=30)
        ids = submit(redis_client, 2, seed=70)
        wait_until(lambda: all(r.status == "done" for r in records(redis_client, ids)), timeout=30)
        assert {r.model_version for r in records(redis_client, ids)} == {"tiny-1"}
        assert worker.state == "ready"
    finally:
        worker.request_stop()
        thread.join(10)


def test_a_card_without_checksums_is_not_served(redis_client, redis_url, tmp_path):
    plain = build_tiny_model(tmp_path / "plain", version="plain-1")
    card = json.loads((plain / "model_card.json").read_text())
    del card["files"]
    (plain / "model_card.json").write_text(json.dumps(card))
    store = LocalStore(tmp_path / "store")
    store.publish(plain, "plain-1")
    ids = submit(redis_client, 1)
    worker = Worker(settings(redis_url, store.root))
    assert worker.work(burst=True) == 0
    assert "plain-1 failed to load" in worker.detail
    assert records(redis_client, ids)[0].status == "queued"


def test_the_worker_trims_what_it_acknowledged(redis_client, redis_url, model_store):
    ids = submit(redis_client, 20)
    assert redis_client.xlen("pneumonia:jobs") == 20
    worker = Worker(settings(redis_url, model_store.root, heartbeat_seconds=0))
    worker.work(burst=True)
    assert all(r.status == "done" for r in records(redis_client, ids))
    worker.beat(force=True)
    assert redis_client.xlen("pneumonia:jobs") <= 1  # the last delivered entry may stay
