"""Loopback redirect URIs on any port (RFC 8252 §7.3).

Native apps (and MCP clients) listen on an ephemeral port of the person's own machine, chosen
when they start. A registered ``http://127.0.0.1/cb``, ``http://[::1]/cb`` or
``http://localhost/cb`` therefore matches the same URI with any port; every other redirect
URI is matched exactly, character for character (RFC 9700 §2.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult
from urllib.parse import urlsplit

#: Hosts whose http redirect URIs match on any port.
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")


def _loopback_parts(uri: str) -> SplitResult | None:
    """The parts of an ``http`` loopback URI, or None for anything else."""
    if not uri.startswith("http://"):
        return None
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.lower() not in LOOPBACK_HOSTS or "@" in parts.netloc:
        return None
    return parts


def without_port(uri: str) -> str | None:
    """A loopback URI with its port removed; None when ``uri`` is not a loopback URI."""
    parts = _loopback_parts(uri)
    if parts is None:
        return None
    host = parts.netloc if parts.port is None else parts.netloc[: parts.netloc.rindex(":")]
    return parts._replace(netloc=host.lower()).geturl()


def redirect_uri_matches(uri: str, registered: Iterable[str]) -> bool:
    """True when ``uri`` is registered exactly, or is a loopback URI that differs from a
    registered loopback URI only in its port."""
    registered = list(registered)
    if uri in registered:
        return True
    bare = without_port(uri)
    if bare is None:
        return False
    return any(without_port(candidate) == bare for candidate in registered)


def is_loopback_only(uris: Iterable[str]) -> bool:
    """True when every URI redirects to the person's own machine (the consent page says so)."""
    uris = list(uris)
    return bool(uris) and all(_loopback_parts(uri) is not None for uri in uris)
