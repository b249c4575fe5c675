"""Debian's Chromium, driven by Playwright: the provider's pages in a real browser.

Playwright's Python package brings only its driver; the browser is the system's
``/usr/bin/chromium`` (``apt-get install chromium``), never a download. The flags keep Chromium
from reaching for the network (this machine's is closed) and let it run as root in CI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_required() -> bool:
    return os.environ.get("UAUTH_REQUIRE_BROWSER") == "1"


def launch(playwright: Any) -> Any:
    """Start headless Chromium; raises FileNotFoundError when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        raise FileNotFoundError(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)


def overflows(page: Any) -> bool:
    """True when the page scrolls sideways (wider than the viewport)."""
    return bool(page.evaluate(
        "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"))
