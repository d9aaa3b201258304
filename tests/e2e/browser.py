"""Driving the system Chromium with Playwright (never `playwright install`: no downloads).

Shared by the browser test and ``python -m tests.e2e.screenshots``.
"""

from __future__ import annotations

import base64
import contextlib
import mimetypes
import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's chromium (installed by scripts/ensure_system_packages.sh), or CHROMIUM."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextlib.contextmanager
def browser_stack(tmp_path: Path, model_store: Path, users: dict[str, tuple[str, str]]):
    """The whole stack with accounts made and a worker serving, for a browser test.

    ``users`` maps a name to (role, password). Skips (with what to install) without Chromium.
    """
    import pytest

    from devstack.stack import LocalStack

    if chromium_path() is None:
        pytest.skip("no chromium: run `make system` (Debian: apt-get install chromium)")
    with LocalStack(tmp_path, model_store=model_store, workers=1) as stack:
        for name, (role, password) in users.items():
            stack.create_user(name, role, password)
        stack.wait_ready(timeout=400)  # the worker compiles the model once: slow on a busy host
        yield stack


@contextlib.contextmanager
def browser_page(viewport=(1280, 860), scale: float = 1):
    """A headless Chromium page that accepts the stack's self-signed certificate."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no chromium: run `make system` (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(
                ignore_https_errors=True,
                viewport={"width": viewport[0], "height": viewport[1]},
                device_scale_factor=scale,
            )
            page = context.new_page()
            page.problems = []  # console errors (CSP violations land here) and page errors
            page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
            page.on("pageerror", lambda e: page.problems.append(str(e)))
            yield page
        finally:
            browser.close()


def log_in(page, base_url: str, user: str, password: str) -> None:
    """Open the site (which redirects to the login form) and log in."""
    page.goto(base_url + "/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def drop_files(page, paths: list[Path], target: str = "#dropzone") -> None:
    """Drop files on the drop zone the way a desktop drag does (a DataTransfer with Files)."""
    files = [
        [p.name, base64.b64encode(p.read_bytes()).decode(), mimetypes.guess_type(p.name)[0] or ""]
        for p in paths
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, b64, type] of files) {
                const bin = atob(b64);
                const bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                dt.items.add(new File([bytes], name, { type }));
            }
            return dt;
        }""",
        files,
    )
    page.dispatch_event(target, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})
