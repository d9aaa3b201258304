"""The API, seen from the scoring command: upload one file, read one result.

Every call retries what may pass (no connection, 429, 5xx) with doubling pauses; what will
not pass (the API refused the file) comes back as a :class:`Refused` with the API's message,
which says what is wrong with that file. A wrong token is :class:`Unauthorized`: the only
failure that stops the run, since no file could be scored.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import requests

RETRY_STATUS = (429, 500, 502, 503, 504)


class Refused(Exception):
    """The API will not take or cannot find this: the message says why."""


class Unavailable(Exception):
    """The API could not be reached after every retry."""


class Unauthorized(Exception):
    """The token is missing or wrong."""


class ScoringClient:
    def __init__(self, base_url: str, token: str, timeout: float, retries: int, uploader: str):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(1, retries)
        self.uploader = uploader
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kw) -> dict | list:
        pause, last = 0.5, "no answer"
        for attempt in range(self.retries):
            if attempt:
                time.sleep(pause)
                pause = min(pause * 2, 30)
            try:
                resp = self.http.request(method, self.base_url + path, timeout=self.timeout, **kw)
            except requests.RequestException as exc:
                last = f"cannot reach {self.base_url}: {type(exc).__name__}"
                continue
            if resp.status_code == 401:
                raise Unauthorized(_message(resp))
            if resp.status_code in RETRY_STATUS:
                last = f"the API answered {resp.status_code}: {_message(resp)}"
                continue
            if resp.status_code >= 400:
                raise Refused(_message(resp))
            return resp.json()
        raise Unavailable(last)

    def upload(self, path: Path) -> str:
        """Upload one file; returns its prediction id."""
        data = path.read_bytes()
        headers = {
            "X-Uploader": self.uploader,
            # Retrying an upload whose answer was lost must not score the file twice (the API
            # honours the key where it supports it; the bytes' hash is stable across runs).
            "Idempotency-Key": hashlib.sha256(data).hexdigest(),
        }
        files = {"file": (path.name, data, "application/octet-stream")}
        [item] = self._call("POST", "/v1/predictions", files=files, headers=headers)
        return item["id"]

    def result(self, pid: str) -> dict:
        """The prediction record (status queued, processing, done, failed, ...)."""
        return self._call("GET", f"/v1/predictions/{pid}")


def _message(resp: requests.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {resp.status_code}"
