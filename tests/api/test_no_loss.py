"""Nothing accepted is lost, nothing refused is half-saved: backpressure, idempotent retries,
one transaction per request, and a stream trimmed only below what the workers acknowledged."""

from __future__ import annotations

import io

import numpy as np
import pytest
import redis
from PIL import Image

from devstack.redis_server import RedisServer
from jobs.keys import GROUP
from jobs.queue import JobQueue
from jobs.record import Prediction, new_id
from pneumonia_api import create_app
from tests.api.conftest import TOKEN, png_bytes, upload

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api(redis_url: str, **config):
    return create_app({"REDIS_URL": redis_url, "API_TOKEN": TOKEN, **config}).test_client()


def saved(client: redis.Redis) -> tuple[int, int]:
    """(records, stream entries) in Redis."""
    records = sum(1 for _ in client.scan_iter("pneumonia:pred:*"))
    stream = client.xlen("pneumonia:jobs") if client.exists("pneumonia:jobs") else 0
    return records, stream


def test_past_queue_limit_the_api_answers_503_and_saves_nothing(redis_url, redis_client):
    client = api(redis_url, QUEUE_LIMIT=3, QUEUE_RETRY_AFTER_SECONDS=17)
    for seed in range(3):
        assert upload(client, AUTH, (png_bytes(seed=seed), f"{seed}.png")).status_code == 202
    before = saved(redis_client)
    resp = upload(client, AUTH, (png_bytes(seed=9), "9.png"))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "17"
    assert resp.get_json()["error"]["code"] == "queue_full"
    assert saved(redis_client) == before == (3, 3)
    # a request that would cross the limit is refused whole, not in part
    client = api(redis_url, QUEUE_LIMIT=4)
    resp = upload(client, AUTH, (png_bytes(seed=10), "a.png"), (png_bytes(seed=11), "b.png"))
    assert resp.status_code == 503 and saved(redis_client) == (3, 3)


def test_a_retry_with_the_same_idempotency_key_returns_the_first_job(client, redis_client):
    first = upload(client, {**AUTH, "Idempotency-Key": "k-0001-abcd"}, (png_bytes(), "a.png"))
    again = upload(client, {**AUTH, "Idempotency-Key": "k-0001-abcd"}, (png_bytes(), "a.png"))
    assert first.status_code == again.status_code == 202
    assert again.get_json()[0]["id"] == first.get_json()[0]["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert saved(redis_client) == (1, 1)
    other = upload(client, {**AUTH, "Idempotency-Key": "k-0002-abcd"}, (png_bytes(), "a.png"))
    assert other.get_json()[0]["id"] != first.get_json()[0]["id"]
    # the key is scoped to the uploader: another user's key never returns this job
    bob = {**AUTH, "Idempotency-Key": "k-0001-abcd", "X-Uploader": "bob"}
    assert upload(client, bob, (png_bytes(), "a.png")).get_json()[0]["id"] not in {
        first.get_json()[0]["id"],
        other.get_json()[0]["id"],
    }
    # no client text in key names
    assert not any(b"k-0001" in key for key in redis_client.scan_iter())


def test_a_malformed_idempotency_key_is_refused_with_what_to_send(client):
    resp = upload(client, {**AUTH, "Idempotency-Key": "x"}, (png_bytes(), "a.png"))
    assert resp.status_code == 400
    assert "UUID" in resp.get_json()["error"]["message"]


def noise_png(side: int, seed: int) -> bytes:
    """A PNG that does not compress: its size in Redis is about its pixel count."""
    arr = np.random.default_rng(seed).integers(0, 255, (side, side), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def test_a_request_that_redis_refuses_half_way_saves_none_of_its_files(tmp_path):
    """maxmemory reached while the third file of a request is written: 503, and neither the
    first nor the second file is left queued (the answer says nothing was saved)."""
    files = [noise_png(700, seed) for seed in range(3)]  # about 0.5 MB each
    server = RedisServer(tmp_path / "redis", durable=False).start()
    try:
        r = redis.Redis.from_url(server.url)
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", used + int(2.5 * len(files[0])))
        client = api(server.url)
        resp = upload(client, AUTH, *((f, f"{i}.png") for i, f in enumerate(files)))
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"]["code"] == "store_full"
        assert int(resp.headers["Retry-After"]) > 0
        assert saved(r) == (0, 0)
        assert not any(r.scan_iter("pneumonia:img:*"))
        r.config_set("maxmemory", 0)  # room again: the same request goes through whole
        again = upload(client, AUTH, *((f, f"{i}.png") for i, f in enumerate(files)))
        assert again.status_code == 202
        assert saved(r) == (3, 3)
    finally:
        server.stop()


def _entries(client: redis.Redis) -> list[str]:
    return [eid.decode() for eid, _ in client.xrange("pneumonia:jobs")]


def test_the_stream_is_trimmed_only_below_what_the_group_acknowledged(redis_client):
    queue = JobQueue(redis_client)
    queue.ensure_group()
    for _ in range(6):
        queue.submit(Prediction(id=new_id()), b"img")
    delivered = queue.read("w1", count=4, block_ms=100)  # e1..e4 pending; e5, e6 undelivered
    e = [eid for eid, _ in delivered] + _entries(redis_client)[4:]
    queue.ack(e[0])
    queue.ack(e[2])  # e2 and e4 still pending
    queue.trim_acknowledged()
    assert _entries(redis_client) == e[1:]  # only e1: everything from the oldest pending stays
    queue.ack(e[1])
    queue.ack(e[3])
    queue.trim_acknowledged()
    assert _entries(redis_client) == e[3:]  # up to the last delivered; e5, e6 untouched
    assert [eid for eid, _ in queue.read("w1", count=10, block_ms=100)] == e[4:]
    assert redis_client.xpending("pneumonia:jobs", GROUP)["pending"] == 2


@pytest.mark.parametrize("depth", [0, 5])
def test_waiting_counts_undelivered_and_pending_jobs(redis_client, depth):
    queue = JobQueue(redis_client)
    queue.ensure_group()
    for _ in range(depth):
        queue.submit(Prediction(id=new_id()), b"img")
    queue.read("w1", count=2, block_ms=100)
    assert queue.waiting() == depth
