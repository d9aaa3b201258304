"""Real screenshots of the UI (``make screenshots``), taken in Chromium through nginx + TLS.

    python -m tests.e2e.screenshots [--out screenshots] [--model-store var/models]

The model is the one in ``--model-store`` (default: MODEL_STORE, else var/models when it has a
trained model); without one, a tiny untrained test model serves, and the pages say so (its card
is named "tiny test model"). Run it again after `make model` for screenshots of the real model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from devstack.settings import FULLRES, ROOT
from devstack.stack import LocalStack
from devstack.tiny_model import build_tiny_model
from tests.e2e.browser import browser_page, drop_files, log_in

PASSWORD = "screenshot password"


def model_store(explicit: str | None, tmp: Path) -> Path:
    """The store to serve: the given one, var/models if trained, else a tiny test model."""
    import os

    for candidate in (explicit, os.environ.get("MODEL_STORE"), str(ROOT / "var" / "models")):
        if candidate and (Path(candidate) / "current").is_file():
            print(f"model store: {candidate}")
            return Path(candidate)
    from model.store import LocalStore

    print("no trained model found: serving the tiny test model (run `make model` first for real)")
    store = LocalStore(tmp / "models")
    store.publish(build_tiny_model(tmp / "tiny" / "tiny-1"), "tiny-1")
    return tmp / "models"


def pick_xrays() -> list[Path]:
    normal = sorted((FULLRES / "NORMAL").glob("*.jpeg"))
    pneumonia = sorted((FULLRES / "PNEUMONIA").glob("*.jpeg"))
    if not normal or not pneumonia:
        sys.exit(f"no X-rays in {FULLRES}: put the shared data beside the project")
    return [normal[0], pneumonia[0], normal[1], pneumonia[1]]


def shoot(out: Path, store: Path, tmp: Path) -> list[Path]:
    """Drive a session and save one PNG per page."""
    xrays = pick_xrays()
    shots: list[Path] = []
    with LocalStack(tmp / "stack", model_store=store, workers=1) as stack:
        stack.create_user("dr.ada", "clinician", PASSWORD)
        stack.create_user("admin", "admin", PASSWORD)
        stack.wait_ready()
        base = stack.https_url

        def save(page, name, full_page=False):
            path = out / name
            page.screenshot(path=str(path), full_page=full_page)
            shots.append(path)

        with browser_page() as page:
            page.goto(base + "/login")
            save(page, "01-login.png")

            log_in(page, base, "admin", PASSWORD)
            drop_files(page, xrays[2:])
            page.locator('#results article[data-status="done"]').nth(1).wait_for(timeout=120_000)
            page.get_by_role("button", name="Log out").click()

            log_in(page, base, "dr.ada", PASSWORD)
            bad = tmp / "referral-letter.txt"
            bad.write_text("not an image")
            drop_files(page, [*xrays[:2], bad])
            page.locator('#results article[data-status="done"]').nth(1).wait_for(timeout=120_000)
            page.wait_for_load_state("networkidle")
            save(page, "02-upload-results.png", full_page=True)

            page.get_by_role("navigation").get_by_role("link", name="Worklist").click()
            page.locator("table.worklist").wait_for()
            page.wait_for_load_state("networkidle")
            save(page, "03-worklist.png", full_page=True)

            page.locator("table.worklist tbody tr").first.get_by_role("link").click()
            page.locator("figure.xray img.xray-image").wait_for()
            page.wait_for_load_state("networkidle")
            save(page, "04-result.png", full_page=True)

            # Where the model looked: the Grad-CAM layer switched on (issue 18).
            page.get_by_label("Show the heatmap over the X-ray").check(timeout=120_000)
            page.locator("#heatmap-layer").wait_for(state="visible")
            page.wait_for_load_state("networkidle")
            save(page, "08-heatmap.png", full_page=True)

            # The printable report, as the printer sees it.
            page.get_by_role("link", name="Print report").click()
            page.locator("#heatmap[data-heatmap=ready]").wait_for(timeout=120_000)
            page.wait_for_load_state("networkidle")
            page.emulate_media(media="print")
            save(page, "09-print-report.png", full_page=True)
            page.emulate_media(media="screen")
            page.go_back()  # back on the result page
            page.locator("section#verdict").wait_for()

            verdict = page.locator("section#verdict")  # the reader records their own read
            verdict.get_by_label("Agree with the model", exact=False).check()
            verdict.get_by_label("Note (optional)").fill("Agree: right lower lobe consolidation")
            verdict.get_by_role("button", name="Record my read").click()
            verdict.locator(".verdict-current").wait_for()
            save(page, "10-result-verdict.png", full_page=True)

            page.get_by_role("navigation").get_by_role("link", name="Worklist").click()
            page.locator("table.worklist").wait_for()
            page.locator("h1").click()
            page.keyboard.press("j")  # the keyboard path: the second row selected
            page.keyboard.press("j")
            page.wait_for_load_state("networkidle")
            save(page, "11-worklist-triage.png", full_page=True)

            page.get_by_role("navigation").get_by_role("link", name="Model card").click()
            page.wait_for_load_state("networkidle")
            save(page, "05-model-card.png", full_page=True)

            page.get_by_role("button", name="Log out").click()
            log_in(page, base, "admin", PASSWORD)
            page.get_by_role("link", name="Audit log").click()
            page.wait_for_load_state("networkidle")
            save(page, "06-audit-log.png")
            problems = list(page.problems)

        with browser_page(viewport=(820, 1180)) as tablet:  # an iPad Air held upright
            log_in(tablet, base, "dr.ada", PASSWORD)
            tablet.goto(base + "/worklist")
            tablet.wait_for_load_state("networkidle")
            save(tablet, "07-tablet-worklist.png")
    if problems:
        sys.exit(f"the browser reported errors: {problems}")
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--model-store", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        store = model_store(args.model_store, Path(tmp))
        for path in shoot(out, store, Path(tmp)):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
