"""What one reliability run proved: each proof's outcome and the figures it measured.

Each test records its figures with :func:`record`; the conftest hooks note every test's
outcome (passed, failed, skipped). At the end of the session :func:`flush` writes
``var/reliability/results.json`` *for this run only* (nothing merged from earlier runs) and
:mod:`tests.reliability.report` rewrites RELIABILITY.md from it, with the commit, the date and
the CPU: a proof that did not run this time is not in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from devstack.settings import ROOT

RESULTS = ROOT / "var" / "reliability" / "results.json"
_current: list[str] = [""]
_figures: dict[str, dict] = {}
_outcomes: dict[str, dict] = {}
_started = time.time()


def start(nodeid: str) -> None:
    """The test whose figures :func:`record` receives next."""
    _current[0] = nodeid


def record(name: str, **figures) -> None:
    """The name and figures of the proof running now (measured values only, no literals)."""
    _figures[_current[0]] = {"proof": name, "figures": figures}


def outcome(nodeid: str, phase: str, result: str, seconds: float) -> None:
    """One phase's result; a test failed if any phase failed, was skipped if setup skipped."""
    entry = _outcomes.setdefault(nodeid, {"outcome": "passed", "seconds": 0.0})
    entry["seconds"] = round(entry["seconds"] + seconds, 1)
    if result == "failed":
        entry["outcome"] = "failed"
    elif result == "skipped" and entry["outcome"] != "failed":
        entry["outcome"] = "skipped"


def _git(*argv: str) -> str:
    try:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def cpu() -> str:
    """CPU model and the cores this process may use."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def run_facts() -> dict:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_started)),
        "cpu": cpu(),
    }


def flush() -> Path | None:
    """Write this run's proofs (and nothing older) to RESULTS."""
    if not _outcomes:
        return None
    proofs = [
        {"test": nodeid, **facts, **_figures.get(nodeid, {"proof": nodeid, "figures": {}})}
        for nodeid, facts in _outcomes.items()
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**run_facts(), "proofs": proofs}, indent=2))
    return RESULTS
