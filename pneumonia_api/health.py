"""Liveness and readiness, without auth, for nginx, load balancers and Prometheus."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify

from .jobstore import get_queue, live_workers, training

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers: nothing else is checked."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when Redis answers and a worker with a loaded model sent a heartbeat recently.

    The body says why not, including training progress while `make up` trains the first
    model, so an operator (and the UI) can tell "starting" from "broken".
    """
    body: dict = {
        "status": "ready",
        "redis": True,
        "model_version": None,
        "workers": [],
        "training": None,
        "reasons": [],
    }
    try:
        queue = get_queue()
        workers = live_workers()
        body["workers"] = workers
        body["training"] = training().get()
        body["queue"] = queue.queue_stats()
    except redis.RedisError:
        body.update(
            status="not_ready",
            redis=False,
            reasons=["redis unreachable: uploads are refused until it is back"],
        )
        return jsonify(body), 503
    serving = [w for w in workers if w.get("state") == "ready"]
    if serving:
        body["model_version"] = serving[0].get("model_version")
    else:
        body["status"] = "not_ready"
        if not workers:
            body["reasons"].append(
                "no inference worker heartbeat: start one (python -m model.inference)"
            )
        else:
            states = sorted({w.get("state", "?") + ": " + w.get("detail", "") for w in workers})
            body["reasons"].append("no worker has a model loaded (" + "; ".join(states) + ")")
    return jsonify(body), 200 if body["status"] == "ready" else 503
