"""The prediction record: one uploaded image and, once a worker is done, its result.

Plain data with no Redis client, so anything that only needs the shape (statuses, labels,
the record's fields) can import it cheaply.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import asdict, dataclass, field, fields


class JobStatus(enum.StrEnum):
    """Where a prediction is in its life; only moves forward."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    # Final, without a label: the image is not something the model may read (not a frontal
    # chest radiograph, colour, blank, ...); ``reason`` says why, for the clinician.
    NOT_ASSESSABLE = "not_assessable"


FINAL = (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.NOT_ASSESSABLE.value)


class Label(enum.StrEnum):
    """What a finished prediction says: the positive class first."""

    PNEUMONIA = "Pneumonia"
    NORMAL = "Normal"


LABELS = tuple(label.value for label in Label)


def now_ms() -> int:
    """Wall-clock milliseconds: the unit of every timestamp in the records and the index."""
    return int(time.time() * 1000)


def new_id() -> str:
    """A random, unguessable prediction id (no patient data can leak through it)."""
    return uuid.uuid4().hex


def text(value) -> str:
    """Redis replies come back as bytes or str depending on the client: always str."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Prediction:
    """One uploaded image and, once a worker is done, its result.

    Stored flat in a Redis hash; ``None`` fields are simply absent there.
    """

    id: str
    status: str = JobStatus.QUEUED.value
    filename: str = ""
    sha256: str = ""
    media_type: str = ""
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    uploader: str = ""
    created_at: int = field(default_factory=now_ms)
    started_at: int | None = None
    finished_at: int | None = None
    label: str | None = None
    probability: float | None = None
    threshold: float | None = None
    model_version: str | None = None
    cached: bool = False
    error: str | None = None
    reason: str | None = None  # why a not_assessable image was not read (for the clinician)
    attempts: int = 0
    worker: str | None = None

    _INTS = ("width", "height", "size_bytes", "created_at", "started_at", "finished_at", "attempts")
    _FLOATS = ("probability", "threshold")

    def to_redis(self) -> dict[str, str]:
        """The hash fields to write: strings only, absent values left out."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_redis(cls, data: dict) -> Prediction:
        """Rebuild a record from HGETALL output (bytes or str keys)."""
        raw = {text(k): text(v) for k, v in data.items()}
        known = {f.name for f in fields(cls)}
        kwargs: dict = {}
        for key, value in raw.items():
            if key not in known:
                continue
            if key in cls._INTS:
                kwargs[key] = int(value)
            elif key in cls._FLOATS:
                kwargs[key] = float(value)
            elif key == "cached":
                kwargs[key] = value == "1"
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_flat(cls, flat: list) -> Prediction:
        """A record from a Lua script's flat HGETALL reply [field, value, field, value, ...]."""
        return cls.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)))

    def to_dict(self) -> dict:
        """The public JSON shape (API responses)."""
        return asdict(self)
