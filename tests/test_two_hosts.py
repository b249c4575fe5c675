"""The deployment guide's recipe for several hosts, on loopback: two ``uauth serve`` "hosts" with
their own instance folders (sharing only ``secret_key``) on one Redis, behind a round-robin load
balancer that sends every request to the other host. A login, consent and token exchange that
hop between the hosts work, and ``uauth check`` passes through the balancer."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from tests.browser import Browser
from tests.browser import location
from tests.conftest import unique_prefix
from tests.live_server import LiveServer
from tests.redis_server import free_port
from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.users import StoreUsers
from uauth.storage.redis import RedisStore

pytestmark = pytest.mark.slow
REDIRECT = "http://127.0.0.1:8399/cb"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


#: The address the balancer says the client has (a documentation address, RFC 5737).
CLIENT_ADDRESS = "198.51.100.7"


class LoadBalancer(ThreadingHTTPServer):
    """Round robin per request, like a proxy with no stickiness; sets X-Forwarded-*."""

    def __init__(self, port: int, backends: list[str]) -> None:
        super().__init__(("127.0.0.1", port), _Forward)
        self.next_backend = itertools.cycle(backends).__next__
        self.lock = threading.Lock()


class _Forward(BaseHTTPRequestHandler):
    server: LoadBalancer

    def forward(self) -> None:
        with self.server.lock:
            backend = self.server.next_backend()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update({"Host": str(self.headers["Host"]), "X-Forwarded-Proto": "http",
                        "X-Forwarded-For": CLIENT_ADDRESS,
                        "X-Forwarded-Host": str(self.headers["Host"])})
        answer = requests.request(self.command, backend + self.path, headers=headers, data=body,
                                  allow_redirects=False, timeout=15)
        self.send_response(answer.status_code)
        for name, value in answer.raw.headers.items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = forward

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def hosts_behind_a_balancer(tmp_path: Path, storage: str, env: dict[str, str] | None = None
                            ) -> Iterator[tuple[str, list[LiveServer]]]:
    """The guide's recipe on ``storage``: two hosts, each with its own instance folder, behind
    the balancer, whose address is the issuer. Yields the issuer and the hosts."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {"UAUTH_ISSUER": issuer, "UAUTH_TRUSTED_PROXIES": "1", **(env or {})}
    hosts = [LiveServer(tmp_path / f"host-{name}" / "instance", storage=storage, env=env)
             for name in ("a", "b")]
    assert hosts[0].cli("init").returncode == 0
    hosts[1].instance.mkdir(parents=True, mode=0o700)
    # what the guide says to copy; keys and the pairwise salt come from the shared storage
    shutil.copy2(hosts[0].instance / "secret_key", hosts[1].instance / "secret_key")
    assert hosts[1].cli("init").returncode == 0
    for host in hosts:
        host.start()
    balancer = LoadBalancer(port, [host.url for host in hosts])
    thread = threading.Thread(target=balancer.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer, hosts
    finally:
        balancer.shutdown()
        balancer.server_close()
        thread.join()
        for host in hosts:
            host.stop()


@pytest.fixture
def two_hosts(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, list[LiveServer],
                                                                RedisStore]]:
    prefix = unique_prefix()
    with hosts_behind_a_balancer(tmp_path, redis_url, {"UAUTH_REDIS_PREFIX": prefix}
                                 ) as (issuer, hosts):
        store = RedisStore(redis_url, prefix=prefix)
        yield issuer, hosts, store
        store.close()


def test_a_flow_hops_between_two_hosts(two_hosts: tuple[str, list[LiveServer],
                                                        RedisStore]) -> None:
    issuer, hosts, store = two_hosts
    StoreUsers(store, __import__("time").time).create("fay", "password123", {})
    client, secret = register_client(store, Registration(name="App", redirect_uris=[REDIRECT],
                                                      subject_type="pairwise"))
    assert secret is not None
    url = (f"{issuer}/authorize?response_type=code&client_id={client.client_id}"
           f"&scope=openid&redirect_uri={REDIRECT}&state=s1")
    browser = Browser(issuer)
    jwks = jwt.PyJWKClient(f"{issuer}/jwks.json")
    subs = []
    for base in (issuer, hosts[0].url, hosts[1].url):  # redeemed via the balancer, then at each
        callback = location(browser.authorize(url, username="fay"))
        params = parse_qs(urlsplit(callback).query)
        assert callback.startswith(REDIRECT) and params["iss"] == [issuer]
        token = requests.post(f"{base}/token", auth=(client.client_id, secret), timeout=10,
                              data={"grant_type": "authorization_code", "redirect_uri": REDIRECT,
                                    "code": params["code"][0]})
        assert token.status_code == 200, token.text
        id_token = token.json()["id_token"]
        claims = jwt.decode(id_token, jwks.get_signing_key_from_jwt(id_token).key,
                            algorithms=["RS256"], audience=client.client_id, issuer=issuer)
        subs.append(claims["sub"])
    assert len(set(subs)) == 1, "every host gives the user the same pairwise sub"
    lines = [[json.loads(line) for line in host.log().splitlines() if line.startswith("{")]
             for host in hosts]
    for served in lines:
        assert {"/authorize", "/login"} & {r.get("path") for r in served}, "both hosts took part"
        assert {r["remote_addr"] for r in served if r.get("path") in ("/authorize", "/login")} \
            == {CLIENT_ADDRESS}, "the balancer's X-Forwarded-For is trusted (TRUSTED_PROXIES=1)"

    checked = hosts[0].cli("check", "--url", issuer)
    assert checked.returncode == 0, checked.stdout + checked.stderr
