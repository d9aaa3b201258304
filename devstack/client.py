"""What a user of the API does against a dev stack: upload, wait for the result, wait ready."""

from __future__ import annotations

from pathlib import Path

import requests

from devstack.api import AUTH
from devstack.processes import wait_until
from jobs.record import FINAL


def wait_ready(api_url: str, timeout: float = 90, interval: float = 0.1) -> None:
    """Until /readyz says 200: Redis up and a worker serving a model."""
    wait_until(
        lambda: requests.get(api_url + "/readyz", timeout=5).status_code == 200,
        timeout=timeout,
        interval=interval,
        what="a worker serving a model",
    )


def post_file(api_url: str, path: Path, uploader: str = "e2e", timeout: float = 30):
    """Upload one file; returns the response (the caller asserts)."""
    with open(path, "rb") as fh:
        return requests.post(
            api_url + "/v1/predictions",
            files={"file": (path.name, fh)},
            headers={**AUTH, "X-Uploader": uploader},
            timeout=timeout,
        )


def post(api_url: str, path: Path, uploader: str = "e2e") -> dict:
    """Upload one file that must be accepted; returns its prediction item."""
    resp = post_file(api_url, path, uploader)
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


def result(api_url: str, item: dict, timeout: float = 120) -> dict:
    """Poll a prediction until it is final."""

    def done():
        body = requests.get(api_url + item["links"]["self"], headers=AUTH, timeout=5).json()
        return body if body.get("status") in FINAL else None

    return wait_until(done, timeout=timeout, interval=0.2, what=f"result of {item['id']}")
