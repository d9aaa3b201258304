"""The inference worker against a real Redis and a tiny real Keras model."""

from __future__ import annotations

import threading

import pytest
import redis

from devstack.processes import wait_until
from devstack.tiny_model import build_tiny_model
from jobs.keys import GROUP
from jobs.model import ServedModel
from jobs.queue import JobQueue
from jobs.record import Prediction, new_id
from jobs.registry import WorkerRegistry
from model.inference import Worker
from model.serving.settings import WorkerSettings
from tests.api.conftest import png_bytes


def settings(redis_url, store_root, **kw) -> WorkerSettings:
    base = dict(
        redis_url=redis_url,
        model_store=str(store_root),
        name="w1",
        max_batch=8,
        batch_wait_ms=10,
        block_ms=100,
        claim_idle_ms=60_000,
        max_attempts=3,
        heartbeat_seconds=0.2,
        model_poll_seconds=0.2,
        metrics_port=0,
        backend="keras",  # the loop is under test; backends: tests/model/serving/test_predictor.py
    )
    base.update(kw)
    return WorkerSettings(**base)


def submit(client, n=1, image=None, seed=0) -> list[str]:
    queue = JobQueue(client)
    queue.ensure_group()
    ids = []
    for i in range(n):
        data = image if image is not None else png_bytes(96, 80, seed=seed + i)
        p = Prediction(id=new_id(), filename=f"{i}.png", sha256=f"sha-{seed + i}", uploader="test")
        queue.submit(p, data)
        ids.append(p.id)
    return ids


def records(client, ids):
    queue = JobQueue(client)
    return [queue.get(i) for i in ids]


def test_batch_is_predicted_and_written(redis_client, redis_url, model_store):
    ids = submit(redis_client, 12)
    worker = Worker(settings(redis_url, model_store.root))
    assert worker.work(burst=True) == 12
    for rec in records(redis_client, ids):
        assert rec.status == "done"
        assert 0.0 <= rec.probability <= 1.0
        assert rec.label == ("Pneumonia" if rec.probability >= rec.threshold else "Normal")
        assert rec.model_version == "tiny-1" and rec.attempts == 1
    # every job acknowledged; the served model's card is published for the API and UI
    assert redis_client.xpending(JobQueue(redis_client).keys.stream, GROUP)["pending"] == 0
    assert ServedModel(redis_client).card()["version"] == "tiny-1"


def test_undecodable_image_fails_at_once_and_others_complete(redis_client, redis_url, model_store):
    """Decoding is deterministic: no retries, a message that says what to do, a dead letter."""
    poison = submit(redis_client, 1, image=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    good = submit(redis_client, 3, seed=10)
    worker = Worker(settings(redis_url, model_store.root))
    worker.work(burst=True)
    [bad] = records(redis_client, poison)
    assert bad.status == "failed" and bad.attempts == 1
    assert "could not be decoded" in bad.error and "upload it again" in bad.error
    assert all(r.status == "done" for r in records(redis_client, good))
    dead = redis_client.xrange(JobQueue(redis_client).keys.dead_letter)
    assert [f[b"id"].decode() for _, f in dead] == poison


def test_jobs_of_a_dead_worker_are_reclaimed(redis_client, redis_url, model_store):
    ids = submit(redis_client, 4)
    queue = JobQueue(redis_client)
    taken = queue.read("crashed-worker", 10, None)  # delivered, never acknowledged
    for _, pid in taken:
        queue.start_batch([pid], "crashed-worker")
    assert len(taken) == 4
    worker = Worker(settings(redis_url, model_store.root, claim_idle_ms=50))
    wait_until(
        lambda: (
            redis_client.xpending_range(queue.keys.stream, GROUP, "-", "+", 1)[0][
                "time_since_delivered"
            ]
            > 60
        ),
        timeout=5,
    )
    worker.work(burst=True)
    for rec in records(redis_client, ids):
        assert rec.status == "done" and rec.attempts == 2 and rec.worker == "w1"


def test_a_new_model_is_picked_up_without_restart(redis_client, redis_url, model_store, tmp_path):
    worker = Worker(settings(redis_url, model_store.root))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        first = submit(redis_client, 1)
        wait_until(lambda: records(redis_client, first)[0].status == "done", timeout=30)
        model_store.publish(build_tiny_model(tmp_path / "v2", version="tiny-2", bias=3.0), "tiny-2")
        wait_until(lambda: worker.predictor.version == "tiny-2", timeout=30)
        second = submit(redis_client, 1, seed=50)
        wait_until(lambda: records(redis_client, second)[0].status == "done", timeout=30)
        assert records(redis_client, first)[0].model_version == "tiny-1"
        assert records(redis_client, second)[0].model_version == "tiny-2"
    finally:
        worker.request_stop()
        thread.join(10)
    assert not thread.is_alive()


def test_without_a_model_jobs_wait_until_one_is_published(
    redis_client, redis_url, tmp_path, tiny_model_dir
):
    from model.store import LocalStore

    store = LocalStore(tmp_path / "empty-store")
    worker = Worker(settings(redis_url, store.root))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        ids = submit(redis_client, 2)
        beats = wait_until(lambda: WorkerRegistry(redis_client).alive(10), timeout=10)
        assert beats[0]["state"] == "no-model" and "make model" in beats[0]["detail"]
        assert all(r.status == "queued" for r in records(redis_client, ids))
        store.publish(tiny_model_dir, "tiny-1")
        wait_until(lambda: all(r.status == "done" for r in records(redis_client, ids)), timeout=30)
    finally:
        worker.request_stop()
        thread.join(10)


def test_a_corrupt_model_is_reported_and_jobs_wait(
    redis_client, redis_url, tmp_path, tiny_model_dir
):
    from model.store import LocalStore

    store = LocalStore(tmp_path / "store")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a keras file")
    (broken / "model_card.json").write_text('{"version": "broken-1", "input_size": 32}')
    store.publish(broken, "broken-1")
    ids = submit(redis_client, 2)
    worker = Worker(settings(redis_url, store.root))
    assert worker.work(burst=True) == 0
    assert worker.state == "error"
    beat = WorkerRegistry(redis_client).alive(10)[0]
    assert "broken-1 failed to load" in beat["detail"]
    assert all(r.status == "queued" for r in records(redis_client, ids))


def test_redis_outage_does_not_kill_the_worker(redis_url, model_store):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)
    worker = Worker(settings(redis_url, model_store.root), client=dead)
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    wait_until(lambda: thread.is_alive(), timeout=2)
    worker.request_stop()
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize("size", [32])
def test_worker_input_matches_training_preprocessing(size, tmp_path):
    """Serving resizes exactly as model.preprocess does for training: same tensor."""
    import numpy as np

    from model import preprocess

    data = png_bytes(300, 200, seed=3)
    a = preprocess.prepare(data, size)
    b = preprocess.to_array(preprocess.decode(data), size)
    assert a.shape == (size, size, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
