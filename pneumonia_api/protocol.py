"""The Redis job protocol: the one contract between the API, the workers and the trainer.

Every Redis key, stream, group and status of the system is spelled here and nowhere else.
The API enqueues through :class:`JobQueue`, the inference workers consume through it, and the
UI reaches it only through the API. Keeping the contract in one module is what lets API and
worker hosts be upgraded independently without drifting apart.

Layout (``{p}`` is the configurable key prefix, ``pneumonia`` by default)::

    {p}:jobs                 stream   one entry per job: {"id": <prediction id>}
    {p}:jobs:dead            stream   jobs that failed MAX_ATTEMPTS times (dead letters)
    {p}:pred:<id>            hash     the prediction record (see Prediction)
    {p}:img:<id>             string   image bytes, expire after image_ttl
    {p}:index                zset     prediction ids scored by creation time (ms): history
    {p}:cache:<ver>:<sha>    string   prediction id already done for these bytes and model
    {p}:worker:<name>        hash     heartbeat of one worker, expires on its own
    {p}:workers              zset     worker names scored by last heartbeat (s)
    {p}:model                hash     the model card the workers serve now
    {p}:training             hash     progress of a running training

Jobs are read with XREADGROUP by the consumer group ``workers``; a job stays pending until a
worker XACKs it, so a worker that dies mid-batch leaves its jobs to be reclaimed with XAUTOCLAIM.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields

import redis

GROUP = "workers"


class JobStatus(enum.StrEnum):
    """Where a prediction is in its life; only moves forward."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


FINAL = (JobStatus.DONE.value, JobStatus.FAILED.value)


def now_ms() -> int:
    """Wall-clock milliseconds: the unit of every timestamp in the records and the index."""
    return int(time.time() * 1000)


def new_id() -> str:
    """A random, unguessable prediction id (no patient data can leak through it)."""
    return uuid.uuid4().hex


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
        raw = {_s(k): _s(v) for k, v in data.items()}
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

    def to_dict(self) -> dict:
        """The public JSON shape (API responses)."""
        return asdict(self)


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix. The only place a Redis key is spelled."""

    prefix: str = "pneumonia"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:jobs:dead"

    @property
    def index(self) -> str:
        return f"{self.prefix}:index"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def model(self) -> str:
        return f"{self.prefix}:model"

    @property
    def training(self) -> str:
        return f"{self.prefix}:training"

    def prediction(self, pid: str) -> str:
        return f"{self.prefix}:pred:{pid}"

    def image(self, pid: str) -> str:
        return f"{self.prefix}:img:{pid}"

    def cache(self, model_version: str, sha256: str) -> str:
        return f"{self.prefix}:cache:{model_version}:{sha256}"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"


# Marks a job done exactly once: a reclaimed job whose first worker finished after all must
# not be written twice. KEYS: record, cache key ('' for none). ARGV: ttl, id, field/value pairs.
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false or status == 'done' or status == 'failed' then return 0 end
redis.call('HDEL', KEYS[1], 'error')
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[1])) end
return 1
"""


