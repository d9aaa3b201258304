"""Plumbing for real processes: free ports, start and stop a process group, wait until ready."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from devstack.settings import ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Until ``url`` answers anything but a 5xx (the server is up, whatever its state)."""
    wait_until(
        # liveness only, on loopback: nginx's certificate is checked by wait_for_https
        lambda: requests.get(url, timeout=2, verify=False).status_code < 500,  # noqa: S501
        timeout=timeout,
        what=url,
    )


def start(argv: list[str], env: dict | None = None, log: Path | None = None, **kw):
    """Start a real process in its own session, output to ``log`` (kept for post-mortems)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the process end
    return subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=kw.pop("cwd", ROOT),
        start_new_session=True,
        **kw,
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop a process group politely, then firmly."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def python() -> str:
    """This interpreter: services start in the same virtualenv as whoever starts them."""
    return sys.executable
