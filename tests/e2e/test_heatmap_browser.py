"""A clinician looks at where the model looked, records a read and prints the report: Chromium
through nginx.

The worker serves a tiny CNN for which a bright corner square means "Pneumonia"
(devstack.tiny_model.build_planted_model), so what the clinician should see is known: a hot
colour over that corner of the X-ray, nowhere else.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from devstack.stack import LocalStack
from devstack.tiny_model import planted_square
from tests.e2e.browser import browser_page, chromium_path, drop_files, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser test password"


@pytest.fixture
def stack(tmp_path, planted_store):
    if chromium_path() is None:
        pytest.skip("no chromium: run `make system` (Debian: apt-get install chromium)")
    # Keras serving: exporting to OpenVINO takes minutes on a busy 2-core host, and the heatmap
    # reads the version's model.keras whatever the serving runtime.
    with LocalStack(
        tmp_path, model_store=planted_store.root, workers=1,
        worker_env={"INFERENCE_BACKEND": "keras", "WORKER_NICE": "0"},
    ) as s:  # fmt: skip
        s.create_user("dr.ada", "clinician", PASSWORD)
        yield s


def red_excess(png: bytes) -> dict[str, float]:
    """Mean (red - blue) per quadrant of a screenshot: grey X-ray ~0, the hot colour high."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    h, w = rgb.shape[0] // 2, rgb.shape[1] // 2
    excess = rgb[..., 0] - rgb[..., 2]
    quads = {"tl": (0, 0), "tr": (0, 1), "bl": (1, 0), "br": (1, 1)}
    return {
        k: excess[r * h : (r + 1) * h, c * w : (c + 1) * w].mean() for k, (r, c) in quads.items()
    }


def test_clinician_toggles_the_heatmap_and_prints_the_report(stack, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a shared 2-core machine: be patient, not flaky
    xray = tmp_path / "chest-square.png"
    square = planted_square(256, "tl", np.random.default_rng(1))
    Image.fromarray(square.astype(np.uint8)).resize((320, 256)).save(xray)

    base = stack.https_url
    with browser_page() as page:
        log_in(page, base, "dr.ada", PASSWORD)
        drop_files(page, [xray])
        done = page.locator('#results article[data-status="done"]')
        expect(done).to_have_count(1, timeout=300_000)  # worker start-up included
        done.get_by_role("link", name=xray.name).click()
        expect(page.get_by_role("heading", name=f"Result: {xray.name}")).to_be_visible()

        panel = page.locator("#heatmap")
        expect(panel).to_contain_text("not where disease is")  # the caveat, from the start
        expect(panel).to_have_attribute("data-heatmap", "ready", timeout=180_000)
        assert "/results/" in page.locator("#heatmap-layer").get_attribute("src")
        assert xray.name not in page.locator("#heatmap-layer").get_attribute("src")
        layer = page.locator("#heatmap-layer")
        expect(layer).to_be_hidden()  # the X-ray is read first; the map is opt-in
        stack_box = page.locator(".xray-stack")

        toggle = page.get_by_label("Show the heatmap over the X-ray")
        # caret="initial": Playwright's default injects a <style> to hide the caret, which the
        # CSP blocks and Chromium reports as a console error (page.problems), a little later.
        plain = red_excess(stack_box.screenshot(caret="initial"))
        toggle.check()
        expect(layer).to_be_visible()
        expect(layer).to_have_js_property("complete", True)
        assert layer.evaluate("img => img.naturalWidth") == 320  # the upload's own size
        assert layer.bounding_box() == page.locator(".xray-image").bounding_box()  # aligned

        opacity = page.get_by_label("Heatmap opacity")
        opacity.fill("100")
        expect(page.locator("#heatmap-opacity-value")).to_have_text("100 %")
        expect(layer).to_have_css("opacity", "1")
        seen = red_excess(stack_box.screenshot(caret="initial"))
        assert seen["tl"] > 15, seen  # the square's corner glows red
        assert max(seen["tr"], seen["bl"], seen["br"]) < 5, seen  # the rest stays grey
        assert max(plain.values()) < 10, plain  # and none of it was there before

        opacity.fill("30")
        expect(layer).to_have_css("opacity", "0.3")
        toggle.uncheck()
        expect(layer).to_be_hidden()

        page.get_by_label("Agree with the model (Pneumonia)").check()  # the reader's verdict
        page.get_by_role("button", name="Record my read").click()
        expect(page.locator("#verdict")).to_contain_text("The reader agrees with the model")

        page.get_by_role("link", name="Print report").click()
        expect(page.get_by_role("heading", name="Chest X-ray AI triage report")).to_be_visible()
        report = page.locator("article.report")
        expect(report.locator("#heatmap")).to_have_attribute(
            "data-heatmap", "ready", timeout=120_000
        )
        page.emulate_media(media="print")
        expect(page.locator("header.topbar")).to_be_hidden()  # no navigation on paper
        expect(page.get_by_role("button", name="Print")).to_be_hidden()
        expect(report.locator("#heatmap-layer")).to_be_visible()  # the map is printed
        expect(report.locator(".report-figures")).to_contain_text("Pneumonia")
        expect(report.locator(".report-figures")).to_contain_text("planted-1")
        verdict = report.locator("#report-verdict")
        expect(verdict).to_contain_text("Pneumonia (agrees with the model)")
        expect(verdict).to_contain_text("read by dr.ada")
        expect(report).to_contain_text("not where disease is")
        expect(report).to_contain_text("Research use only — not a diagnosis")
        expect(report).to_contain_text("dr.ada")
        assert page.problems == [], page.problems  # no script errors, no CSP violations
