"""A real browser for the console tests: Playwright (PyPI) driving the system's Chromium (Debian's `chromium`, which
`make test-services` installs; Playwright's own browser download cannot reach its host). The console tests import
the `browser` and `page` fixtures; `UNIMODEL_TEST_CHROMIUM` names another Chromium binary.

`UNIMODEL_CONSOLE_SCREENSHOTS=<folder>` makes `shot(page, name)` save the page there (docs/console/ is made so)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    given = os.environ.get("UNIMODEL_TEST_CHROMIUM")
    if given:
        return given
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("No Chromium on this machine: `make test-services` installs Debian's chromium (apt-get).")


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture(name="page")
def page_fixture(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)  # a loaded CI machine answers slower than a quiet one
    opened.on("dialog", lambda dialog: dialog.accept())  # the console's "are you sure?" confirmations
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    context.close()
    # a script error is a bug even when the test's clicks happened to work; failed requests the page showed are not
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def shot(page: Page, name: str) -> None:
    """Save a screenshot of the page when UNIMODEL_CONSOLE_SCREENSHOTS names a folder (for the docs)."""
    folder = os.environ.get("UNIMODEL_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
