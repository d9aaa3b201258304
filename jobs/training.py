"""Progress of a running training, for /readyz and the UI while the first model trains.

The hash expires on its own, so a trainer that dies does not leave "training" on screen forever.
"""

from __future__ import annotations

import redis

from jobs.keys import DEFAULT_PREFIX, Keys
from jobs.record import text

DEFAULT_TTL_SECONDS = 6 * 3600


class TrainingProgress:
    """Read and write the training progress hash (phase, epoch, ratio, message)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX):
        self.r = client
        self.keys = Keys(prefix)

    def set(self, progress: dict, ttl: int = DEFAULT_TTL_SECONDS) -> None:
        """Replace the visible progress fields; refresh the expiry."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.training, mapping={k: str(v) for k, v in progress.items()})
        pipe.expire(self.keys.training, ttl)
        pipe.execute()

    def get(self) -> dict | None:
        """The last progress written, or None when no training has reported lately."""
        data = self.r.hgetall(self.keys.training)
        return {text(k): text(v) for k, v in data.items()} or None
