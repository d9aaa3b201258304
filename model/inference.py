"""The inference worker: ``python -m model.inference``.

Reads jobs from the Redis stream in dynamic batches (up to MAX_BATCH jobs, or BATCH_WAIT_MS
after the first one arrives), prepares pixels with :mod:`model.preprocess` (the module training
uses), predicts the whole batch in one call, writes results and acknowledges the jobs.

Pipelined for throughput: batches predict in inference threads while the next batch is read
from Redis and decoded by the DECODE_THREADS pool, so JPEG decoding and resizing stay off the
model's critical path. The runtime (INFERENCE_BACKEND, default the fastest that keeps
quality: model/serving/predictor.py) says how many batches may predict at once
(``Predictor.concurrency``: one per inference lane, model/serving/runtimes.py); the worker
keeps that many in flight, so a lane that finishes early takes the next batch instead of
waiting for the others.

Reliability, in the manner of rq's worker:
- a job is acknowledged only after its result is written, so a worker killed mid-batch leaves
  its jobs pending; another worker reclaims them with XAUTOCLAIM after CLAIM_IDLE_MS;
- every attempt is counted; a job that fails MAX_ATTEMPTS times ends ``failed`` with its
  reason and is copied to the dead-letter stream, and the worker goes on;
- SIGTERM/SIGINT finish the batch in hand, then the worker exits;
- a heartbeat says the worker is alive, its state and the model version it serves, and trims
  the stream below what the group acknowledged (never a pending or undelivered job);
- the model is loaded once, then reloaded only when the store's ``current`` pointer moves
  (``python -m model.promote``); a version whose files do not match its card's checksums is
  refused and the worker keeps serving the one it has;
- the card it publishes for the API and UI carries the promotion record that made its version
  current and the store's promotion history (:func:`served_card`), refreshed as it changes;
- a probability that is not a number in [0, 1] fails its job with the reason, never "Normal".

Any number of workers, on any hosts, share one consumer group.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import redis

from jobs.heatmaps import Heatmaps
from jobs.model import ServedModel
from jobs.queue import JobQueue
from jobs.record import FINAL, Label, Prediction
from jobs.registry import WorkerRegistry
from model import assess, ood, preprocess
from model.serving import metrics
from model.serving.heatmaps import HeatmapThread
from model.serving.predictor import Predictor, host_threads, load_predictor
from model.serving.settings import WorkerSettings
from model.store import StoreError, open_store

log = logging.getLogger("model.inference")

HISTORY_LIMIT = 20  # promotion records shown with the served card, newest first

# Shown to the doctor beside the file name. The API checks only an upload's structure (it does
# not decode pixels twice: pneumonia_api/images.py), so this is where damage inside the
# compressed pixels shows up. Decoding is deterministic: such a job fails at once, no retries.
UNREADABLE = (
    "the image could not be decoded: its pixel data is corrupt. "
    "Export the X-ray again from the PACS or modality and upload it again."
)
# A probability that is not a number in [0, 1] means a broken model, not a healthy lung: the
# job fails with this reason (a NaN would otherwise fail ``>= threshold`` and read "Normal").
NO_PROBABILITY = (
    "the model returned no valid probability ({value}) for this image; no reading was made. "
    "The model is being checked: upload it again later."
)


@dataclass
class Job:
    entry_id: str
    record: Prediction
    image: bytes
    pixels: np.ndarray | None = None


class Worker:
    """One consumer of the job stream. ``work(burst=True)`` returns when the queue is empty."""

    def __init__(self, settings: WorkerSettings, client: redis.Redis | None = None):
        self.s = settings
        self.r = client or redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        self.queue = JobQueue(self.r, prefix=settings.redis_prefix)
        self.registry = WorkerRegistry(self.r, prefix=settings.redis_prefix)
        self.served = ServedModel(self.r, prefix=settings.redis_prefix)
        self.store = open_store(settings.model_store, settings.model_cache_dir)
        self.predictor: Predictor | None = None
        self.state, self.detail = "no-model", "no model loaded yet"
        self._failed_version: str | None = None
        self._records: list[dict] = []  # the store's promotion records, newest first
        self._next_poll = self._next_beat = 0.0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max(1, settings.decode_threads), thread_name_prefix="decode"
        )
        # As many inference threads as batches may be in flight (Predictor.concurrency, at
        # most one per core); each runtime spreads its own work over the cores.
        self._infer = ThreadPoolExecutor(host_threads(), thread_name_prefix="infer")
        self._inflight: deque[tuple] = deque()  # (predictor, jobs, future), oldest first
        self.alone = False  # the batch collected last is a reclaimed job, run on its own
        self.processed = 0
        # Grad-CAM heatmaps on request, in a thread of their own (model/serving/heatmaps.py).
        self.heatmaps = HeatmapThread(
            self.queue,
            Heatmaps(self.r, prefix=settings.redis_prefix),
            self.store,
            self._stop,
            max_side=settings.heatmap_max_side,
        )

    # --- lifecycle -----------------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        """Signal handler: finish the batch in hand, then leave the loop."""
        log.info("stop requested: finishing the current batch")
        self._stop.set()

    def work(self, burst: bool = False, max_jobs: int | None = None) -> int:
        """The loop. Returns the number of jobs handled.

        Pipelined: while batches are in the inference threads, the next one is collected
        from Redis and decoded by the decode pool, so neither waits for the other. Up to
        ``Predictor.concurrency`` batches predict at once; results are written (and jobs
        acknowledged) oldest batch first, and a stop request drains every batch in flight.
        """
        self._connect()
        if self.s.heatmaps and not burst:
            self.heatmaps.start()
        while not self._stop.is_set():
            try:
                self.maybe_reload()
                self.beat()
                if self.predictor is None:
                    if burst:
                        break
                    self._stop.wait(min(1.0, self.s.model_poll_seconds))
                    continue
                entries = self.collect(burst, busy=bool(self._inflight))
                prepared = self.prepare(entries) if entries else None
                if prepared:  # make room for it
                    self.drain(keep=self.predictor.concurrency - 1)
                    launched = self.launch(*prepared)
                    if launched:
                        self._inflight.append(launched)
                        if self.alone:  # a reclaimed job: finish it before taking another
                            self.drain(keep=0)
                elif self._inflight:  # nothing new: finish the oldest batch
                    self.drain(keep=len(self._inflight) - 1)
                elif burst:
                    break
                if max_jobs is not None and self.processed >= max_jobs:
                    break
            except redis.RedisError as exc:
                # Redis restarting: nothing is lost (jobs stay in the stream), wait and retry.
                self.state_detail("error", f"redis unavailable: {type(exc).__name__}")
                log.warning("redis unavailable (%s); retrying in 1s", exc)
                self._stop.wait(1.0)
        try:
            self.drain(keep=0)
        except redis.RedisError as exc:  # its jobs stay pending and are reclaimed later
            log.warning("could not write the last batch (%s)", exc)
        self.beat(force=True, state="stopped")
        self._pool.shutdown(wait=True)
        self._infer.shutdown(wait=True)
        if self.heatmaps.is_alive():
            self._stop.set()
            self.heatmaps.join(timeout=30)  # a heatmap in hand is finished, not lost
        return self.processed

    def _connect(self) -> None:
        for _ in range(600):
            try:
                self.queue.ensure_group()
                return
            except redis.ConnectionError:
                log.warning("waiting for redis at %s", _redact(self.s.redis_url))
                if self._stop.wait(1.0):
                    return

    def state_detail(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail

    def beat(self, force: bool = False, state: str | None = None) -> None:
        """Heartbeat with state and model version; expires by itself if the worker dies."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return
        self._next_beat = now + self.s.heartbeat_seconds
        info = {
            "state": state or self.state,
            "detail": self.detail,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "processed": self.processed,
            "model_version": self.predictor.version if self.predictor else "",
            "backend": self.predictor.backend if self.predictor else "",
        }
        with contextlib.suppress(redis.RedisError):
            self.registry.heartbeat(self.s.name, info, ttl=self.s.heartbeat_ttl)
            # Keep the stream short: only what the group acknowledged goes (never a job).
            self.queue.trim_acknowledged()
        metrics.heartbeat()

    # --- the model -------------------------------------------------------------------------

    def maybe_reload(self) -> None:
        """Load the store's current model if it changed; keep serving the old one on failure."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.s.model_poll_seconds
        try:
            version = self.store.current_version()
        except StoreError as exc:
            log.warning("model store unreadable: %s", exc)
            return
        if version is None:
            if self.predictor is None:
                self.state_detail(
                    "no-model",
                    "the model store is empty: train one with "
                    "`make model` (or wait for `make up`'s background training)",
                )
            return
        if self.predictor and self.predictor.version == version:
            self._refresh_card(version)
            return
        if version == self._failed_version:
            return
        previous = self.state
        self.state_detail("loading", f"loading model {version}")
        self.beat(force=True)
        t0 = time.perf_counter()
        try:
            path = self.store.fetch(version)
            predictor = load_predictor(
                path,
                backend=self.s.backend,
                max_batch=self.s.max_batch,
                threads=self.s.threads,
                cache_dir=self.s.model_cache_dir,
                calibration_data=self.s.calibration_data or None,
                check_images=self.s.check_images,
                max_auc_loss=self.s.max_auc_loss,
            )
        except Exception as exc:
            self._failed_version = version
            log.error("model %s failed to load: %s", version, exc)
            if self.predictor is None:
                self.state_detail(
                    "error",
                    f"model {version} failed to load: "
                    f"{type(exc).__name__}; publish a working model",
                )
            else:
                self.state_detail(
                    previous, f"serving {self.predictor.version}; {version} failed to load"
                )
            return
        self.predictor = predictor
        self._failed_version = None
        seconds = time.perf_counter() - t0
        self.state_detail("ready", f"serving {version}")
        metrics.model_loaded(version, seconds)
        self._records = self._promotions() or self._records
        with contextlib.suppress(redis.RedisError):
            self.served.publish(served_card(predictor.card, self._records))
        log.info(
            "serving model %s (%s backend, loaded in %.1fs)", version, predictor.backend, seconds
        )
        self.beat(force=True)

    def _refresh_card(self, version: str) -> None:
        """Show what changed in the store since the served version loaded: external
        evaluations in its card, and promotion records (another version promoted or rolled
        back, as long as this worker has not reloaded yet).

        ``python -m model.evaluate`` adds evaluations to the card in the store and
        ``python -m model.promote`` adds records; the model itself is unchanged, so only the
        card the API and UI read is republished.
        """
        card, changed = self.predictor.card, False
        records = self._promotions()
        if records is not None and records != self._records:
            self._records, changed = records, True
        try:
            found = self.store.card(version).get("external_evaluations")
        except (StoreError, OSError, ValueError):
            found = None
        if found and found != card.get("external_evaluations"):
            card["external_evaluations"], changed = found, True
        if changed:
            with contextlib.suppress(redis.RedisError):
                self.served.publish(served_card(card, self._records))

    def _promotions(self) -> list[dict] | None:
        """The store's promotion records, newest first; None when unreadable just now."""
        try:
            return self.store.promotions()
        except Exception as exc:  # S3 or disk trouble: keep showing the history we have
            log.warning("promotion history unreadable: %s", exc)
            return None

    # --- jobs ------------------------------------------------------------------------------

    def collect(self, burst: bool = False, busy: bool = False) -> list[tuple[str, str]]:
        """A reclaimed job alone, else new ones: up to max_batch, within batch_wait_ms.

        ``busy``: a batch is being predicted, so wait at most batch_wait_ms for a first job
        (its results must not wait on an idle queue).
        """
        s = self.s
        # Our own batches in flight are pending too: never reclaim them from ourselves.
        mine = {j.entry_id for _, jobs, _ in self._inflight for j in jobs}
        reclaimed = [e for e in self.queue.reclaim(s.name, s.claim_idle_ms, 1) if e[0] not in mine]
        self.alone = bool(reclaimed)
        if reclaimed:
            # A job left pending by a worker that died runs alone, with nothing else in hand
            # (what is in flight is finished first, nothing starts until it is done): if it is
            # what killed that worker (a decoder crash), it takes no other job down with it,
            # and only its own attempts run out.
            self.drain(keep=0)
            return reclaimed
        idle = max(1, s.batch_wait_ms) if busy else s.block_ms  # 0 would block for ever
        entries = self.queue.read(s.name, s.max_batch, None if burst else idle)
        if not entries:
            return []
        deadline = time.monotonic() + s.batch_wait_ms / 1000
        while len(entries) < s.max_batch:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self.queue.read(s.name, s.max_batch - len(entries), left_ms)
            if not more:
                break
            entries += more
        return entries

    def prepare(self, entries: list[tuple[str, str]]):
        """Admit the jobs and start decoding them in the pool; (predictor, jobs, futures)."""
        predictor = self.predictor
        jobs = self._admit(entries, predictor)
        if not jobs:
            return None
        size = predictor.input_size
        return (
            predictor,
            jobs,
            [self._pool.submit(assess.prepare_checked, j.image, size) for j in jobs],
        )

    def launch(self, predictor: Predictor, jobs: list[Job], futures) -> tuple | None:
        """Wait for the decoded pixels, then start predicting them in an inference thread."""
        ready = []
        for job, fut in zip(jobs, futures, strict=True):
            try:
                job.pixels = fut.result()
                ready.append(job)
            except preprocess.PreprocessError:
                metrics.failure("unreadable_image")
                log.warning("job %s: %s", job.record.id, UNREADABLE)
                self.queue.fail(job.entry_id, job.record.id, UNREADABLE)
            except assess.NotAssessable as exc:
                self._not_assessable(job, str(exc), predictor)
            except Exception as exc:
                self._failed(job, "preprocess", f"image could not be prepared: {exc}")
            job.image = b""  # the bytes are no longer needed; keep memory flat
        ready = self._in_distribution(ready, predictor)
        if not ready:
            return None
        batch = np.stack([j.pixels for j in ready])
        return predictor, ready, self._infer.submit(_timed, predictor.predict, batch)

    def _in_distribution(self, jobs: list[Job], predictor: Predictor) -> list[Job]:
        """The jobs whose pixels look like the training X-rays; the rest end not_assessable."""
        params = (predictor.card.get("input_check") or {}).get("params")
        if not jobs or not params:
            return jobs
        far = ood.outside(params, np.stack([j.pixels for j in jobs]))
        for job in (j for j, out in zip(jobs, far, strict=True) if out):
            self._not_assessable(job, assess.OUT_OF_DISTRIBUTION, predictor)
        return [j for j, out in zip(jobs, far, strict=True) if not out]

    def _not_assessable(self, job: Job, reason: str, predictor: Predictor) -> None:
        """Final without a label: the image is not something this model may read."""
        log.info("job %s not assessable: %s", job.record.id, reason.split(":")[0])
        self.queue.not_assessable(
            job.entry_id, job.record.id, reason, self.s.name, predictor.version
        )
        self.processed += 1

    def drain(self, keep: int = 0) -> None:
        """Finish batches in flight, oldest first, until at most ``keep`` are left.

        Batches already done are finished too, so their results never wait on a slower one.
        Finishing: wait for the probabilities, write them, acknowledge the jobs.
        """
        while self._inflight and (len(self._inflight) > keep or self._inflight[0][2].done()):
            self._write(*self._inflight.popleft())

    def _write(self, predictor: Predictor, ready: list[Job], future) -> None:
        try:
            probs, seconds = future.result()
        except Exception as exc:
            log.exception("batch prediction failed")
            for job in ready:
                self._failed(job, "inference", f"inference failed: {type(exc).__name__}")
            return
        metrics.batch_done(len(ready), seconds)
        valid = []
        for job, p in zip(ready, probs, strict=True):
            p = float(p)
            if math.isfinite(p) and 0.0 <= p <= 1.0:
                valid.append((job, p))
            else:  # deterministic for this model and image: fail now, no retries
                metrics.failure("invalid_probability")
                log.error("job %s: model %s returned %r", job.record.id, predictor.version, p)
                self.queue.fail(job.entry_id, job.record.id, NO_PROBABILITY.format(value=p))
        self._finish(valid, predictor)

    def _admit(self, entries: list[tuple[str, str]], predictor: Predictor) -> list[Job]:
        """Count the attempts and fetch the images, a few round trips for the whole batch.

        Skipped: jobs already final or expired (acknowledged), over their retry limit or
        whose image expired (failed), and those whose bytes this model version has already
        judged (finished at once from the cache).
        """
        records = self.queue.start_batch([pid for _, pid in entries], self.s.name)
        started: list[tuple[str, Prediction]] = []
        for (entry_id, pid), record in zip(entries, records, strict=True):
            if record is None or record.status in FINAL:
                self.queue.ack(entry_id)  # expired, or finished by another worker already
            elif record.attempts > self.s.max_attempts:
                reason = record.error or "the worker processing it stopped (crash or timeout)"
                self.queue.fail(
                    entry_id, pid, f"gave up after {self.s.max_attempts} attempts: {reason}"
                )
                metrics.failure("max_attempts")
            else:
                started.append((entry_id, record))
        if not started:
            return []
        jobs, cached = [], []
        inputs = self.queue.inputs([r for _, r in started], predictor.version)
        for (entry_id, record), (hit, image) in zip(started, inputs, strict=True):
            if hit is not None and hit.id != record.id:
                cached.append((Job(entry_id, record, b""), hit.probability))
            elif image is None:
                self.queue.fail(
                    entry_id,
                    record.id,
                    "the image expired before it could be processed; upload it again",
                )
                metrics.failure("image_expired")
            else:
                jobs.append(Job(entry_id, record, image))
        self._finish(cached, predictor, cached=True)
        return jobs

    def _finish(
        self, results: list[tuple[Job, float]], predictor: Predictor, cached: bool = False
    ) -> None:
        """Write a batch's results (one round trip) and count them."""
        for job, probability in results:
            rec = job.record
            rec.probability = round(probability, 6)
            rec.threshold = predictor.threshold
            rec.label = (
                Label.PNEUMONIA if probability >= predictor.threshold else Label.NORMAL
            ).value
            rec.model_version = predictor.version
            rec.worker = self.s.name
            rec.error = None
            rec.cached = cached
        written = self.queue.finish_batch([(job.entry_id, job.record) for job, _ in results])
        for (job, _), wrote in zip(results, written, strict=True):
            if wrote:
                self.processed += 1
                rec = job.record
                metrics.prediction(rec.label, rec.finished_at - rec.created_at)

    def _failed(self, job: Job, kind: str, reason: str) -> None:
        """Retry later, or give up for good once the attempts are spent."""
        metrics.failure(kind)
        rec = job.record
        if rec.attempts >= self.s.max_attempts:
            log.warning(
                "job %s failed for good after %d attempts: %s", rec.id, rec.attempts, reason
            )
            self.queue.fail(job.entry_id, rec.id, reason)
        else:
            self.queue.retry(job.entry_id, rec.id, reason)


