"""The operator page, driven for real: Debian's Chromium (headless, via Playwright) against live uvicorn."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

# Debian ships `chromium`; Ubuntu CI runners have Google Chrome instead (Ubuntu's chromium is a snap stub).
_BROWSERS = ("chromium", "google-chrome", "google-chrome-stable")
CHROMIUM = next(filter(None, map(shutil.which, _BROWSERS)), None)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_page_and_its_assets_are_served_without_any_external_reference(client: TestClient) -> None:
    html = client.get("/")
    script = client.get("/static/app.js")
    style = client.get("/static/style.css")

    assert html.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in html.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    for text in (html.text, script.text, style.text):
        assert "http://" not in text and "https://" not in text


@pytest.mark.parametrize("path", ["/static/index.html.bak", "/static/..%2Fmain.py", "/static/nope.js"])
def test_only_the_pages_own_files_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        # `make test` installs it where it can (scripts/ensure_debian_packages.sh); CI must run these tests.
        reason = "no chromium on PATH, and `make test` could not install it (needs root or sudo, and apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{live_server}/")
    expect(page.locator("#model-name")).to_contain_text("tilescan-tiny tiny0001")
    yield page
    context.close()


@pytest.mark.slow
def test_docs_page_renders_offline(browser: Browser, live_server: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    # Any request leaving the live server would fail the page on a plant network: refuse them all.
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(live_server) else route.abort(),
    )
    page.goto(f"{live_server}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict")).to_be_visible()
    context.close()


def _pixel(page: Page, x: int, y: int) -> list[int]:
    script = (
        "([x, y]) => [...document.getElementById('canvas').getContext('2d').getImageData(x, y, 1, 1).data]"
    )
    return page.evaluate(script, [x, y])


@pytest.mark.slow
def test_dropped_tile_shows_mask_summary_regions_and_downloads_the_mask(
    page: Page, tmp_path: Path, square: np.ndarray, expected_mask: np.ndarray
) -> None:
    photo = tmp_path / "tile.png"
    Image.fromarray(square).save(photo)

    page.set_input_files("#file", str(photo))

    expect(page.locator("#verdict")).to_have_text("Defect found")
    expect(page.locator("#size")).to_have_text("60 x 40 px")
    expect(page.locator("#fraction")).to_have_text("12.500 %")
    expect(page.locator("#regions tbody tr")).to_have_count(1)
    expect(page.locator("#regions tbody tr td").nth(1)).to_have_text("[10, 5, 30, 20]")
    expect(page.locator("#regions tbody tr td").nth(2)).to_have_text("300")
    red, green, _, _ = _pixel(page, 20, 12)  # inside the defect: tinted red
    assert red > 200 and green < 120
    assert _pixel(page, 50, 35)[:3] == [20, 20, 20]  # background: the photo itself

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    mask = np.asarray(Image.open(io.BytesIO(Path(download.path()).read_bytes())))

    assert download.suggested_filename == "tile-mask.png"
    assert np.array_equal(mask, expected_mask * 255)


@pytest.mark.slow
def test_threshold_field_reruns_the_prediction(page: Page, tmp_path: Path, square: np.ndarray) -> None:
    photo = tmp_path / "tile.png"
    Image.fromarray(square).save(photo)
    page.set_input_files("#file", str(photo))
    expect(page.locator("#verdict")).to_have_text("Defect found")

    page.fill("#threshold", "1")
    page.dispatch_event("#threshold", "change")

    expect(page.locator("#used-threshold")).to_have_text("1")
    expect(page.locator("#verdict")).to_have_text("Defect found")  # 255/255 = 1.0 >= 1
    page.fill("#threshold", "0.05")
    page.dispatch_event("#threshold", "change")
    expect(page.locator("#used-threshold")).to_have_text("0.05")
    expect(page.locator("#fraction")).to_have_text("100.000 %")


@pytest.mark.slow
def test_a_bad_file_shows_the_services_message(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("this is not a photo")

    page.set_input_files("#file", str(notes))

    expect(page.locator("#status")).to_have_class("error")
    expect(page.locator("#status")).to_contain_text("the file is not a readable image")
    expect(page.locator("#result")).to_be_hidden()
