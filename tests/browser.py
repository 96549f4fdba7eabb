"""Headless Debian Chromium driven by Playwright, for tests that look at pages as a person would."""

from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900, **options):
    """A fresh page in Debian's /usr/bin/chromium (scripts/setup.sh installs it); closed on exit.
    `options` go to Playwright's new_page (e.g. http_credentials)."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not shutil.which(executable):
        pytest.fail("chromium is missing: scripts/setup.sh installs Debian's chromium package.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height}, **options)
        finally:
            browser.close()
