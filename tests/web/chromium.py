"""Debian's Chromium (/usr/bin/chromium, apt packages `chromium`, `chromium-driver`) driven by Playwright,
for the browser tests of the web chat page and the staff console. Playwright never downloads its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's sync API), closed with its Playwright on exit.

    Skips the calling test (or fixture) and says why when /usr/bin/chromium or Python Playwright is
    missing. Callers choose the scope: a sync Playwright left running also leaves its event loop running.
    """
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs Python Playwright (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
