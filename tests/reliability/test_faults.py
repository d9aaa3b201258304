"""Faults with real processes: Redis and gunicorn workers killed, workers without a model.

Each proof counts the uploads the API accepted (202) and asserts every one of them reaches a
final state: the number lost must be 0. Clients get a clear error while the system is degraded.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from devstack.api import AUTH, ApiServer
from devstack.client import post, post_file, result, wait_ready
from devstack.processes import wait_until
from devstack.redis_server import RedisServer
from devstack.worker import Workers

from . import results

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def stack(own_redis, model_store, tmp_path):
    api = ApiServer(own_redis.url, tmp_path, workers=2).start()
    workers = Workers(own_redis.url, model_store.root, tmp_path)
    yield api, workers
    workers.stop_all()
    api.stop()


class Uploader(threading.Thread):
    """Keeps uploading in the background, counting what was accepted and what was refused."""

    def __init__(self, api_url, files, pause=0.05):
        super().__init__(daemon=True)
        self.api_url, self.files, self.pause = api_url, files, pause
        self.accepted, self.refused, self.errors = [], [], []
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            path = self.files[i % len(self.files)]
            i += 1
            try:
                resp = post_file(self.api_url, path, timeout=10)
            except requests.RequestException as exc:
                self.errors.append(type(exc).__name__)  # connection cut: not accepted
            else:
                if resp.status_code == 202:
                    self.accepted.extend(resp.json())
                else:
                    self.refused.append((resp.status_code, resp.json()["error"]["code"]))
            time.sleep(self.pause)


def final_states(api_url, items, timeout: float = 180) -> list[str]:
    """Each item's final status; 'lost' for one that never got there (or vanished), so a
    proof counts its losses instead of stopping at the first."""
    deadline = time.monotonic() + timeout
    states = []
    for item in items:
        try:
            left = max(1.0, deadline - time.monotonic())
            states.append(result(api_url, item, timeout=left)["status"])
        except (TimeoutError, KeyError):
            states.append("lost")
    return states


def test_redis_killed_and_restarted_loses_nothing(stack, own_redis, fullres_xrays):
    api, workers = stack
    workers.start("w1")
    wait_ready(api.url)
    up = Uploader(api.url, fullres_xrays[:8])
    up.start()
    wait_until(lambda: len(up.accepted) >= 5, timeout=60, what="uploads before the outage")
    own_redis.kill()
    t_down = time.monotonic()
    wait_until(
        lambda: any(code == 503 for code, _ in up.refused),
        timeout=30,
        what="a clear 503 while Redis is down",
    )
    ready = requests.get(api.url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["redis"] is False
    api_pids = {api.proc.pid, *api.children()}
    worker_pid = workers.procs["w1"].pid
    own_redis.start()  # same port, same AOF directory; the API and the worker are not restarted
    downtime = time.monotonic() - t_down
    n_before = len(up.accepted)
    wait_until(lambda: len(up.accepted) >= n_before + 5, timeout=60, what="recovery")
    up.halt.set()
    up.join(15)
    states = final_states(api.url, up.accepted)
    lost = sum(s != "done" for s in states)
    assert lost == 0
    assert {code for _, code in up.refused} <= {"service_unavailable"}
    results.record(
        "fault: redis kill -9 and restart",
        accepted=len(up.accepted),
        refused_503=len(up.refused),
        lost=lost,
        downtime_seconds=round(downtime, 1),
        api_restarted=api.proc.poll() is not None or api.proc.pid not in api_pids,
        worker_restarted=workers.procs["w1"].poll() is not None
        or workers.procs["w1"].pid != worker_pid,
    )


def test_gunicorn_worker_killed_during_uploads_loses_nothing(stack, fullres_xrays):
    api, workers = stack
    workers.start("w1")
    wait_ready(api.url)
    ups = [Uploader(api.url, fullres_xrays[i::4], pause=0.0) for i in range(4)]
    for u in ups:
        u.start()
    wait_until(lambda: sum(len(u.accepted) for u in ups) >= 8, timeout=60)
    victims = api.children()
    os.kill(victims[0], signal.SIGKILL)
    wait_until(
        lambda: set(api.children()) - set(victims),
        timeout=30,
        what="gunicorn to replace the killed worker",
    )
    n = sum(len(u.accepted) for u in ups)
    wait_until(lambda: sum(len(u.accepted) for u in ups) >= n + 8, timeout=60)
    for u in ups:
        u.halt.set()
        u.join(15)
    accepted = [i for u in ups for i in u.accepted]
    states = final_states(api.url, accepted)
    lost = sum(s != "done" for s in states)
    assert lost == 0
    cut = sum(len(u.errors) for u in ups)
    results.record(
        "fault: SIGKILL of a gunicorn worker during uploads",
        accepted=len(accepted),
        connections_cut=cut,
        lost=lost,
    )


def test_inference_worker_killed_mid_batch_loses_nothing(stack, own_redis, fullres_xrays):
    import redis as redis_lib

    from jobs.keys import GROUP
    from jobs.queue import JobQueue

    api, workers = stack
    queue = JobQueue(redis_lib.Redis.from_url(own_redis.url))
    # Queue the work first: the victim takes a batch as soon as its model is loaded.
    items = [post(api.url, f) for f in fullres_xrays]
    ids = [i["id"] for i in items]
    victim = workers.start("victim", MAX_BATCH="16", DECODE_THREADS="1")
    wait_until(
        lambda: any(queue.get(i).status == "processing" for i in ids),
        timeout=120,
        interval=0.005,
        what="the victim's first batch",
    )
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    in_flight = queue.r.xpending(queue.keys.stream, GROUP)["pending"]
    assert in_flight > 0, "the kill should land mid-batch"
    workers.start("rescuer", CLAIM_IDLE_MS="1500")
    states = final_states(api.url, items)
    lost = sum(s != "done" for s in states)
    assert lost == 0
    results.record(
        "fault: SIGKILL of an inference worker mid-batch",
        accepted=len(items),
        in_flight_at_kill=in_flight,
        lost=lost,
    )


def test_poison_image_fails_cleanly_and_the_worker_keeps_serving(stack, own_redis, fullres_xrays):
    """An image that passed the API but breaks preprocessing (stored bytes corrupted)."""
    import redis as redis_lib

    from jobs.queue import JobQueue

    api, workers = stack
    items = [post(api.url, f) for f in fullres_xrays[:4]]
    queue = JobQueue(redis_lib.Redis.from_url(own_redis.url))
    queue.r.set(queue.keys.image(items[0]["id"]), b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    workers.start("w1", MAX_ATTEMPTS="3")
    finals = [result(api.url, i) for i in items]
    assert finals[0]["status"] == "failed" and finals[0]["attempts"] == 1  # no pointless retries
    assert "could not be decoded" in finals[0]["error"]
    assert [f["status"] for f in finals[1:]] == ["done"] * 3
    later = post(api.url, fullres_xrays[5])
    assert result(api.url, later)["status"] == "done"
    states = final_states(api.url, [*items, later])
    results.record(
        "fault: poison image",
        attempts=finals[0]["attempts"],
        dead_letters=queue.queue_stats()["dead_letters"],
        others_done=states[1:].count("done"),
        lost=states.count("lost"),
    )


@pytest.mark.parametrize("kind", ["no model", "corrupt model"])
def test_worker_without_a_usable_model_keeps_jobs_waiting(
    stack, tmp_path, tiny_model_dir, fullres_xrays, kind, own_redis
):
    from model.store import LocalStore

    api, _ = stack
    store = LocalStore(tmp_path / f"store-{kind.replace(' ', '-')}")
    if kind == "corrupt model":
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
        (bad / "model_card.json").write_text('{"version": "bad-1", "input_size": 32}')
        store.publish(bad, "bad-1")
    workers = Workers(own_redis.url, store.root, tmp_path)
    workers.start("w-nomodel")
    try:
        expected = "make model" if kind == "no model" else "failed to load"

        def reported():
            resp = requests.get(api.url + "/readyz", timeout=5)
            return [resp] if expected in " ".join(resp.json()["reasons"]) else None

        [ready] = wait_until(reported, timeout=60, what=f"/readyz to say {expected!r}")
        assert ready.status_code == 503
        items = [post(api.url, f) for f in fullres_xrays[:3]]
        time.sleep(2)
        assert all(
            requests.get(api.url + i["links"]["self"], headers=AUTH, timeout=5).json()["status"]
            == "queued"
            for i in items
        )
        store.publish(tiny_model_dir, "tiny-1")
        states = final_states(api.url, items)
        assert states == ["done"] * 3
        results.record(f"fault: worker with {kind}", readyz=503, jobs_waiting=3, lost=0)
    finally:
        workers.stop_all()


def test_a_job_that_kills_the_worker_fails_alone_and_its_batch_mates_finish(
    stack, own_redis, fullres_xrays, tmp_path
):
    """A decoder crash takes the whole worker process down with its batch. Here the worker
    is SIGKILLed whenever a new attempt at one job starts (what a segfaulting decoder does
    to it) and restarted (what systemd's Restart=always does). That job must end failed
    after MAX_ATTEMPTS, alone: its batch-mates, reclaimed one by one, finish."""
    import redis as redis_lib

    from jobs.queue import JobQueue
    from jobs.record import FINAL

    api, workers = stack
    queue = JobQueue(redis_lib.Redis.from_url(own_redis.url))
    items = [post(api.url, f) for f in fullres_xrays[:8]]
    poison = items[3]["id"]
    env = {"MAX_BATCH": "16", "CLAIM_IDLE_MS": "1000", "MAX_ATTEMPTS": "3",
           "INFERENCE_BACKEND": "keras", "WORKER_NICE": "0"}  # fmt: skip  # quick restarts
    proc = workers.start("w1", **env)
    crashes, killed_at, deadline = 0, 0, time.monotonic() + 400
    while (rec := queue.get(poison)).status not in FINAL:
        if time.monotonic() > deadline:
            log = (tmp_path / "w1.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"poison still {rec.status} after {crashes} crashes; worker log:\n{log}")
        if rec.status == "processing" and killed_at < rec.attempts <= 3:
            os.killpg(proc.pid, signal.SIGKILL)  # the decoder crashed on it
            proc.wait(10)
            crashes, killed_at = crashes + 1, rec.attempts
            proc = workers.start("w1", **env)
        time.sleep(0.002)
    states = final_states(api.url, items)
    mates = [queue.get(i["id"]) for i in items if i["id"] != poison]
    assert crashes == 3
    assert states[3] == "failed" and "gave up after 3 attempts" in queue.get(poison).error
    assert [m.status for m in mates] == ["done"] * 7, [(m.status, m.error) for m in mates]
    results.record(
        "fault: a job that kills the worker process",
        jobs=len(items),
        worker_crashes=crashes,
        poison=states[3],
        batch_mates_done=sum(m.status == "done" for m in mates),
        batch_mates_max_attempts=max(m.attempts for m in mates),
        lost=states.count("lost"),
    )


def test_a_queue_past_its_limit_refuses_the_excess_and_loses_nothing(
    own_redis, model_store, tmp_path, fullres_xrays
):
    """No worker: uploads pile up to QUEUE_LIMIT, the rest get 503 + Retry-After and nothing
    of them is saved; once a worker starts, every accepted one is done."""
    import redis as redis_lib

    limit = 12
    api = ApiServer(own_redis.url, tmp_path, workers=2, QUEUE_LIMIT=str(limit),
                    QUEUE_RETRY_AFTER_SECONDS="7").start()  # fmt: skip
    workers = Workers(own_redis.url, model_store.root, tmp_path)
    r = redis_lib.Redis.from_url(own_redis.url)
    try:
        accepted, refused = [], []
        for i in range(limit + 8):
            resp = post_file(api.url, fullres_xrays[i % len(fullres_xrays)])
            if resp.status_code == 202:
                accepted += resp.json()
            else:
                refused.append(resp)
        assert len(accepted) == limit and len(refused) == 8
        assert {(x.status_code, x.headers["Retry-After"]) for x in refused} == {(503, "7")}
        assert {x.json()["error"]["code"] for x in refused} == {"queue_full"}
        assert sum(1 for _ in r.scan_iter("pneumonia:pred:*")) == limit  # the excess: nothing
        assert r.xlen("pneumonia:jobs") == limit  # nothing trimmed while waiting
        workers.start("w1", INFERENCE_BACKEND="keras", WORKER_NICE="0")
        states = final_states(api.url, accepted)
        assert states == ["done"] * limit
        results.record(
            "fault: queue past QUEUE_LIMIT with no worker",
            queue_limit=limit,
            sent=limit + 8,
            accepted=len(accepted),
            refused_503=len(refused),
            done=states.count("done"),
            lost=states.count("lost"),
        )
    finally:
        workers.stop_all()
        api.stop()
