"""The heatmap part of the job contract (jobs.heatmaps) against a real redis-server."""

from __future__ import annotations

from jobs.heatmaps import Heatmaps, HeatmapStatus
from jobs.keys import Keys

PID = "a" * 32


def test_polling_asks_once_until_the_request_expires(redis_client):
    maps = Heatmaps(redis_client, retry_seconds=30)
    assert maps.ask(PID) is True
    assert [maps.ask(PID) for _ in range(5)] == [False] * 5  # polls do not pile up requests
    assert maps.waiting() == 1
    redis_client.delete(Keys().heatmap_asked(PID))  # the marker expired: the worker died
    assert maps.ask(PID) is True and maps.waiting() == 2
    assert maps.next_request(timeout=0.1) == PID


def test_a_heatmap_expires_with_its_image_and_never_outlives_it(redis_client):
    keys, maps = Keys(), Heatmaps(redis_client, failure_ttl=300)
    redis_client.set(keys.image(PID), b"png bytes", ex=3600)
    maps.ask(PID)
    assert maps.store(PID, b"\x89PNG...", "v1", "conv", 0.2)
    found = maps.get(PID)
    assert found.status == HeatmapStatus.READY and found.png == b"\x89PNG..."
    assert found.model_version == "v1" and found.layer == "conv"
    # Absolute expiry instants (ms): two PTTL reads, even in one MULTI, can be a ms apart.
    heatmap_at = redis_client.execute_command("PEXPIRETIME", keys.heatmap(PID))
    image_at = redis_client.execute_command("PEXPIRETIME", keys.image(PID))
    assert 0 < heatmap_at <= image_at
    assert not redis_client.exists(keys.heatmap_asked(PID))  # answered: the marker goes

    redis_client.delete(keys.image(PID), keys.heatmap(PID))  # the image expired
    assert maps.store(PID, b"\x89PNG...", "v1", "conv", 0.2) is False
    assert maps.get(PID) is None and not maps.image_kept(PID)


def test_a_failure_is_kept_briefly_with_its_reason(redis_client):
    keys, maps = Keys(), Heatmaps(redis_client, failure_ttl=300)
    redis_client.set(keys.image(PID), b"png bytes", ex=3600)
    assert maps.store_failure(PID, "model version v0 is no longer in the model store")
    found = maps.get(PID)
    assert found.status == HeatmapStatus.FAILED and found.png is None
    assert "no longer in the model store" in found.error
    assert 0 < redis_client.pttl(keys.heatmap(PID)) <= 300_000  # retried later, not never
