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


def _record(flat: list) -> Prediction:
    """A record from a script's flat HGETALL reply [field, value, field, value, ...]."""
    return Prediction.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)))


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


# A worker takes a batch of jobs, in one round trip: each attempt is counted and each job not
# yet final is marked processing. A record that expired is not resurrected by HINCRBY's stub.
# KEYS: the records. ARGV: worker name, now (ms). Returns each record (HGETALL) or {} if gone.
_START = """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'attempts', 1)
  if redis.call('HLEN', key) <= 1 then
    redis.call('DEL', key)
    out[i] = {}
  else
    local status = redis.call('HGET', key, 'status')
    if status ~= 'done' and status ~= 'failed' then
      redis.call('HSET', key, 'status', 'processing', 'started_at', ARGV[2], 'worker', ARGV[1])
    end
    out[i] = redis.call('HGETALL', key)
  end
end
return out
"""

# Writes a batch's results and acknowledges its jobs, in one round trip. Each job is marked
# done exactly once: a reclaimed job whose first worker finished after all is not written
# twice. KEYS: the stream, then per job its record and its cache key ('' for none).
# ARGV: group, cache ttl, then per job: entry id, prediction id, n, n field/value pairs.
# Returns per job 1 if written, 0 if it was already final.
_FINISH = """
local out, a = {}, 3
for j = 1, (#KEYS - 1) / 2 do
  local record, cache = KEYS[2 * j], KEYS[2 * j + 1]
  local n = tonumber(ARGV[a + 2])
  local status = redis.call('HGET', record, 'status')
  if status == false or status == 'done' or status == 'failed' then
    out[j] = 0
  else
    redis.call('HDEL', record, 'error')
    for i = a + 3, a + 1 + 2 * n, 2 do redis.call('HSET', record, ARGV[i], ARGV[i + 1]) end
    if cache ~= '' then redis.call('SET', cache, ARGV[a + 1], 'EX', tonumber(ARGV[2])) end
    out[j] = 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[a])
  a = a + 3 + 2 * n
end
return out
"""

# What a worker writes when a job is done (the rest of the record is the API's).
_RESULT = (
    "status",
    "finished_at",
    "label",
    "probability",
    "threshold",
    "model_version",
    "cached",
    "error",
    "worker",
)


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
        self._start = client.register_script(_START)
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
        """Mark one job processing and count the attempt; its record (None if gone)."""
        return self.start_batch([pid], worker)[0]

    def start_batch(self, pids: list[str], worker: str) -> list[Prediction | None]:
        """Mark jobs processing and count their attempts, in one round trip.

        Returns each job's record (None where it expired); a record already final comes back
        unchanged, for the worker to acknowledge and skip.
        """
        if not pids:
            return []
        replies = self._start(keys=[self.keys.prediction(p) for p in pids], args=[worker, now_ms()])
        return [_record(flat) if flat else None for flat in replies]

    def inputs(
        self, records: list[Prediction], model_version: str | None
    ) -> list[tuple[Prediction | None, bytes | None]]:
        """What a worker needs for each started job: (cached result, image bytes).

        The cached result is a finished prediction of the same bytes by ``model_version``
        (None if there is none); the image is None once it expired. One round trip, plus
        one more only when some result is cached.
        """
        pipe = self.r.pipeline(transaction=False)
        looks = [bool(model_version and rec.sha256) for rec in records]
        for rec, look in zip(records, looks, strict=True):
            pipe.get(self.keys.image(rec.id))
            if look:
                pipe.get(self.keys.cache(str(model_version), rec.sha256))
        replies = iter(pipe.execute())
        images, hit_ids = [], []
        for look in looks:
            images.append(next(replies))
            hit = next(replies) if look else None
            hit_ids.append(_s(hit) if hit is not None else None)
        hits: dict[str, Prediction] = {}
        wanted = sorted({h for h, rec in zip(hit_ids, records, strict=True) if h and h != rec.id})
        if wanted:
            pipe = self.r.pipeline(transaction=False)
            for pid in wanted:
                pipe.hgetall(self.keys.prediction(pid))
            for pid, data in zip(wanted, pipe.execute(), strict=True):
                found = Prediction.from_redis(data) if data else None
                if found is not None and found.status == JobStatus.DONE.value:
                    hits[pid] = found
        return [
            (hits.get(h) if h else None, image) for h, image in zip(hit_ids, images, strict=True)
        ]

    def finish(self, entry_id: str, prediction: Prediction) -> bool:
        """Write one result; see :meth:`finish_batch`."""
        return self.finish_batch([(entry_id, prediction)])[0]

    def finish_batch(self, done: list[tuple[str, Prediction]]) -> list[bool]:
        """Write results, remember them in the content cache and acknowledge the jobs.

        One round trip for the whole batch. Returns, per job, False (and writes nothing) when
        it was already final, so a job finished by two workers is recorded once.
        """
        if not done:
            return []
        keys: list[str] = [self.keys.stream]
        argv: list = [GROUP, self.retention]
        for entry_id, prediction in done:
            prediction.status = JobStatus.DONE.value
            prediction.finished_at = now_ms()
            cache_key = ""
            if prediction.model_version and prediction.sha256:
                cache_key = self.keys.cache(prediction.model_version, prediction.sha256)
            values = prediction.to_redis()
            pairs = [(name, values[name]) for name in _RESULT if name in values]
            keys += [self.keys.prediction(prediction.id), cache_key]
            argv += [entry_id, prediction.id, len(pairs), *(x for pair in pairs for x in pair)]
        return [bool(wrote) for wrote in self._finish(keys=keys, args=argv)]

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
