"""The clinician's triage in a real browser, through nginx + TLS against the full local stack.

Three X-rays are read by the model; the clinician sees how many are unread in the navigation,
works the worklist most suspicious first by keyboard, records their own read on a result,
finds it in the worklist, filters the worklist, and an admin finds the verdict in the audit log.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from devstack.api import AUTH
from tests.e2e.browser import browser_page, browser_stack, drop_files, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "triage test password"


@pytest.fixture
def stack(tmp_path, model_store):
    users = {"dr.ada": ("clinician", PASSWORD), "root": ("admin", PASSWORD)}
    with browser_stack(tmp_path, model_store.root, users) as s:
        yield s


def test_triage_worklist_and_readers_verdict_in_chromium(stack, fullres_xrays):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    xrays = [next(p for p in fullres_xrays if p.parent.name == c) for c in ("NORMAL", "PNEUMONIA")]
    xrays.append(next(p for p in fullres_xrays if p.parent.name == "PNEUMONIA" and p not in xrays))
    base = stack.https_url
    with browser_page() as page:
        log_in(page, base, "dr.ada", PASSWORD)
        drop_files(page, xrays)
        expect(page.locator('#results article[data-status="done"]')).to_have_count(
            3, timeout=120_000
        )

        nav = page.get_by_role("navigation", name="Main")
        page.reload()  # the count is part of each full page
        expect(nav.locator(".nav-count")).to_have_text("3 unread")
        nav.get_by_role("link", name="Worklist").click()
        expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
        rows = page.locator("table.worklist tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator(".worklist-summary")).to_contain_text("3 unread")

        # Most suspicious first, and the second-look band is where the model is least sure.
        shown = [float(t.rstrip(" %")) for t in rows.locator("td.num").all_inner_texts()]
        assert shown == sorted(shown, reverse=True), shown
        names = rows.locator("a.row-anchor").all_inner_texts()
        by_name = {
            p["filename"]: p
            for p in requests.get(
                stack.api_url + "/v1/predictions", headers=AUTH, timeout=10
            ).json()["items"]
        }
        for i, name in enumerate(names):
            p = by_name[name]
            near = abs(p["probability"] - p["threshold"]) <= 0.1
            expect(rows.nth(i).locator(".second-look-badge")).to_have_count(1 if near else 0)
        expect(rows.locator(".verdict-unread")).to_have_count(3)

        # The keyboard path: j, j, k selects the first row again; Enter opens it.
        page.locator("h1").click()
        for key in ("j", "j", "k"):
            page.keyboard.press(key)
        current = re.compile(r"\bis-current\b")
        expect(rows.nth(0)).to_have_class(current)
        expect(rows.nth(1)).not_to_have_class(current)
        page.keyboard.press("ArrowDown")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
        page.keyboard.press("ArrowUp")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=f"Result: {names[0]}")).to_be_visible()

        # The reader's verdict: disagree with the model, with a note; shown in place.
        model_label = by_name[names[0]]["label"]
        own = "Normal" if model_label == "Pneumonia" else "Pneumonia"
        panel = page.locator("section#verdict")
        expect(panel).to_contain_text(f"Agree with the model ({model_label})")
        panel.get_by_label(own, exact=True).check()
        panel.get_by_label("Note (optional)").fill("Second reader: no consolidation")
        url = page.url
        panel.get_by_role("button", name="Record my read").click()
        expect(panel.locator(".verdict-current")).to_contain_text(
            f"The reader reads {own}; the model said {model_label}."
        )
        expect(panel).to_contain_text("Read by dr.ada")
        expect(panel).to_contain_text("Second reader: no consolidation")
        expect(panel.get_by_label(own, exact=True)).to_be_checked()
        assert page.url == url  # swapped in place by htmx, no reload

        # Back on the worklist: one fewer unread, the verdict in its row, filters.
        nav.get_by_role("link", name="Worklist").click()
        expect(nav.locator(".nav-count")).to_have_text("2 unread")
        expect(rows.nth(0).locator(".verdict-disagree")).to_have_text(f"Reader: {own}")
        page.get_by_label("Show").select_option("Unread")
        expect(rows).to_have_count(2)
        page.get_by_label("Show").select_option("Read")
        expect(rows).to_have_count(1)
        expect(rows.first.get_by_role("link")).to_have_text(names[0])
        page.get_by_label("Show").select_option("")
        page.get_by_label("Status").select_option("failed")
        expect(page.get_by_text("No results match these filters.")).to_be_visible()
        page.get_by_label("Status").select_option("done")
        expect(rows).to_have_count(3)
        page.get_by_label("Day").fill("2001-01-01")
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_text("No results match these filters.")).to_be_visible()
        page.get_by_label("Day").fill(datetime.now(UTC).date().isoformat())
        page.get_by_role("button", name="Apply").click()
        expect(rows).to_have_count(3)
        page.get_by_label("Order").select_option("newest")
        newest = max(by_name.values(), key=lambda p: p["created_at"])["filename"]
        expect(rows.first.get_by_role("link")).to_have_text(newest)
        assert page.problems == [], page.problems

        page.get_by_role("button", name="Log out").click()
        log_in(page, base, "root", PASSWORD)
        page.get_by_role("link", name="Audit log").click()
        page.get_by_label("Action").select_option("verdict")
        page.get_by_role("button", name="Apply").click()
        entry = page.locator("table.audit tbody tr")
        expect(entry).to_have_count(1)
        expect(entry).to_contain_text("dr.ada")
        expect(entry).to_contain_text(own)