def served_card(card: dict, records: list[dict] | None = None) -> dict:
    """The card as the API and UI get it: without the input check's bulky parameters, with
    ``promotion`` (the newest record that made this version current; absent if none, e.g. a
    first publish) and ``history`` (the store's promotion records, newest first, at most
    :data:`HISTORY_LIMIT`)."""
    out = dict(card)
    check = card.get("input_check")
    if isinstance(check, dict) and "params" in check:
        out["input_check"] = {k: v for k, v in check.items() if k != "params"}
    records = records or []
    promotion = next((r for r in records if r.get("version") == card.get("version")), None)
    out.pop("promotion", None)
    if promotion is not None:
        out["promotion"] = promotion
    out["history"] = records[:HISTORY_LIMIT]
    return out


def _timed(fn, batch):
    t0 = time.perf_counter()
    out = fn(batch)
    return out, time.perf_counter() - t0


def _redact(url: str) -> str:
    """A Redis URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def lower_priority(nice: int) -> None:
    """Give the CPU to the API and the UI first, when they share the host with this worker.

    ``os.nice`` alone is not enough on kernels with autogroup scheduling (Debian's and most
    cloud images'): nice then only ranks the threads of one session, and a worker started in a
    session of its own (a service manager, honcho, the test harness) competes with the API as
    an equal. A session leader therefore also lowers its autogroup (only its own session is in
    it). Under systemd the unit's CPUWeight does the same per cgroup (terraform).
    """
    os.nice(nice)  # threads started from here on (runtime, decode) inherit it
    if os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = WorkerSettings()
    if settings.nice > 0:
        lower_priority(settings.nice)
    metrics.serve(settings.metrics_port)
    worker = Worker(settings)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    log.info(
        "worker %s: redis %s, model store %s, batch %d / %d ms",
        settings.name,
        _redact(settings.redis_url),
        settings.model_store,
        settings.max_batch,
        settings.batch_wait_ms,
    )
    worker.work()
    log.info("worker %s stopped after %d jobs", settings.name, worker.processed)


if __name__ == "__main__":
    main()
