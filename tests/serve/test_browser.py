"""End to end in headless Chromium: open the page, upload an image, see the predicted class appear."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chromium_page import CHROMIUM, CHROMIUM_ARGS, SKIP_REASON
from infer.helpers import cell_image, write_image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON),
]


def test_upload_shows_class_bars_and_heatmap(live_server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    good = write_image(tmp_path / "cell.png", cell_image(11))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(live_server + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
            assert "test-simplecnn" in page.text_content("#model-info")

            page.set_input_files("#file-input", str(good))
            card = page.wait_for_selector(".result[data-predicted]", timeout=60_000)
            predicted = card.get_attribute("data-predicted")
            assert predicted in ("all", "hem")
            assert card.query_selector(".result-class").text_content() == predicted
            assert len(card.query_selector_all(".bar")) == 2
            assert card.query_selector(".result-name").text_content() == "cell.png"

            page.check("#explain-toggle")
            page.set_input_files("#file-input", str(good))
            page.wait_for_selector(".result:first-child .overlay-toggle:not([hidden])", timeout=60_000)
            first = page.query_selector(".result:first-child")
            assert (
                first.query_selector(".result-image")
                .get_attribute("src")
                .startswith("data:image/png;base64,")
            )
            first.query_selector(".overlay-checkbox").uncheck()  # back to the original upload
            assert first.query_selector(".result-image").get_attribute("src").startswith("blob:")

            page.set_input_files("#file-input", str(bad))
            failed = page.wait_for_selector(".result.failed", timeout=60_000)
            assert "not a supported image" in failed.query_selector(".result-error").text_content()
            page.screenshot(
                path=os.environ.get("LEUKOSCOPE_SCREENSHOT", str(tmp_path / "page.png")), full_page=True
            )
        finally:
            browser.close()
    # the only console error allowed is the browser reporting the deliberate 415 response
    assert all("415" in p for p in problems), problems
