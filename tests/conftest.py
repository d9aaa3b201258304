"""Shared fixtures: a real Redis on a free port, a model store with a tiny real model."""

from __future__ import annotations

import shutil

import pytest
import redis

from devstack.redis_server import RedisServer
from devstack.settings import FULLRES, ROOT
from devstack.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real, empty redis-server for the whole session (no fakeredis)."""
    if shutil.which("redis-server") is None:
        pytest.skip(
            "redis-server is not installed: run `make system` "
            "(Debian: apt-get install redis-server)"
        )
    server = RedisServer(tmp_path_factory.mktemp("redis"), durable=False).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The session Redis, emptied before each test."""
    redis.Redis.from_url(redis_server).flushall()
    return redis_server


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny real Keras model saved with its card (built once per session)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-1")


@pytest.fixture
def model_store(tmp_path, tiny_model_dir):
    """A local model store whose ``current`` version is the tiny model."""
    from model.store import LocalStore

    store = LocalStore(tmp_path / "models")
    store.publish(tiny_model_dir, "tiny-1")
    return store


@pytest.fixture(scope="session")
def fullres_xrays():
    """The 48 full-resolution originals in ../shared/data (skip when absent)."""
    files = sorted(FULLRES.glob("*/*.jpeg"))
    if not files:
        pytest.skip(
            f"no X-rays at {FULLRES}: put the shared data beside the project or set SHARED_DATA"
        )
    return files


@pytest.fixture(scope="session")
def root():
    return ROOT
