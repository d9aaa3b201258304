"""Figures of the reliability run, collected by the tests and written to RELIABILITY.md.

Each test records what it tried and what it measured; at the end of the session the figures
go to ``var/reliability/results.json`` and, with ``python -m tests.reliability.report``, into
the table of RELIABILITY.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from devstack.settings import ROOT

RESULTS = ROOT / "var" / "reliability" / "results.json"
_figures: dict[str, dict] = {}


def record(name: str, **figures) -> None:
    """Remember the figures of one proof (merged into the JSON at session end)."""
    _figures[name] = {**figures, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def flush() -> Path | None:
    if not _figures:
        return None
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(_figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True))
    return RESULTS
