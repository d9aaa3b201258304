"""redis-server on a free loopback port with its data in its own directory."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from devstack.processes import free_port, start, stop, wait_until
from devstack.settings import REDIS_MAXMEMORY


def redis_argv(
    port: int, workdir: Path, durable: bool = True, maxmemory: str = REDIS_MAXMEMORY
) -> list[str]:
    """Loopback only, protected mode. ``durable``: the append-only file fsynced on every write
    (as `make up` runs it: survives kill -9); otherwise no persistence at all (benchmarks).
    ``maxmemory`` with noeviction, as production: full, it refuses writes, evicts nothing."""
    if durable:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        persistence = ["--appendonly", "no"]
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            *persistence, "--save", "", "--protected-mode", "yes",
            "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"]  # fmt: skip


class RedisServer:
    """One redis-server in ``workdir`` (its log there too); ``url`` carries the password."""

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        durable: bool = True,
        maxmemory: str = REDIS_MAXMEMORY,
    ):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password, self.durable, self.maxmemory = password, durable, maxmemory
        self.proc: subprocess.Popen | None = None
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = redis_argv(self.port, self.dir, self.durable, self.maxmemory)
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = start(argv, log=self.dir / "redis.log")
        wait_until(redis.Redis.from_url(self.url).ping, timeout=10, what="redis-server")
        return self

    def kill(self) -> None:
        """kill -9: what a crash or an OOM kill does."""
        stop(self.proc, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
