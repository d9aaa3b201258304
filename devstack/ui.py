"""The web UI under gunicorn, as production and `make up` run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.processes import free_port, python, start, stop, wait_for_http


def ui_argv() -> list[str]:
    """gunicorn with the UI's own config (bind and workers from the environment)."""
    return [python(), "-m", "gunicorn", "-c", "python:pneumonia_web.gunicorn_conf",
            "pneumonia_web:create_app()"]  # fmt: skip


class UiServer:
    """The UI on a free port, talking to ``api_url``; ``env`` overrides its settings."""

    def __init__(self, workdir: Path, api_url: str, api_token: str, secret_key: str,
                 redis_url: str, **env):  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / "ui.log"
        self.env = {
            "API_URL": api_url,
            "API_TOKEN": api_token,
            "SECRET_KEY": secret_key,
            "WEB_REDIS_URL": redis_url,
            "WEB_BIND": f"127.0.0.1:{self.port}",
            "WEB_WORKERS": "2",
            "POLL_INTERVAL_MS": "500",
            "PROMETHEUS_MULTIPROC_DIR": str(Path(workdir) / "prom-web"),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> UiServer:
        self.proc = start(ui_argv(), env=self.env, log=self.log)
        wait_for_http(self.url + "/healthz", timeout=30)
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
