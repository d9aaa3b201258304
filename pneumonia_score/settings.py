"""Where the API is and how to authenticate: the environment, overridden by the flags.

``API_URL`` and ``API_TOKEN`` are the names the UI and ``make up`` use (``source
var/local.env`` sets both locally); the token is never read from a flag's default, so it does
not end up in shell history unless typed there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class Settings:
    api_url: str = field(default_factory=lambda: _env("API_URL", "http://127.0.0.1:5000"))
    api_token: str = field(default_factory=lambda: _env("API_TOKEN", ""))
    # Seconds one HTTP request may take; an upload of a large DICOM needs the most.
    timeout: float = field(default_factory=lambda: float(_env("SCORE_HTTP_TIMEOUT", "60")))
    # Attempts per request on a network error, a 429 or a 5xx, with doubling pauses.
    retries: int = field(default_factory=lambda: int(_env("SCORE_RETRIES", "5")))
    # Seconds between two readings of the results still pending.
    poll_seconds: float = field(default_factory=lambda: float(_env("SCORE_POLL_SECONDS", "1")))
    # Seconds to wait for one result before leaving it for the next run ("timeout").
    wait_seconds: float = field(default_factory=lambda: float(_env("SCORE_WAIT_SECONDS", "900")))
