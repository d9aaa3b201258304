"""Worker heartbeats: which workers are alive, what each serves and what it is doing.

Each worker refreshes a hash that expires on its own, so a worker that dies simply disappears;
a sorted set of names by last beat lets readers list the live ones without KEYS.
"""

from __future__ import annotations

import time

import redis

from jobs.keys import DEFAULT_PREFIX, Keys
from jobs.record import text

FORGET_AFTER_SECONDS = 24 * 3600


class WorkerRegistry:
    """Heartbeats written by the workers, read by the API (readiness, metrics, model page)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX):
        self.r = client
        self.keys = Keys(prefix)

    def heartbeat(self, name: str, info: dict, ttl: int) -> None:
        """A worker says it is alive, what it serves and its state; expires if it stops."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.worker(name), mapping={k: str(v) for k, v in info.items()})
        pipe.expire(self.keys.worker(name), ttl)
        pipe.zadd(self.keys.workers, {name: time.time()})
        pipe.zremrangebyscore(self.keys.workers, "-inf", time.time() - FORGET_AFTER_SECONDS)
        pipe.execute()

    def alive(self, max_age: float) -> list[dict]:
        """Heartbeats seen in the last ``max_age`` seconds, newest first."""
        names = self.r.zrevrangebyscore(self.keys.workers, "+inf", time.time() - max_age)
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.worker(text(name)))
        beats = []
        for name, data in zip(names, pipe.execute(), strict=True):
            if data:
                beats.append({"name": text(name), **{text(k): text(v) for k, v in data.items()}})
        return beats
