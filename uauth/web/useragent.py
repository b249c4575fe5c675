"""Browser and system of a User-Agent string, for people: "Chrome on macOS".

Parsed with ua-parser (the maintained port of the ua-parser/uap-core rules); the sessions page
shows this instead of the raw string, which stays in storage as it was sent.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

UNKNOWN = "Unknown browser"
#: uap-core's system names, as people know them today.
_SYSTEMS = {"Mac OS X": "macOS", "Mac OS": "macOS"}
#: uap-core's browser families with a plainer name.
_BROWSERS = {"Mobile Safari": "Safari", "Chrome Mobile": "Chrome", "Firefox Mobile": "Firefox",
             "Chrome Mobile iOS": "Chrome", "Firefox iOS": "Firefox", "Edge Mobile": "Edge",
             "HeadlessChrome": "Headless Chrome"}


@lru_cache(maxsize=512)
def describe(user_agent: str) -> str:
    """``"Firefox on Windows"``, ``"Safari on iOS"``; the parts it knows, or "Unknown browser"."""
    if not user_agent.strip():
        return UNKNOWN
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    system = result.os.family if result.os else "Other"
    browser = _BROWSERS.get(browser, browser)
    system = _SYSTEMS.get(system, system)
    if browser != "Other" and system != "Other":
        return f"{browser} on {system}"
    if browser != "Other":
        return browser
    return f"A browser on {system}" if system != "Other" else UNKNOWN
