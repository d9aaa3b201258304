"""The model card's version history: which version answers, since when, who made it current
and why, and what the switch was measured on. The UI against the real API, with the served
card a worker would publish (the promotion records come from ``python -m model.promote``)."""

from __future__ import annotations

import re

import pytest

from jobs.model import ServedModel
from tests.web.conftest import web_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(redis_url, api_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url, api_url))


def record(version, previous, at, by, reason, auc, old_auc, **extra):
    return {
        "version": version,
        "previous": previous,
        "rollback": False,
        "by": by,
        "at": at,
        "reason": reason,
        "forced": False,
        "backend": "openvino",
        "data": "reader-confirmed export of 2026-11 (NORMAL/ PNEUMONIA/)",
        "tolerance": {"auc": 0.005, "sensitivity": 0.02},
        "comparison": {
            "candidate": {"roc_auc": auc, "sensitivity": 0.95, "specificity": 0.8, "images": 412},
            "current": None
            if old_auc is None
            else {"roc_auc": old_auc, "sensitivity": 0.93, "specificity": 0.82, "images": 412},
        },
        **extra,
    }


ROLLBACK = record(
    "v1", "v2", "2026-11-27T15:40:00Z", "carol", "v2 misses lobar cases", 0.961, 0.958,
    rollback=True, forced=True,
)  # fmt: skip
PROMOTE = record("v2", "v1", "2026-11-20T09:05:00Z", "bob", "retrained on Nov data", 0.958, 0.961)
FIRST = record("v1", None, "2026-11-01T08:00:00Z", "alice", "first GPU model", 0.961, None)


def card(version, history):
    return {
        "name": "ResNet50 pneumonia classifier",
        "version": version,
        "threshold": 0.42,
        "git_sha": "0123456789abcdef",
        "training_data": {"name": "Kermany", "manifest_sha256": "ab" * 32},
        "promotion": history[0] if history else None,
        "history": history,
    }


def rows(html: str) -> list[str]:
    section = html.split("data-version-history", 1)[1]
    return re.findall(r"<tr[^>]*>\s*<td>(.*?)</tr>", section, flags=re.S)


def test_history_lists_promotions_newest_first_with_who_why_and_figures(alice, queue):
    ServedModel(queue.r).publish(card("v1", [ROLLBACK, PROMOTE, FIRST]))
    html = alice.get("/model").get_data(as_text=True)

    made_current = html.split("data-promotion>", 1)[1].split("</dd>", 1)[0]
    assert "2026-11-27 15:40:00 UTC by carol (rollback) (forced): v2 misses lobar cases" in (
        made_current
    )
    first, second, third = rows(html)
    assert "Rolled back" in first and "forced" in first and "serving" in first
    assert "replaced <code>v2</code>" in first and "96.1 %" in first and "was 95.8 %" in first
    assert "Promoted" in second and "bob" in second and "retrained on Nov data" in second
    assert "serving" not in second  # only the newest row is what answers now
    assert "First version" in third and "was" not in third  # nothing to compare with
    assert "reader-confirmed export of 2026-11" in first and "412 images" in first
    assert "412 images · openvino" in first
    assert "abababababab" in html and "0123456789ab" in html  # data manifest and code


def test_reasons_are_shown_as_text_not_markup(alice, queue):
    hostile = record(
        "v2", "v1", "2026-11-20T09:05:00Z", "bob", "<img src=x onerror=alert(1)>", 0.9, 0.9
    )
    ServedModel(queue.r).publish(card("v2", [hostile]))
    html = alice.get("/model").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_first_version_says_it_was_never_compared(alice, queue):
    ServedModel(queue.r).publish(card("v1", []))
    html = alice.get("/model").get_data(as_text=True)
    assert "first version published, no comparison" in html
    assert "No promotion is on record" in html
