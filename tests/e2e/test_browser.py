"""A clinician's session in a real browser, against the full local stack through nginx + TLS.

Log in, drop two X-rays, watch both results arrive, open the worklist, open a result, log out.
"""

from __future__ import annotations

import pytest

from tests.e2e.browser import browser_page, browser_stack, drop_files, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser test password"


@pytest.fixture
def stack(tmp_path, model_store):
    with browser_stack(tmp_path, model_store.root, {"dr.ada": ("clinician", PASSWORD)}) as s:
        yield s


def test_clinician_session_in_chromium(stack, fullres_xrays, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # a shared 2-core machine: be patient, not flaky

    xrays = [next(p for p in fullres_xrays if p.parent.name == c) for c in ("NORMAL", "PNEUMONIA")]
    base = stack.https_url
    with browser_page() as page:
        log_in(page, base, "dr.ada", PASSWORD)
        expect(page.get_by_role("heading", name="Upload chest X-rays")).to_be_visible()

        drop_files(page, xrays)
        cards = page.locator("#results article[data-card]")
        expect(cards).to_have_count(2)
        done = page.locator('#results article[data-status="done"]')
        expect(done).to_have_count(2, timeout=120_000)  # worker start-up included
        for card, xray in zip(done.all(), reversed(xrays), strict=True):
            expect(card).to_contain_text(xray.name)
            expect(card).to_contain_text("% probability of pneumonia")
            expect(card).to_contain_text("Research use only")
            assert card.get_attribute("hx-trigger") is None  # polling stopped
            assert card.locator(".label").inner_text() in ("Pneumonia", "Normal")
            expect(card.locator(".thumb img")).to_have_js_property("complete", True)

        bad = tmp_path / "notes.txt"
        bad.write_text("not an image")
        drop_files(page, [bad])  # refused at once, inline, with what to do
        refused = page.locator('#results article[data-status="rejected"]')
        expect(refused).to_contain_text("is not a PNG, JPEG or DICOM file")

        page.get_by_role("navigation").get_by_role("link", name="Worklist").click()
        expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
        rows = page.locator("table.worklist tbody tr")
        expect(rows).to_have_count(2)
        page.get_by_label("Result").select_option("Normal")  # htmx swaps the table only
        expect(page).to_have_url(
            f"{base}/worklist?sort=suspicion&show=&status=&day=&label=Normal&uploader="
        )
        page.get_by_label("Result").select_option("")
        expect(rows).to_have_count(2)

        newest = rows.first.get_by_role("link")
        name = newest.inner_text()  # uploaded in parallel: either file may be the newer one
        assert name in {x.name for x in xrays}
        newest.click()
        expect(page.get_by_role("heading", name=f"Result: {name}")).to_be_visible()
        expect(page.get_by_text("Uploaded by")).to_have_count(2)
        expect(page.locator(".details")).to_contain_text("dr.ada")
        image = page.locator("figure.xray img.xray-image")
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0
        page.get_by_role("link", name="How this model was trained and tested").first.click()
        expect(page.get_by_role("heading", name="Model card")).to_be_visible()

        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.goto(base + "/worklist")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        assert page.problems == [], page.problems  # no script errors, no CSP violations
