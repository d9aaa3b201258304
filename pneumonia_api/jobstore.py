"""The app's one Redis connection and job queue, created lazily and shared by requests."""

from __future__ import annotations

import redis
from flask import Flask, current_app

from .protocol import JobQueue


def init_app(app: Flask) -> None:
    """Attach a connection pool; connecting waits for the first request, so the API boots
    (and answers /healthz) even while Redis is down."""
    timeout = app.config["REDIS_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(
        app.config["REDIS_URL"],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    app.extensions["job_queue"] = JobQueue(
        client,
        prefix=app.config["REDIS_PREFIX"],
        image_ttl=app.config["IMAGE_TTL_SECONDS"],
        retention=app.config["RESULT_RETENTION_SECONDS"],
    )
    app.extensions["job_queue_group_ready"] = False


def get_queue() -> JobQueue:
    """The queue, with its consumer group created on first use."""
    queue: JobQueue = current_app.extensions["job_queue"]
    if not current_app.extensions["job_queue_group_ready"]:
        queue.ensure_group()
        current_app.extensions["job_queue_group_ready"] = True
    return queue