class JobQueue:
    """Enqueue, read, finish and list predictions. Shared by the API and the workers."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "pneumonia",
        image_ttl: int = 7 * 24 * 3600,
        retention: int = 30 * 24 * 3600,
        stream_maxlen: int = 100_000,
    ):
        self.r = client
        self.keys = Keys(prefix)
        self.image_ttl = image_ttl
        self.retention = retention
        self.stream_maxlen = stream_maxlen
        self._finish = client.register_script(_FINISH)

    # --- producer side (API) -------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and its consumer group once; safe to call from every process."""
        try:
            self.r.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def submit(self, prediction: Prediction, image: bytes) -> Prediction:
        """Store the image and the record and queue the job, all in one transaction.

        Either everything is written or nothing is: a Redis failure half-way leaves no record
        without an image and no job without a record.
        """
        k = self.keys
        pipe = self.r.pipeline(transaction=True)
        pipe.set(k.image(prediction.id), image, ex=self.image_ttl)
        pipe.hset(k.prediction(prediction.id), mapping=prediction.to_redis())
        pipe.expire(k.prediction(prediction.id), self.retention)
        pipe.zadd(k.index, {prediction.id: prediction.created_at})
        pipe.zremrangebyscore(k.index, "-inf", now_ms() - self.retention * 1000)
        pipe.xadd(k.stream, {"id": prediction.id}, maxlen=self.stream_maxlen, approximate=True)
        pipe.execute()
        return prediction

    def cached_result(self, sha256: str, model_version: str | None) -> Prediction | None:
        """A finished prediction of the same bytes by the same model version, if any."""
        if not model_version:
            return None
        pid = self.r.get(self.keys.cache(model_version, sha256))
        if pid is None:
            return None
        done = self.get(_s(pid))
        return done if done is not None and done.status == JobStatus.DONE.value else None

    def record_cached(self, prediction: Prediction, source: Prediction, image: bytes) -> Prediction:
        """Store a new, already-done record that reuses ``source``'s result (no inference)."""
        prediction.status = JobStatus.DONE.value
        prediction.cached = True
        for name in ("label", "probability", "threshold", "model_version"):
            setattr(prediction, name, getattr(source, name))
        prediction.started_at = prediction.finished_at = now_ms()
        k = self.keys
        pipe = self.r.pipeline(transaction=True)
        pipe.set(k.image(prediction.id), image, ex=self.image_ttl)
        pipe.hset(k.prediction(prediction.id), mapping=prediction.to_redis())
        pipe.expire(k.prediction(prediction.id), self.retention)
        pipe.zadd(k.index, {prediction.id: prediction.created_at})
        pipe.execute()
        return prediction

    # --- reading (API, UI through the API) -----------------------------------------------

    def get(self, pid: str) -> Prediction | None:
        data = self.r.hgetall(self.keys.prediction(pid))
        return Prediction.from_redis(data) if data else None

    def image(self, pid: str) -> bytes | None:
        return self.r.get(self.keys.image(pid))

    def history(self, limit: int = 20, before: int | None = None) -> list[Prediction]:
        """Newest first, strictly older than ``before`` (ms) when given. Never uses KEYS."""
        top = f"({before}" if before is not None else "+inf"
        ids = self.r.zrevrangebyscore(self.keys.index, top, "-inf", start=0, num=limit)
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for pid in ids:
            pipe.hgetall(self.keys.prediction(_s(pid)))
        return [Prediction.from_redis(d) for d in pipe.execute() if d]

    # --- consumer side (workers) ---------------------------------------------------------

    def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, str]]:
        """New jobs for this consumer: ``[(entry_id, prediction_id)]``; waits up to block_ms."""
        reply = self.r.xreadgroup(
            GROUP, consumer, {self.keys.stream: ">"}, count=count, block=block_ms
        )
        return [
            (_s(eid), _s(f[b"id"] if b"id" in f else f["id"]))
            for _, entries in reply or []
            for eid, f in entries
        ]

    def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[str, str]]:
        """Jobs left pending by a worker that died or hung, now owned by ``consumer``."""
        reply = self.r.xautoclaim(
            self.keys.stream,
            GROUP,
            consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=count,
        )
        entries = reply[1] if reply else []
        out = []
        for eid, f in entries:
            if f:  # an entry trimmed from the stream comes back empty: nothing to redo
                out.append((_s(eid), _s(f.get(b"id") or f.get("id"))))
            else:
                self.r.xack(self.keys.stream, GROUP, eid)
        return out

    def start(self, pid: str, worker: str) -> Prediction | None:
        """Mark a job processing and count the attempt; returns its record (None if gone)."""
        key = self.keys.prediction(pid)
        pipe = self.r.pipeline(transaction=True)
        pipe.hincrby(key, "attempts", 1)
        pipe.hgetall(key)
        _, data = pipe.execute()
        if not data or set(data) == {b"attempts"} or set(data) == {"attempts"}:
            self.r.delete(key)  # the record expired: HINCRBY must not resurrect a stub
            return None
        record = Prediction.from_redis(data)
        if record.status not in FINAL:
            self.r.hset(
                key,
                mapping={
                    "status": JobStatus.PROCESSING.value,
                    "started_at": str(now_ms()),
                    "worker": worker,
                },
            )
            record.status = JobStatus.PROCESSING.value
        return record

    def finish(self, entry_id: str, prediction: Prediction) -> bool:
        """Write a result, remember it in the content cache and acknowledge the job.

        Returns False (and writes nothing) when the job was already final, so a job finished
        by two workers is recorded once.
        """
        prediction.status = JobStatus.DONE.value
        prediction.finished_at = now_ms()
        cache_key = ""
        if prediction.model_version and prediction.sha256:
            cache_key = self.keys.cache(prediction.model_version, prediction.sha256)
        result = (
            "status",
            "finished_at",
            "label",
            "probability",
            "threshold",
            "model_version",
            "error",
            "worker",
        )
        values = prediction.to_redis()
        argv: list = [self.retention, prediction.id]
        for name in result:
            if name in values:
                argv += [name, values[name]]
        pipe = self.r.pipeline(transaction=True)
        self._finish(keys=[self.keys.prediction(prediction.id), cache_key], args=argv, client=pipe)
        pipe.xack(self.keys.stream, GROUP, entry_id)
        wrote = pipe.execute()[0]
        return bool(wrote)

    def fail(self, entry_id: str, pid: str, reason: str) -> None:
        """Give up on a job: mark it failed with its reason and copy it to the dead letters."""
        key = self.keys.prediction(pid)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "status": JobStatus.FAILED.value,
                "error": reason,
                "finished_at": str(now_ms()),
            },
        )
        pipe.xadd(
            self.keys.dead_letter,
            {"id": pid, "error": reason},
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        pipe.xack(self.keys.stream, GROUP, entry_id)
        pipe.execute()

    def retry(self, entry_id: str, pid: str, reason: str) -> None:
        """Put a job back at the end of the queue after a failed attempt."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self.keys.prediction(pid), mapping={"status": JobStatus.QUEUED.value, "error": reason}
        )
        pipe.xadd(self.keys.stream, {"id": pid}, maxlen=self.stream_maxlen, approximate=True)
        pipe.xack(self.keys.stream, GROUP, entry_id)
        pipe.execute()

    def ack(self, entry_id: str) -> None:
        self.r.xack(self.keys.stream, GROUP, entry_id)

    # --- queue state (readiness, metrics) ------------------------------------------------

    def queue_stats(self) -> dict:
        """Depth (not yet delivered), pending (delivered, not acked), oldest pending age, dead."""
        self.ensure_group()
        group = next(
            (g for g in self.r.xinfo_groups(self.keys.stream) if _s(g["name"]) == GROUP), {}
        )
        summary = self.r.xpending(self.keys.stream, GROUP)
        oldest_age = 0.0
        if summary and summary.get("pending"):
            first = self.r.xpending_range(self.keys.stream, GROUP, min="-", max="+", count=1)
            if first:
                oldest_age = first[0]["time_since_delivered"] / 1000.0
        return {
            "depth": int(group.get("lag") or 0),
            "pending": int(summary.get("pending", 0)) if summary else 0,
            "oldest_pending_age_seconds": oldest_age,
            "dead_letters": int(self.r.xlen(self.keys.dead_letter)),
        }

    # --- heartbeats, served model and training progress ---------------------------------

    def heartbeat(self, name: str, info: dict, ttl: int) -> None:
        """A worker says it is alive, what it serves and its state; expires if it stops."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.worker(name), mapping={k: str(v) for k, v in info.items()})
        pipe.expire(self.keys.worker(name), ttl)
        pipe.zadd(self.keys.workers, {name: time.time()})
        pipe.zremrangebyscore(self.keys.workers, "-inf", time.time() - 24 * 3600)
        pipe.execute()

    def workers(self, max_age: float) -> list[dict]:
        """Heartbeats seen in the last ``max_age`` seconds, newest first."""
        names = self.r.zrevrangebyscore(self.keys.workers, "+inf", time.time() - max_age)
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.worker(_s(name)))
        beats = []
        for name, data in zip(names, pipe.execute(), strict=True):
            if data:
                beats.append({"name": _s(name), **{_s(k): _s(v) for k, v in data.items()}})
        return beats

    def publish_model(self, card: dict) -> None:
        """Record the model card the workers serve (the UI's model page reads it)."""
        self.r.hset(
            self.keys.model,
            mapping={"card": json.dumps(card), "version": str(card.get("version", ""))},
        )

    def model_card(self) -> dict | None:
        raw = self.r.hget(self.keys.model, "card")
        return json.loads(raw) if raw else None

    def set_training(self, progress: dict, ttl: int = 6 * 3600) -> None:
        """Training progress (phase, epoch, ratio, message) for /readyz and the UI."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.training, mapping={k: str(v) for k, v in progress.items()})
        pipe.expire(self.keys.training, ttl)
        pipe.execute()

    def training(self) -> dict | None:
        data = self.r.hgetall(self.keys.training)
        return {_s(k): _s(v) for k, v in data.items()} or None
