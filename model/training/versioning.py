"""Model versions: sortable by time, traceable to the commit that trained them.

:func:`git_sha` is read once per run (:func:`model.training.recipe.run`) and that one value
goes into both the version and the card, even if HEAD moves while the run trains.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

_CODE = Path(__file__).resolve().parents[1]  # model/


def git_sha(short: bool = True) -> str:
    """The commit the code was trained from, 'unknown' only when nothing says.

    Asked of git in the code's own directory (a service's working directory is elsewhere),
    else read from ``model/RELEASE``, which ``git archive`` (``make release``) fills in via
    ``export-subst``: the boxes run an unpacked release with no ``.git``, and a version name
    ending in ``-unknown`` cannot be traced to the code that trained it.
    """
    argv = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=10, check=True, cwd=_CODE
        )
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        stamped = (_CODE / "RELEASE").read_text().strip()
    except OSError:
        return "unknown"
    if not re.fullmatch(r"[0-9a-f]{40}", stamped):
        return "unknown"  # not a release: the placeholder is still there
    return stamped[:7] if short else stamped


def make_version(when: dt.datetime | None = None, sha: str | None = None) -> str:
    """``20261123T1410Z-3d0aacc``: sortable by time, traceable to code, safe as a path/S3 key."""
    when = when or dt.datetime.now(dt.UTC)
    raw = f"{when:%Y%m%dT%H%MZ}-{sha or git_sha()}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", raw)
