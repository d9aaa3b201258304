"""Inference worker processes (``python -m model.inference``) on a Redis and a model store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.processes import python, start, stop

# quick=True: heartbeats, polls and batches shortened so tests see faults and new models
# within seconds; quick=False leaves the worker's own defaults (benchmarks measure those).
QUICK = {
    "HEARTBEAT_SECONDS": "0.5",
    "MODEL_POLL_SECONDS": "1",
    "BLOCK_MS": "200",
    "CLAIM_IDLE_MS": "60000",
    "MAX_BATCH": "8",
    "BATCH_WAIT_MS": "20",
}


def worker_argv() -> list[str]:
    """The worker's command line (settings come from the environment: model/serving/settings.py)."""
    return [python(), "-m", "model.inference"]


class Workers:
    """Named workers, each logging to ``<workdir>/<name>.log``; fault tests kill them by name."""

    def __init__(self, redis_url: str, store_root: Path, workdir: Path, quick: bool = True):
        self.redis_url, self.store_root, self.dir = redis_url, store_root, Path(workdir)
        self.quick = quick
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, **env) -> subprocess.Popen:
        base = {
            "REDIS_URL": self.redis_url,
            "MODEL_STORE": str(self.store_root),
            "WORKER_NAME": name,
            "WORKER_METRICS_PORT": "0",
            **(QUICK if self.quick else {}),
            # the default backend exports the model once per version: keep that out of var/
            "MODEL_CACHE_DIR": str(self.dir / "model-cache"),
        }
        proc = start(worker_argv(), env={**base, **env}, log=self.dir / f"{name}.log")
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)
