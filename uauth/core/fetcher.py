"""The one way uauth makes an outbound HTTP request to an address a client chose.

Back-channel logout endpoints and sector identifier documents are URLs a client registered; the
provider then calls them from inside the network it runs in. Without care that is a server-side
request forgery: ``https://10.0.0.5/admin``, a host name that resolves to 127.0.0.1, or a
redirect to either. :class:`SafeFetcher` therefore

- speaks https only; plain http only to a host the operator allow-listed;
- resolves the host itself and refuses loopback, private, link-local, multicast, reserved,
  unspecified and other non-global addresses, unless the host is allow-listed
  (``UAUTH_FETCH_ALLOWED_HOSTS``);
- connects to the address it checked (the TLS certificate is still verified against the host
  name), so a second DNS answer cannot swap in another address (DNS rebinding);
- never follows a redirect, reads at most ``max_bytes``, and gives up after ``timeout`` seconds
  for the whole exchange;
- keeps JSON documents in a small cache for as long as their ``Cache-Control`` says, within
  bounds.

No Flask here: callers pass the settings in (see :func:`from_config`).
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

from . import jsondepth
from .settings import Settings

#: ``(host, port) -> addresses`` (IP literals); injected in tests.
Resolver = Callable[[str, int], list[str]]

#: Cache bounds for :meth:`SafeFetcher.fetch_json`, in seconds.
MIN_CACHE_TTL = 0
MAX_CACHE_TTL = 24 * 3600
#: Used when a document says nothing about caching.
DEFAULT_CACHE_TTL = 300
#: Documents kept at most (least recently stored goes first).
CACHE_ENTRIES = 256

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class FetchError(Exception):
    """The fetch was refused or failed; the message is safe to log and show an operator."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, via the system resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and other
    non-global addresses (IPv4-mapped IPv6 addresses are judged as the IPv4 they carry)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local
                                 or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An https connection to ``address`` that verifies the certificate for ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    """A plain connection to ``address`` (allow-listed hosts only)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class SafeFetcher:
    """Outbound requests to client-chosen URLs (see the module docstring for the rules).

    :param allowed_hosts: host names (or IP literals) exempt from the address rule, which
        may also use plain http: receivers on loopback in development, internal services the
        operator trusts. Compared case-insensitively.
    :param timeout: seconds for the whole exchange, connection included.
    :param max_bytes: largest response body read; a longer one is a :class:`FetchError`.
    :param clock: time source for the JSON cache.
    :param context: TLS settings; the system's trust store by default.
    :param resolver: host name resolution; the system resolver by default.
    """

    def __init__(self, allowed_hosts: Iterable[str] = frozenset(), *, timeout: float = 10.0,
                 max_bytes: int = 64 * 1024, clock: Callable[[], float] = time.time,
                 context: ssl.SSLContext | None = None,
                 resolver: Resolver = system_resolver) -> None:
        self.allowed_hosts = frozenset(host.lower().strip("[]") for host in allowed_hosts)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._clock = clock
        self._context = context or ssl.create_default_context()
        self._resolve = resolver
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # --- public API ---------------------------------------------------------------------------

    def fetch_json(self, url: str) -> Any:
        """GET a JSON document (cached as its ``Cache-Control`` allows, within bounds)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and cached[0] > now:
                return cached[1]
        response = self.request("GET", url, headers={"Accept": "application/json"})
        if not 200 <= response.status < 300:
            raise FetchError(f"{url} answered HTTP {response.status}")
        try:
            document = jsondepth.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise FetchError(f"{url} did not return JSON") from None
        ttl = cache_ttl(response.headers.get("cache-control"))
        if ttl > 0:
            with self._lock:
                self._cache[url] = (now + ttl, document)
                self._cache.move_to_end(url)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return document

    def post_form(self, url: str, fields: Mapping[str, str]) -> int:
        """POST a form; the HTTP status (a redirect is returned as its 3xx, never followed)."""
        body = urlencode(fields).encode("ascii")
        return self.request("POST", url, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"}).status

    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """One request under the rules; raises :class:`FetchError` when refused or failed."""
        deadline = time.monotonic() + self.timeout
        host, port, scheme, target = self._target(url)
        address = self._address(host, port)
        remaining = max(0.001, deadline - time.monotonic())
        connection = (_PinnedHTTPS(host, port, address, remaining, self._context)
                      if scheme == "https" else _PinnedHTTP(host, port, address, remaining))
        try:
            connection.request(method, target, body=body, headers={
                "User-Agent": "uauth", "Connection": "close", **(headers or {})})
            answer = connection.getresponse()
            data = self._read(answer, deadline, url)
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"cannot reach {url}: {type(exc).__name__}") from None
        finally:
            connection.close()

    # --- the rules ----------------------------------------------------------------------------

    def _target(self, url: str) -> tuple[str, int, str, str]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise FetchError(f"{url!r} is not a valid URL") from None
        host = (parts.hostname or "").lower()
        if not host or parts.username or parts.password:
            raise FetchError(f"{url!r} must be an absolute URL without credentials")
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and host in self.allowed_hosts):
            raise FetchError(f"{url!r} must use https (plain http only for an allow-listed host)")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return host, port or (443 if scheme == "https" else 80), scheme, target

    def _address(self, host: str, port: int) -> str:
        """The address to connect to: resolved once, checked, then used (pinned)."""
        addresses = self._resolve(host, port)
        if not addresses:
            raise FetchError(f"{host} has no address")
        if host in self.allowed_hosts:
            return addresses[0]
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            raise FetchError(f"{host} resolves to a non-public address ({refused[0]}); "
                             "allow-list the host in UAUTH_FETCH_ALLOWED_HOSTS if intended")
        return addresses[0]

    def _read(self, answer: http.client.HTTPResponse, deadline: float, url: str) -> bytes:
        length = answer.getheader("Content-Length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"{url} took longer than {self.timeout} s")
            chunk = answer.read1(16 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
            chunks.append(chunk)


def cache_ttl(header: str | None) -> float:
    """Seconds a response may be reused: ``no-store`` or ``no-cache`` mean none, a
    ``max-age`` is kept within bounds, and silence means :data:`DEFAULT_CACHE_TTL`."""
    if header is None:
        return DEFAULT_CACHE_TTL
    lowered = header.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    match = _MAX_AGE.search(header)
    if match is None:
        return DEFAULT_CACHE_TTL
    return float(min(MAX_CACHE_TTL, max(MIN_CACHE_TTL, int(match.group(1)))))


def from_settings(settings: Settings, *, timeout: float, max_bytes: int,
                  clock: Callable[[], float] = time.time) -> SafeFetcher:
    """A fetcher with the operator's allow-list (``UAUTH_FETCH_ALLOWED_HOSTS``)."""
    return SafeFetcher(frozenset(settings.fetch_allowed_hosts), timeout=timeout,
                       max_bytes=max_bytes, clock=clock)

