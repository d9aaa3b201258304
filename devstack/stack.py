"""A full local stack on free loopback ports, for browser, reliability and monitoring tests and
for screenshots.

    with LocalStack(tmp_path, model_store=model_store.root, workers=1) as stack:
        stack.wait_ready()
        stack.create_user("alice", "clinician", "a long password")
        requests.get(stack.https_url + "/login", verify=stack.ca)

Real processes, each logging to ``<tmp>/logs/<name>.log``: redis-server (AOF on), the API under
gunicorn, N inference workers, the web UI under gunicorn and nginx with the rendered config (TLS
with a self-signed certificate), exposed as ``stack.redis``, ``stack.api``, ``stack.workers``,
``stack.ui`` and ``stack.nginx`` so fault tests can kill them. Everything is stopped, newest
first, on exit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import requests

from devstack.api import TOKEN, ApiServer
from devstack.nginx import Nginx
from devstack.processes import python, wait_until
from devstack.redis_server import RedisServer
from devstack.settings import ROOT
from devstack.ui import UiServer
from devstack.worker import Workers


class LocalStack:
    """Start and stop the whole system; URLs and settings are attributes."""

    def __init__(
        self,
        tmp: Path,
        model_store: Path | None = None,
        workers: int = 1,
        api_token: str = TOKEN,
        secret_key: str = "stack-secret-key-" + "k" * 24,
        max_body: str = "33m",
        monitoring_cidr: str = "127.0.0.1/32",
        ui_env: dict | None = None,
        api_env: dict | None = None,
        worker_env: dict | None = None,
    ):
        self.tmp = Path(tmp)
        self.logs = self.tmp / "logs"
        self.model_store = model_store
        self.n_workers = workers if model_store is not None else 0
        self.api_token, self.secret_key = api_token, secret_key
        self.worker_env = worker_env or {}
        self.redis = RedisServer(self.tmp / "redis")
        self.redis_url = self.redis.url
        self.web_redis_url = self.redis.url.rsplit("/", 1)[0] + "/1"  # the UI's own database
        self.api = ApiServer(self.redis_url, self.logs, API_TOKEN=api_token, **(api_env or {}))
        self.api_url = self.api.url
        self.workers = Workers(self.redis_url, model_store, self.logs) if model_store else None
        ui_env = {"PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prom-web"), **(ui_env or {})}
        self.ui = UiServer(self.logs, self.api_url, api_token, secret_key, self.web_redis_url,
                           **ui_env)  # fmt: skip
        self.ui_port, self.ui_url = self.ui.port, self.ui.url
        self.nginx = Nginx(self.tmp, f"127.0.0.1:{self.ui_port}", self.logs / "nginx.log",
                           MAX_BODY=max_body, MONITORING_CIDR=monitoring_cidr)  # fmt: skip
        self.http_port, self.https_port = self.nginx.http_port, self.nginx.https_port
        self.http_url, self.https_url = self.nginx.http_url, self.nginx.https_url
        self.ca: str | None = None  # set by start(): the self-signed certificate to verify with

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start every process and wait until each answers (workers: see wait_ready)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.api.start()
        for i in range(self.n_workers):
            self.start_worker(f"worker-{i + 1}")
        self.ui.start()
        self.nginx.start()
        self.ca = self.nginx.ca

    def stop(self) -> None:
        """Stop everything, newest first."""
        self.nginx.stop()
        self.ui.stop()
        if self.workers:
            self.workers.stop_all()
        self.api.stop()
        self.redis.stop()

    def start_worker(self, name: str, **env) -> subprocess.Popen:
        """One more inference worker (``python -m model.inference``) on the stack's store."""
        env = {
            "MODEL_CACHE_DIR": str(self.tmp / f"model-cache-{name}"),
            "HEARTBEAT_SECONDS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **self.worker_env,
            **env,
        }
        return self.workers.start(name, **env)

    # --- helpers for tests -------------------------------------------------------------------

    def wait_ready(self, timeout: float = 180) -> None:
        """Until the API is ready: Redis up and a worker serving a model."""
        wait_until(
            lambda: requests.get(self.api_url + "/readyz", timeout=5).status_code == 200,
            timeout=timeout,
            interval=0.5,
            what=f"a worker serving a model (logs in {self.logs})",
        )

    def create_user(self, name: str, role: str = "clinician", password: str | None = None) -> str:
        """Create (or reset) an account through the real CLI; returns its password."""
        argv = [python(), "-m", "flask", "--app", "pneumonia_web", "users", "create", name,
                "--role", role, "--replace"]  # fmt: skip
        if password:
            argv += ["--password", password]
        env = {**os.environ, "WEB_REDIS_URL": self.web_redis_url, "API_TOKEN": self.api_token,
               "SECRET_KEY": self.secret_key}  # fmt: skip
        out = subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
        if password:
            return password
        return out.stdout.split("password: ")[1].strip()

    def log(self, name: str) -> str:
        """The log of one process (for assertion messages)."""
        with contextlib.suppress(FileNotFoundError):
            return (self.logs / f"{name}.log").read_text(errors="replace")
        return ""
