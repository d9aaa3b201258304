"""The model card the workers serve now, for the API's /v1/model and the UI's model page.

Written by a worker each time it loads a version; the card itself is produced at training
time (model/card.py) and travels with the model files.
"""

from __future__ import annotations

import json

import redis

from jobs.keys import DEFAULT_PREFIX, Keys


class ServedModel:
    """Read and write the served model's card."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX):
        self.r = client
        self.keys = Keys(prefix)

    def publish(self, card: dict) -> None:
        """Record the card of the version a worker has just started serving."""
        self.r.hset(
            self.keys.model,
            mapping={"card": json.dumps(card), "version": str(card.get("version", ""))},
        )

    def card(self) -> dict | None:
        """The served card, or None before any worker has loaded a model."""
        raw = self.r.hget(self.keys.model, "card")
        return json.loads(raw) if raw else None
