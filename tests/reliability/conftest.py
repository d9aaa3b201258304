"""Reliability suite: marked, run by `make test`; each run rewrites RELIABILITY.md."""

from __future__ import annotations

import pytest

from tests.api.conftest import app, auth, client  # noqa: F401 - the API fixtures, reused

from . import report, results


def _ours(item) -> bool:
    return "tests/reliability/" in str(item.fspath)


def pytest_collection_modifyitems(items):
    for item in items:
        if _ours(item):
            item.add_marker(pytest.mark.reliability)


def pytest_runtest_setup(item):
    if _ours(item):
        results.start(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    made = yield
    rep = made.get_result()
    if _ours(item):
        results.outcome(item.nodeid, rep.when, rep.outcome, rep.duration)


@pytest.fixture(scope="session", autouse=True)
def _write_report():
    yield
    if results.flush() is not None:
        report.main()
