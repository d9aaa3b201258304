"""Real service processes for end-to-end and reliability tests.

Each class starts one kind of process on free loopback ports with its log in a temp dir, and
stops it cleanly. They are what `make up` runs, minus honcho.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis
import requests

from tests.support import free_port, python, start, stop, wait_for_http, wait_until

TOKEN = "e2e-token-" + "y" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RedisServer:
    """redis-server with AOF (fsync on every write) in its own dir: survives kill -9."""

    def __init__(self, workdir: Path, password: str | None = None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen | None = None
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = start(argv, log=self.dir / "redis.log")
        wait_until(redis.Redis.from_url(self.url).ping, timeout=10, what="redis-server")
        return self

    def kill(self) -> None:
        stop(self.proc, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)


def api_argv() -> list[str]:
    """The API under gunicorn, as production and `make up` run it."""
    return [python(), "-m", "gunicorn", "-c", "python:pneumonia_api.gunicorn_conf",
            "pneumonia_api:create_app()"]  # fmt: skip


class ApiServer:
    """The API under gunicorn (multiprocess metrics on)."""

    def __init__(self, redis_url: str, workdir: Path, workers: int = 2, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / "api.log"
        self.env = {
            "REDIS_URL": redis_url,
            "API_TOKEN": TOKEN,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(Path(workdir) / "prom-api"),
            "REDIS_TIMEOUT_SECONDS": "1",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> ApiServer:
        self.proc = start(
            api_argv(),
            env=self.env,
            log=self.log,
        )
        wait_for_http(self.url + "/healthz")
        return self

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)


class Workers:
    """Inference worker processes against a Redis and a model store."""

    def __init__(self, redis_url: str, store_root: Path, workdir: Path):
        self.redis_url, self.store_root, self.dir = redis_url, store_root, Path(workdir)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, **env) -> subprocess.Popen:
        base = {
            "REDIS_URL": self.redis_url,
            "MODEL_STORE": str(self.store_root),
            "WORKER_NAME": name,
            "WORKER_METRICS_PORT": "0",
            "HEARTBEAT_SECONDS": "0.5",
            "MODEL_POLL_SECONDS": "1",
            "BLOCK_MS": "200",
            "CLAIM_IDLE_MS": "60000",
            "MAX_BATCH": "8",
            "BATCH_WAIT_MS": "20",
            # the default backend exports the model once per version: keep that out of var/
            "MODEL_CACHE_DIR": str(self.dir / "model-cache"),
        }
        proc = start(
            [python(), "-m", "model.inference"], env={**base, **env}, log=self.dir / f"{name}.log"
        )
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)


def wait_ready(api_url: str, timeout: float = 90) -> None:
    wait_until(
        lambda: requests.get(api_url + "/readyz", timeout=5).status_code == 200,
        timeout=timeout,
        what="a worker serving a model",
    )


def post_file(api_url: str, path: Path, uploader: str = "e2e", timeout: float = 30):
    """Upload one file; returns the response (the caller asserts)."""
    with open(path, "rb") as fh:
        return requests.post(
            api_url + "/v1/predictions",
            files={"file": (path.name, fh)},
            headers={**AUTH, "X-Uploader": uploader},
            timeout=timeout,
        )


def post(api_url: str, path: Path, uploader: str = "e2e") -> dict:
    resp = post_file(api_url, path, uploader)
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def result(api_url: str, item: dict, timeout: float = 120) -> dict:
    """Poll a prediction until it is final."""

    def done():
        body = requests.get(api_url + item["links"]["self"], headers=AUTH, timeout=5).json()
        return body if body.get("status") in ("done", "failed") else None

    return wait_until(done, timeout=timeout, interval=0.2, what=f"result of {item['id']}")
