"""The stream of jobs: how the API enqueues X-rays and how the workers consume them.

The API submits through :class:`JobQueue`; the inference workers read, start, finish, retry
and fail jobs through it. A job is acknowledged only once its result is written, so nothing
accepted is lost when a worker dies: its pending entries are reclaimed by another worker.
Key names come from :mod:`jobs.keys`; the batch scripts from :mod:`jobs.scripts`.
"""

from __future__ import annotations

import redis

from jobs import scripts
from jobs.keys import DEFAULT_PREFIX, GROUP, Keys
from jobs.record import JobStatus, Prediction, now_ms, text


class JobQueue:
    """Enqueue, read, finish and list predictions. Shared by the API and the workers."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        image_ttl: int = 7 * 24 * 3600,
        retention: int = 30 * 24 * 3600,
        dead_letter_maxlen: int = 100_000,
    ):
        self.r = client
        self.keys = Keys(prefix)
        self.image_ttl = image_ttl
        self.retention = retention
        self.dead_letter_maxlen = dead_letter_maxlen  # only the dead-letter copies are capped
        self._start = client.register_script(scripts.START)
        self._finish = client.register_script(scripts.FINISH)

    # --- producer side (API) -------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and its consumer group once; safe to call from every process."""
        try:
            self.r.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def submit(self, prediction: Prediction, image: bytes) -> Prediction:
        """Store the image and the record and queue the job, all in one transaction."""
        self.submit_all([(prediction, image, None)])
        return prediction

    def submit_all(
        self,
        uploads: list[tuple[Prediction, bytes, Prediction | None]],
        idempotency: tuple[str, str, int] | None = None,
    ) -> list[Prediction]:
        """Store every upload of one request and queue those still to read, in ONE transaction.

        ``uploads`` are (record, image, cached result or None). A record already final
        (:func:`mark_not_assessable`) is stored, so the clinician sees the image and why, but
        not queued. Either everything is written
        or nothing is: a Redis failure (a lost connection, an out-of-memory refusal) before
        EXEC leaves no record, no image, no job, so the API can truthfully answer "nothing
        was saved". ``idempotency`` (key, value, ttl) is written in the same transaction.
        The stream is not capped here: only acknowledged entries are ever trimmed
        (:meth:`trim_acknowledged`).
        """
        pipe = self.r.pipeline(transaction=True)
        for prediction, image, source in uploads:
            if source is not None:
                _copy_result(prediction, source)
            self._store(prediction, image, pipe)
            if source is None and prediction.status == JobStatus.QUEUED.value:
                pipe.xadd(self.keys.stream, {"id": prediction.id})
        pipe.zremrangebyscore(self.keys.index, "-inf", now_ms() - self.retention * 1000)
        if idempotency is not None:
            key, value, ttl = idempotency
            pipe.set(key, value, ex=ttl)
        pipe.execute()
        return [prediction for prediction, _, _ in uploads]

    def _store(
        self, prediction: Prediction, image: bytes, pipe: redis.client.Pipeline | None = None
    ) -> redis.client.Pipeline:
        """Add to a transaction (a new one by default): the image, the record, its history
        entry (not run)."""
        k = self.keys
        pipe = pipe if pipe is not None else self.r.pipeline(transaction=True)
        pipe.set(k.image(prediction.id), image, ex=self.image_ttl)
        pipe.hset(k.prediction(prediction.id), mapping=prediction.to_redis())
        pipe.expire(k.prediction(prediction.id), self.retention)
        pipe.zadd(k.index, {prediction.id: prediction.created_at})
        return pipe

    def cached_result(self, sha256: str, model_version: str | None) -> Prediction | None:
        """A finished prediction of the same bytes by the same model version, if any."""
        if not model_version:
            return None
        pid = self.r.get(self.keys.cache(model_version, sha256))
        if pid is None:
            return None
        done = self.get(text(pid))
        return done if done is not None and done.status == JobStatus.DONE.value else None

    def record_cached(self, prediction: Prediction, source: Prediction, image: bytes) -> Prediction:
        """Store a new, already-done record that reuses ``source``'s result (no inference)."""
        self.submit_all([(prediction, image, source)])
        return prediction

    def idempotent(self, key: str) -> list[Prediction] | None:
        """The records a request with this idempotency key already created (None: first try)."""
        ids = self.r.get(key)
        if ids is None:
            return None
        found = [self.get(pid) for pid in text(ids).split(",") if pid]
        return [p for p in found if p is not None]

    def waiting(self) -> int:
        """Jobs accepted and not finished: not yet delivered plus delivered, not acknowledged.

        One round trip. When Redis cannot tell the group's lag it counts the whole stream,
        an overestimate: backpressure errs on the side of refusing, never of losing.
        """
        pipe = self.r.pipeline(transaction=False)
        pipe.xlen(self.keys.stream)
        pipe.xinfo_groups(self.keys.stream)
        pipe.xpending(self.keys.stream, GROUP)
        length, groups, summary = pipe.execute(raise_on_error=False)
        if isinstance(groups, redis.ResponseError) or isinstance(summary, redis.ResponseError):
            if isinstance(length, Exception):
                raise length
            return int(length)  # no stream or no group yet: nothing was delivered
        group = next((g for g in groups if text(g["name"]) == GROUP), {})
        lag = group.get("lag")
        pending = int(summary.get("pending", 0)) if summary else 0
        return (int(lag) + pending) if lag is not None else int(length)

    def trim_acknowledged(self) -> int:
        """Drop stream entries below every pending and undelivered one; returns how many.

        Only entries the group has acknowledged can go: the cut is the oldest pending entry
        or, with none pending, the last delivered one. Entries appended or delivered
        meanwhile are newer than the cut, so a race can only keep more, never lose a job.
        """
        group = next(
            (g for g in self.r.xinfo_groups(self.keys.stream) if text(g["name"]) == GROUP), None
        )
        if group is None:
            return 0
        summary = self.r.xpending(self.keys.stream, GROUP)
        if summary and summary.get("pending"):
            cut = text(summary["min"])
        else:
            cut = text(group["last-delivered-id"])
        if cut == "0-0":
            return 0
        return int(self.r.xtrim(self.keys.stream, minid=cut, approximate=False))

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
            pipe.hgetall(self.keys.prediction(text(pid)))
        return [Prediction.from_redis(d) for d in pipe.execute() if d]

    # --- consumer side (workers) ---------------------------------------------------------

    def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, str]]:
        """New jobs for this consumer: ``[(entry_id, prediction_id)]``; waits up to block_ms."""
        reply = self.r.xreadgroup(
            GROUP, consumer, {self.keys.stream: ">"}, count=count, block=block_ms
        )
        return [
            (text(eid), text(f[b"id"] if b"id" in f else f["id"]))
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
            if f:
                out.append((text(eid), text(f.get(b"id") or f.get("id"))))
            else:  # deleted by hand (trim_acknowledged never cuts a pending entry)
                self.r.xack(self.keys.stream, GROUP, eid)
        return out

    def start_batch(self, pids: list[str], worker: str) -> list[Prediction | None]:
        """Mark jobs processing and count their attempts, in one round trip.

        Returns each job's record (None where it expired); a record already final comes back
        unchanged, for the worker to acknowledge and skip.
        """
        if not pids:
            return []
        replies = self._start(keys=[self.keys.prediction(p) for p in pids], args=[worker, now_ms()])
        return [Prediction.from_flat(flat) if flat else None for flat in replies]

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
            hit_ids.append(text(hit) if hit is not None else None)
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
            pairs = [(name, values[name]) for name in scripts.RESULT_FIELDS if name in values]
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
            maxlen=self.dead_letter_maxlen,
            approximate=True,
        )
        pipe.xack(self.keys.stream, GROUP, entry_id)
        pipe.execute()

    def not_assessable(
        self, entry_id: str, pid: str, reason: str, worker: str, model_version: str | None
    ) -> None:
        """End a job without a label because the model must not read the image (worker side).

        Not a failure (no dead letter, no retry): the image was read and judged unfit.
        """
        mapping = {
            "status": JobStatus.NOT_ASSESSABLE.value,
            "reason": reason,
            "finished_at": str(now_ms()),
            "worker": worker,
        }
        if model_version:
            mapping["model_version"] = model_version
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.prediction(pid), mapping=mapping)
        pipe.hdel(self.keys.prediction(pid), "error")
        pipe.xack(self.keys.stream, GROUP, entry_id)
        pipe.execute()

    def retry(self, entry_id: str, pid: str, reason: str) -> None:
        """Put a job back at the end of the queue after a failed attempt."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self.keys.prediction(pid), mapping={"status": JobStatus.QUEUED.value, "error": reason}
        )
        pipe.xadd(self.keys.stream, {"id": pid})  # never capped: see trim_acknowledged
        pipe.xack(self.keys.stream, GROUP, entry_id)
        pipe.execute()

    def ack(self, entry_id: str) -> None:
        self.r.xack(self.keys.stream, GROUP, entry_id)

    # --- queue state (readiness, metrics) ------------------------------------------------

    def queue_stats(self) -> dict:
        """Depth (not yet delivered), pending (delivered, not acked), oldest pending age, dead."""
        self.ensure_group()
        group = next(
            (g for g in self.r.xinfo_groups(self.keys.stream) if text(g["name"]) == GROUP), {}
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


def _copy_result(prediction: Prediction, source: Prediction) -> None:
    """Make ``prediction`` an already-done record that reuses ``source``'s result."""
    prediction.status = JobStatus.DONE.value
    prediction.cached = True
    for name in ("label", "probability", "threshold", "model_version"):
        setattr(prediction, name, getattr(source, name))
    prediction.started_at = prediction.finished_at = now_ms()


def mark_not_assessable(prediction: Prediction, reason: str) -> Prediction:
    """Make an upload final before it is stored: the model must not read it (a reason why)."""
    prediction.status = JobStatus.NOT_ASSESSABLE.value
    prediction.reason = reason
    prediction.started_at = prediction.finished_at = now_ms()
    return prediction
