"""The prediction API under gunicorn, as production and `make up` run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.processes import free_port, python, start, stop, wait_for_http

TOKEN = "e2e-token-" + "y" * 32  # the dev stack's API token (never a deployment's)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# quick=True: a lost Redis shows as a clean 503 within a second, so fault tests stay short.
QUICK = {"REDIS_TIMEOUT_SECONDS": "1"}


def api_argv() -> list[str]:
    """gunicorn with the API's own config (bind, workers, threads from the environment)."""
    return [python(), "-m", "gunicorn", "-c", "python:pneumonia_api.gunicorn_conf",
            "pneumonia_api:create_app()"]  # fmt: skip


class ApiServer:
    """The API on a free port (multiprocess metrics on). ``workers=None``: gunicorn_conf's own
    count; ``quick=False``: the API's own timeouts (benchmarks); ``env`` overrides the rest."""

    def __init__(
        self, redis_url: str, workdir: Path, workers: int | None = 2, quick: bool = True, **env
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / "api.log"
        self.env = {
            "REDIS_URL": redis_url,
            "API_TOKEN": TOKEN,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            **({"GUNICORN_WORKERS": str(workers)} if workers else {}),
            "PROMETHEUS_MULTIPROC_DIR": str(Path(workdir) / "prom-api"),
            **(QUICK if quick else {}),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> ApiServer:
        self.proc = start(api_argv(), env=self.env, log=self.log)
        wait_for_http(self.url + "/healthz")
        return self

    def children(self) -> list[int]:
        """The gunicorn workers' pids (fault tests kill them)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
