"""Gunicorn server hooks for Prometheus multiprocess mode, shared by the API and the UI.

Each service gets its own ``PROMETHEUS_MULTIPROC_DIR``: the directory is wiped when the master
starts (stale files from a previous run would be summed in), and each dead worker is marked,
so its live gauges stop counting. Import both names into a gunicorn config module.
"""

from __future__ import annotations

import os
import shutil


def on_starting(server):
    """Start from an empty multiprocess directory (this service's own)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    """A dead worker's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
