"""Debian's Chromium, driven by Playwright: the provider's pages in a real browser.

Playwright's Python package brings only its driver; the browser is the system's
``/usr/bin/chromium`` (``apt-get install chromium``), never a download. The flags keep Chromium
from reaching for the network (this machine's is closed) and let it run as root in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 860}}


class BrowserUnavailable(Exception):
    """Playwright or Chromium is missing or would not start; the message says which."""


def browser_required() -> bool:
    return os.environ.get("UAUTH_REQUIRE_BROWSER") == "1"


def start() -> tuple[Any, Any]:
    """Playwright and a headless Chromium it drives: ``(playwright, browser)``."""
    try:
        from playwright.sync_api import Error
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(f"the playwright package is missing ({exc})") from None
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserUnavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS,
                                             timeout=60_000)
    except Error as exc:
        playwright.stop()
        raise BrowserUnavailable(f"{CHROMIUM} did not start ({exc})") from None
    return playwright, browser


def overflows(page: Any) -> bool:
    """True when the page scrolls sideways (wider than the viewport)."""
    return bool(page.evaluate(
        "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"))


def squashed_buttons(page: Any) -> list[str]:
    """Buttons squeezed out of shape (taller than three lines of text, or narrower than 4em)."""
    found: list[str] = page.evaluate("""() => [...document.querySelectorAll('button, .button')]
        .filter(b => b.offsetParent !== null)
        .filter(b => { const r = b.getBoundingClientRect();
                       const em = parseFloat(getComputedStyle(b).fontSize);
                       return r.height > 6 * em || r.width < 4 * em; })
        .map(b => b.textContent.trim())""")
    return found


@contextmanager
def new_page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page in a context of its own (``options`` as ``new_context`` takes them), closed after;
    15 s to find an element: a loaded CI machine is slow, a missing one still fails."""
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def add_virtual_authenticator(page: Any) -> tuple[Any, str]:
    """A virtual platform authenticator for ``page`` (ctap2, internal transport, resident keys,
    user verification), so a test can make and use passkeys: its CDP session and its ID."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return cdp, str(added["authenticatorId"])
