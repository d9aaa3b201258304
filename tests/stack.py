"""A full local stack on free loopback ports, for the browser, reliability and benchmark tests.

    with LocalStack(tmp_path, model_store=model_store.root, workers=1) as stack:
        stack.wait_ready()
        stack.create_user("alice", "clinician", "a long password")
        requests.get(stack.https_url + "/login", verify=False)

Real processes, each logging to ``<tmp>/logs/<name>.log``: redis-server (AOF on), the API under
gunicorn, N inference workers (those three from ``tests/processes.py``, exposed as ``stack.redis``,
``stack.api``, ``stack.workers`` so fault tests can kill them), the web UI under gunicorn and
nginx with the rendered config (TLS with a self-signed certificate). Everything is stopped,
newest first, on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import requests

from tests.processes import TOKEN, ApiServer, RedisServer, Workers
from tests.support import ROOT, free_port, python, start, stop, wait_for_http, wait_until

NGINX_DIR = ROOT / "nginx"


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
        self.max_body, self.monitoring_cidr = max_body, monitoring_cidr
        self.ui_env, self.api_env, self.worker_env = ui_env or {}, api_env or {}, worker_env or {}
        self.procs: list[tuple[str, subprocess.Popen]] = []  # the UI and nginx
        self.redis = RedisServer(self.tmp / "redis")
        self.redis_url = self.redis.url
        self.web_redis_url = self.redis.url.rsplit("/", 1)[0] + "/1"  # the UI's own database
        self.api = ApiServer(self.redis_url, self.logs, API_TOKEN=api_token, **self.api_env)
        self.api_url = self.api.url
        self.workers = Workers(self.redis_url, model_store, self.logs) if model_store else None
        self.ui_port, self.http_port, self.https_port = free_port(), free_port(), free_port()
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        self.http_url = f"http://localhost:{self.http_port}"
        self.https_url = f"https://localhost:{self.https_port}"

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
        self._start_ui()
        self._start_nginx()

    def stop(self) -> None:
        """Stop everything, newest first."""
        while self.procs:
            _, proc = self.procs.pop()
            stop(proc)
        if self.workers:
            self.workers.stop_all()
        self.api.stop()
        self.redis.stop()

    def _run(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        proc = start(argv, env=env, log=self.logs / f"{name}.log")
        self.procs.append((name, proc))
        return proc

    # --- the processes -----------------------------------------------------------------------

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

    def _start_ui(self) -> None:
        env = {
            "API_URL": self.api_url,
            "API_TOKEN": self.api_token,
            "SECRET_KEY": self.secret_key,
            "WEB_REDIS_URL": self.web_redis_url,
            "WEB_BIND": f"127.0.0.1:{self.ui_port}",
            "WEB_WORKERS": "2",
            "POLL_INTERVAL_MS": "500",
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prom-web"),
            **self.ui_env,
        }
        argv = ["-m", "gunicorn", "-c", "python:pneumonia_web.gunicorn_conf"]
        self._run("ui", [python(), *argv, "pneumonia_web:create_app()"], env)
        wait_for_http(self.ui_url + "/healthz", timeout=30)

    def _start_nginx(self) -> None:
        conf, self.ca = render_tls_nginx(  # verify=stack.ca: the self-signed cert, checked
            self.tmp,
            upstream=f"127.0.0.1:{self.ui_port}",
            http=f"127.0.0.1:{self.http_port}",
            https=f"127.0.0.1:{self.https_port}",
            MAX_BODY=self.max_body,
            MONITORING_CIDR=self.monitoring_cidr,
        )
        self._run("nginx", nginx_argv(conf))
        wait_for_https(self.https_url, self.ca)

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


def render_tls_nginx(tmp: Path, upstream: str, http: str, https: str, **settings: str):
    """A self-signed certificate under ``tmp/tls`` and the product's nginx config under
    ``tmp/nginx`` proxying to ``upstream``; returns (config dir, certificate to verify with)."""
    tls = tmp / "tls"
    subprocess.run(["bash", str(NGINX_DIR / "selfsigned.sh"), str(tls)], check=True,
                   capture_output=True)  # fmt: skip
    conf = render_nginx(
        tmp / "nginx",
        LISTEN_HTTP=http,
        LISTEN_HTTPS=https,
        UI_UPSTREAM=upstream,
        TLS_CERT=str(tls / "cert.pem"),
        TLS_KEY=str(tls / "key.pem"),
        **settings,
    )
    return conf, str(tls / "cert.pem")


def wait_for_https(url: str, ca: str) -> None:
    """Until nginx answers /healthz over TLS with the certificate ``ca``."""
    wait_until(
        lambda: requests.get(url + "/healthz", timeout=2, verify=ca).ok,
        timeout=20,
        what=f"nginx over https at {url}",
    )


def render_nginx(out: Path, **settings: str) -> Path:
    """Render nginx/*.template into ``out`` with nginx/render.sh; returns ``out``."""
    env = {**os.environ, **settings}
    subprocess.run(["bash", str(NGINX_DIR / "render.sh"), str(out)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return out


def nginx_argv(conf_dir: Path, *extra: str) -> list[str]:
    """The command that runs (or with ``-t`` checks) a rendered local config."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    return [exe, "-e", "stderr", "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"), *extra]
