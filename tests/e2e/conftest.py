"""Browser tests: Debian's Chromium driven by Playwright against a live Django server."""

import os
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The README's screenshots are refreshed by `make screenshots`; a plain test run writes its
# screenshots to a temporary folder so that it never changes the checkout.
SCREENSHOTS = Path(
    os.environ.get("PICKWISE_SCREENSHOTS") or tempfile.mkdtemp(prefix="pickwise-screens-")
)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}, which is missing")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code, so Django may allow them while
    # the browser is up (one per module, so the rest of the suite keeps Django's check).
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def new_page(browser):
    """Pages in fresh contexts (own cookies and localStorage), closed after the test."""
    contexts = []

    def make(*, width: int = 1280, height: int = 860, **options):
        """`options` go to the browser context: has_touch, is_mobile, device_scale_factor."""
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    # A request the page sent just before closing may still be running in the live server;
    # let it finish before the test database is flushed under it.
    time.sleep(0.3)
