"""The one door from the UI to the prediction API (``API_URL`` + the service token).

Every call has a timeout; every failure, whether the API said no or could not be reached,
becomes an :class:`ApiError` with a machine ``code`` and a ``message`` a clinician can act on.
"""

from __future__ import annotations

import threading
from typing import IO, Any

import requests
from flask import current_app

UNAVAILABLE = (
    "The analysis service is not reachable right now. Wait a minute and try again; "
    "if it keeps failing, call the IT service desk."
)


class ApiError(Exception):
    """The API refused a request or could not be reached."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ApiClient:
    """Thin, typed wrapper over the /v1 routes the UI uses."""

    def __init__(self, base_url: str, token: str, timeout: float):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._local = threading.local()

    @property
    def http(self) -> requests.Session:
        """One pooled session per thread (gunicorn runs threads; Session is not thread-safe)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self._token}"
            self._local.session = session
        return session

    def _call(self, method: str, path: str, **kw) -> requests.Response:
        """One request; non-2xx answers and network failures raise ApiError."""
        kw.setdefault("timeout", self.timeout)
        try:
            resp = self.http.request(method, self.base_url + path, **kw)
        except requests.RequestException as exc:
            raise ApiError(503, "service_unavailable", UNAVAILABLE) from exc
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp

    def submit(
        self,
        filename: str,
        stream: IO[bytes],
        content_type: str,
        uploader: str,
        idempotency_key: str | None = None,
    ) -> dict:
        """Upload one image; returns its new prediction (status ``queued`` or ``done``).

        With ``idempotency_key`` a retry of an upload the API already stored returns the
        first job instead of a second one.
        """
        files = {"file": (filename, stream, content_type or "application/octet-stream")}
        headers = {"X-Uploader": uploader}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        resp = self._call("POST", "/v1/predictions", files=files, headers=headers)
        return resp.json()[0]

    def get(self, pid: str) -> dict:
        """One prediction record."""
        return self._call("GET", f"/v1/predictions/{pid}").json()

    def image(self, pid: str) -> tuple[bytes, str]:
        """The stored image bytes and their media type."""
        resp = self._call("GET", f"/v1/predictions/{pid}/image")
        return resp.content, resp.headers.get("Content-Type", "application/octet-stream")

    def heatmap(self, pid: str) -> bytes | None:
        """The Grad-CAM layer (PNG) of a result, or None while a worker is drawing it.

        Never waits: the API asks a worker and answers 202 at once, so the page polls
        (pneumonia_web/heatmap.py). Refusals (404 expired, 409 not scored yet, 422 failed)
        raise ApiError with the API's message.
        """
        resp = self._call("GET", f"/v1/predictions/{pid}/heatmap")
        return None if resp.status_code == 202 else resp.content

    def list(self, limit: int, before: int | None = None, **filters: str) -> dict:
        """A page of predictions newest first: ``{"items": [...], "next_before": ms|None}``."""
        params: dict[str, Any] = {"limit": limit}
        if before:
            params["before"] = before
        params.update({k: v for k, v in filters.items() if v})
        return self._call("GET", "/v1/predictions", params=params).json()

    def worklist(self, **params: Any) -> dict:
        """A triaged page: ``{"items", "total", "next_offset", "unread", "truncated"}``."""
        query = {k: v for k, v in params.items() if v not in (None, "", False)}
        return self._call("GET", "/v1/worklist", params=query).json()

    def unread(self) -> int:
        """How many results have a label and no reader's verdict yet."""
        # Every page's navigation asks: a short timeout, so a slow API never holds a page.
        timeout = min(self.timeout, 2.0)
        return int(self._call("GET", "/v1/worklist/unread", timeout=timeout).json()["unread"])

    def record_verdict(self, pid: str, choice: str, note: str, reader: str) -> dict:
        """Record (or replace) the reader's verdict on one result."""
        body = {"choice": choice, "note": note}
        headers = {"X-Reader": reader}
        return self._call(
            "PUT", f"/v1/predictions/{pid}/verdict", json=body, headers=headers
        ).json()

    def model(self) -> dict:
        """The model card, training progress and workers."""
        return self._call("GET", "/v1/model").json()

    def ready(self) -> tuple[bool, dict]:
        """The API's readiness answer (never raises on a 503: that *is* the answer)."""
        try:
            resp = self.http.get(self.base_url + "/readyz", timeout=self.timeout)
            body = (
                resp.json()
                if resp.headers.get("Content-Type", "").startswith("application/json")
                else {}
            )
            return resp.status_code == 200, body
        except (requests.RequestException, ValueError):
            return False, {"error": "api unreachable"}


def _error_from(resp: requests.Response) -> ApiError:
    """Map the API's ``{"error": {"code", "message"}}`` (or anything else) to ApiError."""
    try:
        err = resp.json()["error"]
        return ApiError(resp.status_code, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        if resp.status_code in (502, 503, 504):
            return ApiError(503, "service_unavailable", UNAVAILABLE)
        message = f"The analysis service answered {resp.status_code}. Try again later."
        return ApiError(resp.status_code, "api_error", message)


def init_app(app) -> None:
    """Create the app's client from API_URL, API_TOKEN and API_TIMEOUT_SECONDS."""
    app.extensions["api"] = ApiClient(
        app.config["API_URL"], app.config["API_TOKEN"], app.config["API_TIMEOUT_SECONDS"]
    )


def get_api() -> ApiClient:
    """The current app's API client."""
    return current_app.extensions["api"]
