"""Model versions: sortable by time, traceable to the commit that trained them.

:func:`git_sha` is read once per run (:func:`model.training.recipe.run`) and that one value
goes into both the version and the card, even if HEAD moves while the run trains.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess


def git_sha(short: bool = True) -> str:
    """The commit the code was trained from ('unknown' outside a git checkout)."""
    argv = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def make_version(when: dt.datetime | None = None, sha: str | None = None) -> str:
    """``20261123T1410Z-3d0aacc``: sortable by time, traceable to code, safe as a path/S3 key."""
    when = when or dt.datetime.now(dt.UTC)
    raw = f"{when:%Y%m%dT%H%MZ}-{sha or git_sha()}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)
