"""The app's one Redis connection and its views of the job contract, created once per app.

Connecting waits for the first request, so the API boots (and answers /healthz) even while
Redis is down. Everything the API knows about jobs, workers, the served model and training
goes through the :mod:`jobs` package; this module only wires it to the app's configuration.
"""

from __future__ import annotations

import redis
from flask import Flask, current_app

from jobs.heatmaps import Heatmaps
from jobs.model import ServedModel
from jobs.queue import JobQueue
from jobs.registry import WorkerRegistry
from jobs.training import TrainingProgress
from jobs.verdicts import VerdictStore


def init_app(app: Flask) -> None:
    """Attach a connection pool and the job-contract objects that share it."""
    timeout = app.config["REDIS_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(
        app.config["REDIS_URL"],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    prefix = app.config["REDIS_PREFIX"]
    app.extensions["job_queue"] = JobQueue(
        client,
        prefix=prefix,
        image_ttl=app.config["IMAGE_TTL_SECONDS"],
        retention=app.config["RESULT_RETENTION_SECONDS"],
    )
    app.extensions["job_queue_group_ready"] = False
    app.extensions["job_workers"] = WorkerRegistry(client, prefix)
    app.extensions["job_model"] = ServedModel(client, prefix)
    app.extensions["job_training"] = TrainingProgress(client, prefix)
    app.extensions["job_verdicts"] = VerdictStore(
        client, prefix, retention=app.config["RESULT_RETENTION_SECONDS"]
    )
    app.extensions["job_heatmaps"] = Heatmaps(
        client, prefix, retry_seconds=app.config["HEATMAP_RETRY_SECONDS"]
    )


def get_queue() -> JobQueue:
    """The queue, with its consumer group created on first use."""
    queue: JobQueue = current_app.extensions["job_queue"]
    if not current_app.extensions["job_queue_group_ready"]:
        queue.ensure_group()
        current_app.extensions["job_queue_group_ready"] = True
    return queue


def live_workers(app: Flask | None = None) -> list[dict]:
    """Workers whose heartbeat is fresher than WORKER_STALE_SECONDS."""
    app = app or current_app
    registry: WorkerRegistry = app.extensions["job_workers"]
    return registry.alive(app.config["WORKER_STALE_SECONDS"])


def served_model() -> ServedModel:
    return current_app.extensions["job_model"]


def training() -> TrainingProgress:
    return current_app.extensions["job_training"]


def verdicts() -> VerdictStore:
    return current_app.extensions["job_verdicts"]
