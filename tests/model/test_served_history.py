"""The card a worker serves carries the promotion that made its version current and the
store's history, newest first: the UI's version history. Real Redis, real tiny models."""

from __future__ import annotations

import threading

from devstack.processes import wait_until
from devstack.tiny_model import build_tiny_model
from jobs.model import ServedModel
from model import inference
from model.inference import Worker
from tests.model.test_inference import settings


def record(version, previous, at, **kw):
    return {"version": version, "previous": previous, "at": at, "by": "alice", "reason": "r", **kw}


def test_a_promotion_is_served_with_its_record_and_the_history(
    redis_client, redis_url, model_store, tmp_path
):
    served = ServedModel(redis_client)
    worker = Worker(settings(redis_url, model_store.root))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_until(lambda: (served.card() or {}).get("version") == "tiny-1", timeout=30)
        first = served.card()
        assert "promotion" not in first and first["history"] == []  # a first publish
        model_store.add(build_tiny_model(tmp_path / "v2", version="tiny-2", bias=3.0))
        promoted = record("tiny-2", "tiny-1", "2026-11-27T10:00:00.000001Z")
        model_store.add_record(promoted)
        model_store.set_current("tiny-2")
        wait_until(lambda: served.card()["version"] == "tiny-2", timeout=30)
        assert served.card()["promotion"] == promoted
        assert served.card()["history"] == [promoted]
        # A record written while the version is served shows without a reload.
        back = record("tiny-1", "tiny-2", "2026-11-27T11:00:00.000001Z", rollback=True)
        model_store.add_record(back)
        wait_until(lambda: len(served.card()["history"]) == 2, timeout=30)
        assert served.card()["history"] == [back, promoted]
        assert served.card()["promotion"] == promoted  # still serving tiny-2
        model_store.set_current("tiny-1")
        wait_until(lambda: served.card()["version"] == "tiny-1", timeout=30)
        assert served.card()["promotion"] == back
    finally:
        worker.request_stop()
        thread.join(10)


def test_the_history_is_capped_newest_first():
    records = [record(f"v{i}", None, f"2026-11-27T10:{59 - i:02d}:00Z") for i in range(30)]
    card = inference.served_card({"version": "v25", "input_check": {"params": 1, "x": 2}}, records)
    assert len(card["history"]) == inference.HISTORY_LIMIT == 20
    assert card["history"][0]["version"] == "v0"
    assert card["promotion"]["version"] == "v25"  # found beyond the 20 shown
    assert card["input_check"] == {"x": 2}
