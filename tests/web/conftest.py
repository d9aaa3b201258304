"""Fixtures of the web UI tests: the app on a real Redis, users, a logged-in client, a real API."""

from __future__ import annotations

import importlib
import re

import pytest

from devstack.api import ApiServer

TEST_PASSWORD = "correct horse battery"
# Nothing listens here: the UI must answer "service unavailable" cleanly.
DEAD_API = "http://127.0.0.1:9"


def web_config(redis_url: str, api_url: str = DEAD_API, **extra) -> dict:
    """The settings every UI test uses (a cheap scrypt so logins take milliseconds)."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "API_URL": api_url,
        "API_TOKEN": "test-api-token",
        "API_TIMEOUT_SECONDS": 5,
        # The UI's own database, apart from the job data (db 0), as in production.
        "WEB_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/1",
        "PASSWORD_HASH": "scrypt:1024:8:1",
        "LOGIN_RATE_LIMIT": "3 per minute",
        "PROXY_COUNT": 0,
        **extra,
    }


@pytest.fixture
def app(redis_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create a user (clinician by default) with TEST_PASSWORD."""
    from pneumonia_web import users

    def make(name="alice", role="clinician", password=TEST_PASSWORD):
        with app.app_context():
            return users.create(name, role, password)

    return make


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token from a page's form."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, f"no csrf token on {path}"
    return match.group(1)


class AuthActions:
    """flaskr's auth helper: log in and out through the real forms."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=TEST_PASSWORD, next_url=None):
        token = csrf_token(self.client)
        path = "/login" + (f"?next={next_url}" if next_url else "")
        return self.client.post(
            path, data={"username": username, "password": password, "csrf_token": token}
        )

    def logout(self):
        token = csrf_token(self.client, "/")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return AuthActions(client)


def _api_importable() -> bool:
    try:
        module = importlib.import_module("pneumonia_api")
    except ImportError:
        return False
    return hasattr(module, "create_app")


@pytest.fixture(scope="session")
def api_server(redis_server, tmp_path_factory):
    """The real prediction API under gunicorn on a free port, against the session Redis."""
    if not _api_importable():
        pytest.skip("pneumonia_api.create_app is not on this branch yet: merge main")
    api = ApiServer(redis_server, tmp_path_factory.mktemp("api"), workers=1, quick=False,
                    API_TOKEN="test-api-token", GUNICORN_THREADS="4")  # fmt: skip
    try:
        yield api.start().url
    finally:
        api.stop()


@pytest.fixture
def api_url(redis_url, api_server):
    """The API, with the Redis emptied before the test (``redis_url`` flushes it)."""
    return api_server


@pytest.fixture
def queue(redis_url):
    """The job queue on the test Redis, to do by hand what a worker would."""
    import redis

    from jobs.queue import JobQueue

    client = redis.Redis.from_url(redis_url)
    yield JobQueue(client)
    client.close()


@pytest.fixture
def alice(client, make_user):
    """A logged-in clinician's test client."""
    make_user("alice")
    AuthActions(client).login("alice")
    return client
