"""The real request path: gunicorn API -> Redis -> inference worker processes -> result.

Real processes on free loopback ports, real full-resolution X-rays from ../shared/data.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
import requests

from devstack.api import AUTH, ApiServer
from devstack.client import post, result, wait_ready
from devstack.processes import wait_until
from devstack.worker import Workers
from jobs.keys import GROUP
from jobs.queue import JobQueue
from jobs.registry import WorkerRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def api(redis_url, tmp_path):
    server = ApiServer(redis_url, tmp_path).start()
    yield server.url
    server.stop()


@pytest.fixture
def workers(redis_url, model_store, tmp_path):
    w = Workers(redis_url, model_store.root, tmp_path)
    yield w
    w.stop_all()


def test_twenty_fullres_xrays_reach_done_and_repeats_hit_the_cache(api, workers, fullres_xrays):
    workers.start("w-a")
    wait_ready(api)
    files = fullres_xrays[:10] + fullres_xrays[-10:]  # both classes
    items = [post(api, f) for f in files]
    results = [result(api, i) for i in items]
    for f, r in zip(files, results, strict=True):
        assert r["status"] == "done", r
        assert 0.0 <= r["probability"] <= 1.0
        assert r["label"] in ("Pneumonia", "Normal") and r["model_version"] == "tiny-1"
        assert r["filename"] == f.name and not r["cached"]

    again = post(api, files[0])
    assert again["status"] == "done" and again["cached"] is True
    cached = requests.get(api + again["links"]["self"], headers=AUTH, timeout=5).json()
    assert cached["probability"] == results[0]["probability"]
    assert cached["id"] != results[0]["id"]

    history = requests.get(api + "/v1/predictions?limit=50", headers=AUTH, timeout=5).json()
    assert [h["id"] for h in history["items"]][:1] == [again["id"]]
    assert len(history["items"]) == 21


def test_a_worker_killed_mid_batch_loses_nothing(api, workers, redis_url, fullres_xrays):
    client = redis.Redis.from_url(redis_url)
    queue = JobQueue(client)
    first = workers.start("victim", MAX_BATCH="16", DECODE_THREADS="1")
    wait_ready(api)
    items = [post(api, f) for f in fullres_xrays[:40]]
    ids = [i["id"] for i in items]

    def someone_processing():
        return any(queue.get(i).status == "processing" for i in ids)

    wait_until(someone_processing, timeout=60, interval=0.01, what="a batch in progress")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    pending = client.xpending(queue.keys.stream, GROUP)["pending"]
    assert pending > 0, "the kill should land mid-batch"

    workers.start("rescuer", CLAIM_IDLE_MS="1500")
    results = [result(api, i) for i in items]
    assert all(r["status"] == "done" for r in results)
    by_victim = sum(r["worker"] == "victim" for r in results)
    rescued = [r for r in results if r["worker"] == "rescuer"]
    assert any(r["attempts"] == 2 for r in rescued), "a reclaimed job is finished by the rescuer"
    beat = wait_until(
        lambda: next(
            (
                w
                for w in WorkerRegistry(client).alive(30)
                if w["name"] == "rescuer" and int(w["processed"]) == len(rescued)
            ),
            None,
        ),
        timeout=10,
    )
    # each job recorded done exactly once: the rescuer wrote only what the victim had not
    assert by_victim + int(beat["processed"]) == len(items)
    assert client.xpending(queue.keys.stream, GROUP)["pending"] == 0


def test_sigterm_finishes_the_batch_in_hand_then_exits(api, workers, redis_url, fullres_xrays):
    queue = JobQueue(redis.Redis.from_url(redis_url))
    proc = workers.start("graceful", MAX_BATCH="4")
    wait_ready(api)
    items = [post(api, f) for f in fullres_xrays[:24]]
    wait_until(
        lambda: any(queue.get(i["id"]).status == "processing" for i in items),
        timeout=60,
        interval=0.01,
        what="a batch in progress",
    )
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0
    statuses = [queue.get(i["id"]).status for i in items]
    assert "processing" not in statuses and "failed" not in statuses
    assert statuses.count("done") >= 1
    assert queue.r.xpending(queue.keys.stream, GROUP)["pending"] == 0


def test_api_metrics_aggregate_across_gunicorn_workers(api):
    for _ in range(20):
        requests.get(api + "/healthz", timeout=5)
    text = requests.get(api + "/metrics", timeout=5).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("pneumonia_api_requests_total") and 'route="/healthz"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 20
    assert "pneumonia_queue_depth" in text


def test_uploads_wait_for_a_late_worker(api, workers, fullres_xrays):
    items = [post(api, f) for f in fullres_xrays[:3]]
    time.sleep(0.5)
    assert requests.get(api + "/readyz", timeout=5).status_code == 503
    workers.start("late")
    assert all(result(api, i)["status"] == "done" for i in items)
