"""uauth.core.fetcher: the one outbound fetcher for client-chosen URLs (issue 17 item 6).

A real https server on loopback with a trustme CA stands in for a client's endpoint."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.backchannel import post_logout_token
from uauth.core.clients import RegistrationError
from uauth.core.fetcher import FetchError
from uauth.core.fetcher import SafeFetcher
from uauth.core.fetcher import cache_ttl
from uauth.core.fetcher import is_public_address
from uauth.storage.memory import MemoryStore

DOC = {"redirect_uris": ["https://rp.example.com/cb"]}


@dataclass
class Site:
    url: str
    port: int
    client_context: ssl.SSLContext
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    ca = trustme.CA()
    cert = ca.issue_cert("rp.test", "127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            if self.path == "/doc.json":
                self.answer(200, json.dumps(DOC).encode(), Cache_Control="max-age=60")
            elif self.path == "/nostore.json":
                self.answer(200, b"[1]", Cache_Control="no-store")
            elif self.path == "/redirect":
                self.answer(302, Location="/doc.json")
            elif self.path == "/big":
                self.answer(200, b"[" + b"1," * 50_000 + b"1]")
            elif self.path == "/hang":
                time.sleep(3)
                self.answer(200, b"[]")
            else:
                self.answer(404)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.append("POST " + self.path)
            self.answer(302 if self.path == "/redirect" else 200, Location="/elsewhere")

        def log_message(self, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            return None  # a client that gave up (the timeout test) is expected

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield Site(f"https://127.0.0.1:{port}", port, client_context, hits)
    finally:
        server.shutdown()
        server.server_close()


def fetcher(site: Site, clock: FakeClock, allowed: frozenset[str] = frozenset({"127.0.0.1"}),
            **kwargs: Any) -> SafeFetcher:
    return SafeFetcher(allowed, timeout=kwargs.pop("timeout", 5.0), max_bytes=64 * 1024,
                       clock=clock, context=site.client_context, **kwargs)


def test_an_allow_listed_https_host_is_fetched_and_cached_within_bounds(
        site: Site, clock: FakeClock) -> None:
    f = fetcher(site, clock)
    before = len(site.hits)
    assert f.fetch_json(site.url + "/doc.json") == DOC
    assert f.fetch_json(site.url + "/doc.json") == DOC
    assert len(site.hits) - before == 1, "max-age=60: the second came from the cache"
    clock.advance(61)
    assert f.fetch_json(site.url + "/doc.json") == DOC
    assert len(site.hits) - before == 2, "and expired with it"
    f.fetch_json(site.url + "/nostore.json")
    f.fetch_json(site.url + "/nostore.json")
    assert site.hits.count("/nostore.json") == 2, "no-store is never cached"


def test_cache_control_is_bounded() -> None:
    assert cache_ttl("no-store") == 0 and cache_ttl("max-age=0") == 0
    assert cache_ttl("public, max-age=31536000") == 24 * 3600
    assert cache_ttl(None) == 300


def test_loopback_is_refused_unless_allow_listed(site: Site, clock: FakeClock) -> None:
    before = list(site.hits)
    with pytest.raises(FetchError, match="non-public address"):
        fetcher(site, clock, allowed=frozenset()).fetch_json(site.url + "/doc.json")
    with pytest.raises(FetchError, match="non-public address"):
        fetcher(site, clock, allowed=frozenset()).post_form(
            f"https://localhost:{site.port}/logout", {"logout_token": "x"})
    assert site.hits == before, "refused before connecting"


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1",
                                     "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::"])
def test_internal_addresses_are_refused(clock: FakeClock, address: str) -> None:
    assert not is_public_address(address)
    f = SafeFetcher(frozenset(), clock=clock, resolver=lambda host, port: [address])
    with pytest.raises(FetchError, match="non-public address"):
        f.fetch_json("https://innocent.example/doc.json")


def test_public_addresses_pass_the_address_rule() -> None:
    assert is_public_address("93.184.216.34") and is_public_address("2606:2800:220:1::1")


def test_any_internal_answer_among_several_refuses(clock: FakeClock) -> None:
    f = SafeFetcher(frozenset(), clock=clock,
                    resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(FetchError, match="non-public address"):
        f.fetch_json("https://mixed.example/doc.json")


def test_plain_http_is_refused_unless_allow_listed(clock: FakeClock) -> None:
    for url in ("http://rp.example.com/x", "ftp://rp.example.com/x", "https://user:pw@rp/x",
                "/relative"):
        with pytest.raises(FetchError):
            SafeFetcher(frozenset(), clock=clock).fetch_json(url)


def test_redirects_are_never_followed(site: Site, clock: FakeClock) -> None:
    f = fetcher(site, clock)
    before = site.hits.count("/doc.json")
    with pytest.raises(FetchError, match="HTTP 302"):
        f.fetch_json(site.url + "/redirect")
    assert site.hits.count("/doc.json") == before
    assert f.post_form(site.url + "/redirect", {"logout_token": "t"}) == 302
    assert "POST /elsewhere" not in site.hits


def test_size_cap_and_timeout(site: Site, clock: FakeClock) -> None:
    with pytest.raises(FetchError, match="larger than"):
        fetcher(site, clock).fetch_json(site.url + "/big")
    started = time.monotonic()
    with pytest.raises(FetchError):
        fetcher(site, clock, timeout=0.5).fetch_json(site.url + "/hang")
    assert time.monotonic() - started < 2


def test_the_connection_is_pinned_to_the_checked_address(site: Site, clock: FakeClock) -> None:
    """The resolver is asked once and its answer used; TLS still verifies the host name."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    f = fetcher(site, clock, allowed=frozenset({"rp.test"}), resolver=resolve)
    assert f.fetch_json(f"https://rp.test:{site.port}/doc.json") == DOC
    assert asked == ["rp.test"]
    wrong_name = fetcher(site, clock, allowed=frozenset({"other.test"}), resolver=resolve)
    with pytest.raises(FetchError):
        wrong_name.fetch_json(f"https://other.test:{site.port}/doc.json")  # cert is for rp.test


def test_backchannel_and_sector_uris_follow_the_fetch_rules(tmp_path: Path,
                                                            clock: FakeClock) -> None:
    """The reproduction: http on loopback and internal https addresses were accepted."""
    d = Driver.of(make_app(tmp_path, MemoryStore(clock=clock), clock))
    with pytest.raises(RegistrationError, match="must use https"):
        d.client(backchannel_logout_uri="http://127.0.0.1:9/logout")
    with pytest.raises(RegistrationError, match="non-public address"):
        d.client(redirect_uris=["https://a.example.com/cb"],
                 sector_identifier_uri="https://127.0.0.1:9/sector.json")
    outcome = post_logout_token(SafeFetcher(), "https://10.0.0.1/logout", "token")
    assert isinstance(outcome, str) and "non-public address" in outcome
    allowed = Driver.of(make_app(tmp_path / "b", MemoryStore(clock=clock), clock,
                                 UAUTH_FETCH_ALLOWED_HOSTS="127.0.0.1"))
    client, _ = allowed.client(backchannel_logout_uri="http://127.0.0.1:9/logout")
    assert client.backchannel_logout_uri == "http://127.0.0.1:9/logout"
