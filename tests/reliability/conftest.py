"""Reliability suite: marked, run by `make test`, figures kept for RELIABILITY.md."""

from __future__ import annotations

import pytest

from tests.api.conftest import app, auth, client  # noqa: F401 - the API fixtures, reused

from . import results


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session", autouse=True)
def _write_figures():
    yield
    results.flush()
