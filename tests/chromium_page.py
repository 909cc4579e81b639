"""Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright, never a download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("LEUKOSCOPE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_REASON = f"{CHROMIUM} is absent (Debian's chromium package; `make browser` installs it)"


def sync_api():
    """Playwright's sync API, or a skip when the browser or the package is missing."""
    if not CHROMIUM.exists():
        pytest.skip(SKIP_REASON)
    return pytest.importorskip("playwright.sync_api", reason="playwright's Python API is not installed")


def open_file(page_file: Path) -> tuple[list[str], list[bool], list[str], str]:
    """(console errors, per-image loaded flags, requested URLs, title) of a local HTML file."""
    api = sync_api()
    problems: list[str] = []
    requests: list[str] = []
    with api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        loaded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        title = page.title()
        browser.close()
    return problems, loaded, requests, title
