"""Shared fixtures: a real Redis on a free port, a model store with a tiny real model."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis

from tests.support import FULLRES, ROOT, build_tiny_model, free_port, wait_until


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real, empty redis-server for the whole session (no fakeredis)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip(
            "redis-server is not installed: run `make system` "
            "(Debian: apt-get install redis-server)"
        )
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(client.ping, timeout=10, what="redis-server")
    yield url
    proc.terminate()
    proc.wait(10)


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
