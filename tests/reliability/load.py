"""A small, bounded load generator: N uploads from C concurrent clients, with latencies.

Equal to a headless locust run for what we need (fixed request count, loopback only, stops by
itself) without another process tree. ``send(path) -> (status, job_or_None)`` is supplied by
the caller, so the same generator drives the API directly or nginx -> UI.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoadReport:
    sent: int = 0
    accepted: list = field(default_factory=list)  # (job, t_sent)
    errors: list = field(default_factory=list)
    accept_ms: list = field(default_factory=list)
    result_ms: list = field(default_factory=list)
    wall_seconds: float = 0.0

    def percentiles(self, values) -> dict:
        if not values:
            return {}
        q = statistics.quantiles(values, n=100, method="inclusive")
        return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1)}


def run(
    files: list[Path],
    send: Callable[[Path], tuple[int, dict | None]],
    total: int,
    clients: int,
    max_seconds: float = 600,
) -> LoadReport:
    """Send ``total`` uploads from ``clients`` threads; stops early at ``max_seconds``."""
    report = LoadReport()
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def one(i: int) -> None:
        if time.monotonic() > deadline:
            return
        sent_at = time.time()  # wall clock, comparable with the records' finished_at
        t0 = time.perf_counter()
        try:
            status, job = send(files[i % len(files)])
        except Exception as exc:
            with lock:
                report.errors.append(type(exc).__name__)
            return
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            report.sent += 1
            if status == 202 and job is not None:
                report.accepted.append((job, sent_at))
                report.accept_ms.append(ms)
            else:
                report.errors.append(status)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(total)))
    report.wall_seconds = time.perf_counter() - t0
    return report
