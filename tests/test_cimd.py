"""Client ID metadata documents: fetched over real https (a trustme CA) from an allow-listed
loopback host, used like a registered client, and every way a document can be unusable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from cryptography.hazmat.primitives.asymmetric import ec

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.cimd_site import Site
from tests.cimd_site import serve
from tests.conftest import FakeClock
from uauth.storage import Store
from uauth.storage.memory import MemoryStore

NOTES = "https://notes.example.com/mcp"
VERIFIER = "c" * 50
REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("cimd")) as site:
        yield site


@pytest.fixture(autouse=True)
def trust_test_ca(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's fetcher trusts the test CA (OpenSSL reads SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cimd-app")


def app(shared: Path, store: Store, clock: FakeClock, **config: Any) -> Driver:
    settings = {"UAUTH_CIMD": "allowlist", "UAUTH_CIMD_HOSTS": ["127.0.0.1"],
                "UAUTH_FETCH_ALLOWED_HOSTS": ["127.0.0.1"],
                "UAUTH_RESOURCES": {NOTES: {"name": "Notes MCP", "scopes": ["notes"]}},
                **config}
    return Driver.of(make_app(shared, store, clock, **settings))


def document(site: Site, path: str, **overrides: Any) -> str:
    url = site.url(path)
    doc = {"client_id": url, "client_name": "Agent CLI", "redirect_uris": [REDIRECT],
           "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
           "token_endpoint_auth_method": "none", "client_uri": "https://agent.example.com/",
           **overrides}
    return site.publish(path, {k: v for k, v in doc.items() if v is not None}, 200,
                        **{"Cache-Control": "max-age=60"})


def start(driver: Driver, client_id: str, **extra: str) -> Any:
    return driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri":
        "http://127.0.0.1:49152/callback", "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256", "resource": NOTES, **extra})


def test_a_metadata_document_client_signs_in(site: Site, shared: Path, store: Store,
                                             clock: FakeClock) -> None:
    driver = app(shared, store, clock)
    assert json_of(driver.http.get("/.well-known/oauth-authorization-server"))[
        "client_id_metadata_document_supported"] is True
    client_id = document(site, f"/clients/{uuid.uuid4().hex}.json")
    driver.user()
    driver.login()
    page = start(driver, client_id)
    assert page.status_code == 200, page.text
    assert "Agent CLI" in page.text and "registered itself" in page.text
    assert "127.0.0.1" in page.text and "only redirects to your own computer" in page.text
    response = driver.authorize(**{k: v for k, v in page.request.args.items()})
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    token = driver.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:49152/callback", "code_verifier": VERIFIER})
    assert token.status_code == 200, json_of(token)
    claims = jwt.decode(json_of(token)["access_token"], options={"verify_signature": False})
    assert claims["aud"] == NOTES and claims["client_id"] == client_id


def test_private_key_jwt_with_a_published_jwks(site: Site, shared: Path, store: Store,
                                               clock: FakeClock) -> None:
    driver = app(shared, store, clock)
    key = ec.generate_private_key(ec.SECP256R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid="agent-1", use="sig", alg="ES256")
    name = uuid.uuid4().hex
    jwks_uri = site.publish(f"/{name}/jwks.json", {"keys": [public]})
    client_id = document(site, f"/{name}/client.json", token_endpoint_auth_method="private_key_jwt",
                         jwks_uri=jwks_uri)
    driver.user()
    driver.login()
    page = start(driver, client_id)
    response = driver.authorize(**{k: v for k, v in page.request.args.items()})
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    now = int(clock())
    assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": "http://localhost/token",
                            "exp": now + 60, "iat": now, "jti": uuid.uuid4().hex}, key,
                           algorithm="ES256", headers={"kid": "agent-1"})
    body = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": "http://127.0.0.1:49152/callback", "code_verifier": VERIFIER,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    assert driver.http.post("/token", data=body).status_code == 200
    # without the assertion, the document's private_key_jwt client cannot act as public
    page = start(driver, client_id)
    response = driver.authorize(**{k: v for k, v in page.request.args.items()})
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    bare = driver.http.post("/token", data={**{k: v for k, v in body.items()
                                                if not k.startswith("client_assertion")},
                                             "code": code, "client_id": client_id})
    assert bare.status_code == 401 and json_of(bare)["error"] == "invalid_client"


BAD_DOCUMENTS: list[tuple[str, dict[str, Any], bytes | None, int, dict[str, str], str]] = [
    ("mismatch", {"client_id": "https://127.0.0.1/other.json"}, None, 200, {}, "differs"),
    ("secret", {"client_secret": "s3cret"}, None, 200, {}, "secret"),
    ("method", {"token_endpoint_auth_method": "client_secret_basic"}, None, 200, {},
     "token_endpoint_auth_method"),
    ("no-redirects", {"redirect_uris": []}, None, 200, {}, "redirect_uris"),
    ("bad-redirect", {"redirect_uris": ["http://evil.example.com/cb"]}, None, 200, {},
     "not usable"),
    ("notjson", {}, b"<html>hello</html>", 200, {}, "JSON"),
    ("array", {}, b"[1, 2]", 200, {}, "not a JSON object"),
    ("big", {}, b"[" + b"1," * 40_000 + b"1]", 200, {}, "larger"),
    ("redirect", {}, b"", 302, {"Location": "/elsewhere"}, "302"),
    ("missing", {}, b"nope", 404, {}, "404"),
]


@pytest.mark.parametrize(("name", "overrides", "raw", "status", "headers", "words"),
                         BAD_DOCUMENTS, ids=[case[0] for case in BAD_DOCUMENTS])
def test_unusable_documents_are_invalid_client(site: Site, shared: Path, store: Store,
                                                clock: FakeClock, name: str,
                                                overrides: dict[str, Any], raw: bytes | None,
                                                status: int, headers: dict[str, str],
                                                words: str, log_lines: Any) -> None:
    path = f"/bad/{name}-{uuid.uuid4().hex}.json"
    if raw is None:
        url = document(site, path, **overrides)
    else:
        url = site.publish(path, raw, status=status, **headers)
    driver = app(shared, store, clock)
    driver.user()
    driver.login()
    page = start(driver, url)
    assert page.status_code == 400 and words.lower() in page.text.lower(), page.text
    token = driver.http.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                             "client_id": url, "redirect_uri": REDIRECT,
                                             "code_verifier": VERIFIER})
    assert token.status_code in (400, 401) and json_of(token)["error"] == "invalid_client"
    assert "client.metadata_document_refused" in log_lines.getvalue()


def test_hosts_outside_the_allowlist_are_refused(site: Site, shared: Path, store: Store,
                                                 clock: FakeClock) -> None:
    url = document(site, f"/{uuid.uuid4().hex}.json")
    driver = app(shared, store, clock, UAUTH_CIMD_HOSTS=["agents.example.com"])
    page = start(driver, url)
    assert page.status_code == 400 and "not accepted" in page.text
    assert site.hits.count(urlsplit(url).path) == 0  # never even fetched
    assert "client_id_metadata_document_supported" in json_of(driver.http.get(
        "/.well-known/openid-configuration"))


def test_internal_addresses_are_refused_unless_allow_listed(site: Site, shared: Path,
                                                            store: Store, clock: FakeClock
                                                            ) -> None:
    url = document(site, f"/{uuid.uuid4().hex}.json")
    driver = app(shared, store, clock, UAUTH_CIMD="on", UAUTH_FETCH_ALLOWED_HOSTS=[])
    page = start(driver, url)
    assert page.status_code == 400 and "non-public address" in page.text


def test_off_means_unknown_client(site: Site, shared: Path, store: Store,
                                  clock: FakeClock) -> None:
    url = document(site, f"/{uuid.uuid4().hex}.json")
    driver = app(shared, store, clock, UAUTH_CIMD="off")
    assert start(driver, url).status_code == 400
    assert "client_id_metadata_document_supported" not in json_of(driver.http.get(
        "/.well-known/openid-configuration"))


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "https://127.0.0.1/a/../b.json",
                                 "https://user:pw@127.0.0.1/c.json"])
def test_bad_client_id_urls(shared: Path, clock: FakeClock, url: str) -> None:
    driver = app(shared, MemoryStore(clock=clock), clock)
    page = start(driver, url)
    assert page.status_code == 400 and "client_id URL" in page.text


def test_a_slow_document_is_given_up_on(site: Site, shared: Path, clock: FakeClock) -> None:
    site.publish("/slow", {"client_id": site.url("/slow")})
    driver = app(shared, MemoryStore(clock=clock), clock)
    page = start(driver, site.url("/slow"))
    assert page.status_code == 400 and "cannot be fetched" in page.text
    assert "took longer than" in page.text or "timeout" in page.text.lower()


def test_documents_are_cached_per_their_headers(site: Site, shared: Path, store: Store,
                                                clock: FakeClock) -> None:
    path = f"/{uuid.uuid4().hex}.json"
    url = document(site, path)
    driver = app(shared, store, clock)
    for _ in range(3):
        assert start(driver, url).status_code == 302  # to the login page
    assert site.hits.count(path) == 1
    clock.advance(61)
    start(driver, url)
    assert site.hits.count(path) == 2
