"""The official ``mcp`` SDK's client, with its OAuth client provider, against
``examples/mcp`` (the SDK's server, streamable HTTP) protected by uauth under gunicorn.

Discovery goes from the resource (RFC 9728 metadata, named in the 401 challenge) to uauth's
metadata; the client identifies itself once through a client ID metadata document (served over
https by a test server whose certificate comes from a trustme CA, its host allow-listed) and
once through dynamic registration (RFC 7591); PKCE S256, ``resource`` on every request, the
login and consent pages driven over HTTP; then a tool call succeeds. A token minted for another
resource is refused by the MCP server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests

from tests.browser import csrf_token
from tests.cimd_site import Site
from tests.cimd_site import serve
from tests.e2e.conftest import PASSWORD
from tests.e2e.conftest import Provider
from tests.e2e.conftest import start_provider
from tests.redis_server import free_port
from uauth.core.models import DYNAMIC

pytestmark = pytest.mark.slow

mcp = pytest.importorskip("mcp")  # the test extra installs it; say so loudly if absent

ROOT = Path(__file__).resolve().parents[2]
OTHER = "https://calendar.example.com/api"
CALLBACK = "http://127.0.0.1:47123/callback"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("mcp-cimd")) as site:
        yield site


class Stack:
    def __init__(self, provider: Provider, resource: str, server: subprocess.Popen[str]) -> None:
        self.provider = provider
        self.resource = resource
        self.server = server


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          site: Site) -> Iterator[Stack]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    config = {
        "UAUTH_RESOURCES": json.dumps({resource: {"name": "Notes MCP", "scopes": ["notes"]},
                                       OTHER: {"name": "Calendar", "scopes": ["calendar"]}}),
        "UAUTH_REGISTRATION": "open", "UAUTH_CIMD": "allowlist",
        "UAUTH_CIMD_HOSTS": "127.0.0.1", "UAUTH_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        "SSL_CERT_FILE": str(site.ca_file),  # the provider trusts the test CA
    }
    providers = start_provider(request, tmp_path_factory, request.param, config)
    provider = next(providers)
    log = open(tmp_path_factory.mktemp("mcp-server") / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.mcp.server", "--port", str(port)], cwd=ROOT,
        env={**_env(), "UAUTH_ISSUER": provider.url, "MCP_RESOURCE": resource},
        stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp", server)
        yield Stack(provider, resource, server)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
        for _ in providers:
            pass


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _wait(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the MCP server exited"
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def sign_in_and_allow(authorization_url: str, username: str) -> dict[str, str]:
    """What a person does in the browser: log in, read the consent page, allow. Returns the
    parameters of the redirect back to the client."""
    http = requests.Session()
    url = authorization_url
    for _ in range(10):
        response = http.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            url = urljoin(url, response.headers["Location"])
            if url.startswith(CALLBACK):
                break
            continue
        assert response.status_code == 200, response.text
        if 'name="password"' in response.text:
            response = http.post(url, data={"csrf_token": csrf_token(response.text),
                                            "username": username, "password": PASSWORD},
                                 allow_redirects=False, timeout=10)
            assert response.status_code == 302, response.text
            url = urljoin(url, response.headers["Location"])
            continue
        assert 'name="consent"' in response.text, response.text
        assert "Notes MCP" in response.text  # consent names the resource
        hidden = [(name, value) for name, value in _hidden(response.text)]
        response = http.post(urljoin(url, "/authorize"), data=[
            *hidden, ("csrf_token", csrf_token(response.text)), ("consent", "allow")],
            allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text
        url = response.headers["Location"]
        break
    assert url.startswith(CALLBACK), url
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _hidden(page: str) -> list[tuple[str, str]]:
    import html
    import re

    return [(k, html.unescape(v)) for k, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)]


def run_client(stack: Stack, username: str, client_metadata_url: str | None) -> dict[str, Any]:
    """The SDK's client: OAuth provider (discovery, registration or CIMD, PKCE, tokens), then a
    tool call over streamable HTTP. Returns what it saw."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult
    from mcp.shared.auth import OAuthClientInformationFull
    from mcp.shared.auth import OAuthClientMetadata
    from mcp.shared.auth import OAuthToken
    from pydantic import AnyUrl

    class Storage:
        tokens: OAuthToken | None = None
        client: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client = client_info

    storage = Storage()
    seen: dict[str, Any] = {}

    async def redirect_handler(url: str) -> None:
        seen["authorization_url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        params = await anyio.to_thread.run_sync(sign_in_and_allow, seen["authorization_url"],
                                                username)
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"),
                                       iss=params.get("iss"))

    oauth = OAuthClientProvider(
        server_url=stack.resource,
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client", redirect_uris=[AnyUrl(CALLBACK)],
            grant_types=["authorization_code", "refresh_token"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
        client_metadata_url=client_metadata_url)

    async def main() -> None:
        async with httpx2.AsyncClient(auth=oauth, timeout=30) as http, \
                Client(streamable_http_client(stack.resource, http_client=http)) as client:
            added = await client.call_tool("add_note", {"text": "buy milk"})
            listed = await client.call_tool("list_notes", {})
            seen["added"] = added
            seen["listed"] = listed

    # Its own thread: a session's sync Playwright (browser tests) keeps an asyncio loop
    # running in the main thread, where anyio.run refuses to start another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, main).result()
    seen["client_id"] = storage.client.client_id if storage.client else None
    seen["access_token"] = storage.tokens.access_token if storage.tokens else None
    return seen


def text_of(result: Any) -> str:
    return json.dumps(result.model_dump(mode="json"))


def check_run(stack: Stack, seen: dict[str, Any]) -> None:
    query = parse_qs(urlsplit(seen["authorization_url"]).query)
    assert query["resource"] == [stack.resource]
    assert query["code_challenge_method"] == ["S256"]
    assert not seen["added"].is_error and "saved note" in text_of(seen["added"])
    assert "buy milk" in text_of(seen["listed"])
    import jwt

    claims = jwt.decode(seen["access_token"], options={"verify_signature": False})
    assert claims["aud"] == stack.resource and "notes" in claims["scope"].split()


def test_sdk_client_with_a_client_id_metadata_document(stack: Stack, site: Site) -> None:
    url = site.url(f"/mcp-clients/{uuid.uuid4().hex}.json")
    site.publish(urlsplit(url).path, {
        "client_id": url, "client_name": "SDK test client", "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "none"})
    user = stack.provider.add_user()
    seen = run_client(stack, user.username, url)
    check_run(stack, seen)
    assert seen["client_id"] == url
    assert urlsplit(url).path in site.hits  # uauth fetched the document


def test_sdk_client_with_dynamic_registration(stack: Stack) -> None:
    user = stack.provider.add_user()
    seen = run_client(stack, user.username, None)
    check_run(stack, seen)
    record = stack.provider.store.find("client", seen["client_id"])
    assert record is not None and record["registration"] == DYNAMIC


def test_a_token_for_another_resource_is_refused(stack: Stack) -> None:
    client, secret = stack.provider.add_client(
        redirect_uris=[], grant_types=["client_credentials"], scope="notes calendar",
        audiences=[OTHER, stack.resource])
    base = stack.provider.url
    other = requests.post(base + "/token", auth=(client.client_id, secret or ""), data={
        "grant_type": "client_credentials", "scope": "notes", "resource": OTHER}, timeout=10)
    assert other.status_code == 200, other.text
    mine = requests.post(base + "/token", auth=(client.client_id, secret or ""), data={
        "grant_type": "client_credentials", "scope": "notes", "resource": stack.resource},
        timeout=10)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    refused = requests.post(stack.resource, json=call, timeout=10, headers={
        **headers, "Authorization": f"Bearer {other.json()['access_token']}"})
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["WWW-Authenticate"]
    accepted = requests.post(stack.resource, json=call, timeout=10, headers={
        **headers, "Authorization": f"Bearer {mine.json()['access_token']}"})
    assert accepted.status_code != 401, accepted.text
