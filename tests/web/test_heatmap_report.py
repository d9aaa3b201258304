"""The heatmap panel, its PNG and the printable report, in the UI against the real API.

No worker runs: the test finishes the job and stores the heatmap the way a worker does,
through the job contract (jobs.queue, jobs.heatmaps). Chromium drives the same screens with a
real worker in tests/e2e/test_heatmap_browser.py.
"""

from __future__ import annotations

import io

import pytest
import redis
from PIL import Image

from jobs.heatmaps import Heatmaps
from tests.web.conftest import web_config
from tests.web.test_with_api import card_id, finish, upload

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(redis_url, api_url):
    from pneumonia_web import create_app

    return create_app(web_config(redis_url, api_url))


HTMX = {"HX-Request": "true"}


def a_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (230, 20, 20, 200)).save(out, "PNG")
    return out.getvalue()


def test_heatmap_panel_polls_then_shows_the_controls_and_the_layer(
    alice, queue, redis_url, fullres_xrays
):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    waiting = alice.get(f"/results/{pid}/heatmap", headers=HTMX).get_data(as_text=True)
    assert 'data-heatmap="waiting"' in waiting and "hx-trigger" in waiting  # not scored yet
    assert "not where disease is" in waiting

    finish(queue, pid)
    page = alice.get(f"/results/{pid}").get_data(as_text=True)
    assert 'data-heatmap="start"' in page and 'hx-trigger="load"' in page  # asks on opening
    assert f'href="/results/{pid}/report"' in page and "Print report" in page
    computing = alice.get(f"/results/{pid}/heatmap", headers=HTMX).get_data(as_text=True)
    assert 'data-heatmap="computing"' in computing and "Drawing the heatmap" in computing
    assert alice.get(f"/results/{pid}/heatmap.png").status_code == 404  # nothing to show yet

    png = a_png()
    assert Heatmaps(redis.Redis.from_url(redis_url)).store(pid, png, "tiny-1", "conv", 0.1)
    ready = alice.get(f"/results/{pid}/heatmap", headers=HTMX).get_data(as_text=True)
    assert 'data-heatmap="ready"' in ready and "hx-trigger" not in ready  # polling stops
    assert 'id="heatmap-toggle"' in ready and 'id="heatmap-opacity"' in ready
    assert 'hx-swap-oob="true"' in ready and f'src="/results/{pid}/heatmap.png"' in ready
    layer = alice.get(f"/results/{pid}/heatmap.png")
    assert layer.status_code == 200 and layer.mimetype == "image/png" and layer.data == png
    assert fullres_xrays[0].name not in ready  # ids in URLs, never file names


def test_failed_heatmap_says_why_and_stops_polling(alice, queue, redis_url, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[1]).get_data(as_text=True))
    finish(queue, pid)
    Heatmaps(redis.Redis.from_url(redis_url)).store_failure(pid, "model version gone")
    html = alice.get(f"/results/{pid}/heatmap", headers=HTMX).get_data(as_text=True)
    assert 'data-heatmap="unavailable"' in html and "model version gone" in html
    assert "hx-trigger" not in html


def test_report_has_figures_verdict_slot_and_disclaimer(alice, queue, fullres_xrays):
    pid = card_id(upload(alice, fullres_xrays[0]).get_data(as_text=True))
    finish(queue, pid, label="Normal", probability=0.12)
    html = alice.get(f"/results/{pid}/report").get_data(as_text=True)
    assert "Chest X-ray AI triage report" in html
    for text in ("Normal", "12.0 %", "50.0 %", "tiny-1", "alice", pid):
        assert text in html
    assert "No verdict recorded yet" in html  # a slot for the reader's signature
    assert "Research use only — not a diagnosis" in html and "not where disease is" in html
    assert 'id="print-button"' in html and "heatmap.js" in html
