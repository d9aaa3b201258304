"""Every Redis key of the job system, spelled once.

Layout (``{p}`` is the configurable key prefix, ``pneumonia`` by default)::

    {p}:jobs                 stream   one entry per job: {"id": <prediction id>}
    {p}:jobs:dead            stream   jobs that failed MAX_ATTEMPTS times (dead letters)
    {p}:pred:<id>            hash     the prediction record (jobs.record.Prediction)
    {p}:img:<id>             string   image bytes, expire after image_ttl
    {p}:index                zset     prediction ids scored by creation time (ms): history
    {p}:cache:<ver>:<sha>    string   prediction id already done for these bytes and model
    {p}:idem:<sha>           string   ids created by a request with an Idempotency-Key (the key
                                      is hashed with the uploader: no client text in key names)
    {p}:worker:<name>        hash     heartbeat of one worker, expires on its own
    {p}:workers              zset     worker names scored by last heartbeat (s)
    {p}:model                hash     the model card the workers serve now
    {p}:training             hash     progress of a running training
    {p}:verdict:<id>         hash     the reader's verdict on one prediction (jobs.verdicts)
    {p}:verdicts             zset     prediction ids with a verdict, scored by verdict time (ms)
    {p}:verdicts:tally       hash     verdict counts "<model version>|<agreement>" (metrics)
    {p}:heatmaps             list     Grad-CAM requests: prediction ids (jobs.heatmaps)
    {p}:heatmap:<id>         hash     Grad-CAM of one prediction (PNG or error), TTL = image's
    {p}:heatmap:<id>:asked   string   a request is out; expires after HEATMAP_RETRY_SECONDS

Jobs are read with XREADGROUP by the consumer group :data:`GROUP`; a job stays pending until a
worker XACKs it, so a worker that dies mid-batch leaves its jobs to be reclaimed with XAUTOCLAIM.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "pneumonia"
GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix. The only place a Redis key is spelled."""

    prefix: str = DEFAULT_PREFIX

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

    def idempotency(self, digest: str) -> str:
        return f"{self.prefix}:idem:{digest}"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    def verdict(self, pid: str) -> str:
        return f"{self.prefix}:verdict:{pid}"

    @property
    def verdicts(self) -> str:
        return f"{self.prefix}:verdicts"

    @property
    def verdict_tally(self) -> str:
        return f"{self.prefix}:verdicts:tally"

    @property
    def heatmap_requests(self) -> str:
        return f"{self.prefix}:heatmaps"

    def heatmap(self, pid: str) -> str:
        return f"{self.prefix}:heatmap:{pid}"

    def heatmap_asked(self, pid: str) -> str:
        return f"{self.prefix}:heatmap:{pid}:asked"
