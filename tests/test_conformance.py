"""Where uauth differed from the certified reference provider (issue 21): one test each,
in process, with the injected clock."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.storage import Store

VERIFIER = "v" * 50


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(tmp_path, store, clock))


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()


def redirected(response: Any) -> dict[str, str]:
    """The parameters of a redirect to the client (fails on a page)."""
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_max_age_zero_with_a_live_session_asks_for_a_new_login(driver: Driver,
                                                               clock: FakeClock) -> None:
    """OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login, even in the second of
    the last login."""
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    response = driver.authorize(response_type="code", client_id=client.client_id,
                                redirect_uri=REDIRECT, scope="openid", max_age="0")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next="), "a code without a login"


@pytest.mark.parametrize("scope", ['openid "bad\\scope"', "openid caf\u00e9"])
def test_a_scope_outside_the_grammar_redirects_invalid_scope(driver: Driver, scope: str) -> None:
    client, _ = driver.client()
    query = urlencode({"response_type": "code", "client_id": client.client_id,
                       "redirect_uri": REDIRECT, "scope": scope, "state": "st"})
    params = redirected(driver.http.get("/authorize?" + query))
    assert params["error"] == "invalid_scope"
    assert params["state"] == "st" and params["iss"] == "http://localhost"


def test_a_bad_scope_with_an_unregistered_redirect_uri_is_a_page(driver: Driver) -> None:
    client, _ = driver.client()
    query = urlencode({"response_type": "code", "client_id": client.client_id,
                       "redirect_uri": "https://evil.example/cb", "scope": 'a"b'})
    response = driver.http.get("/authorize?" + query)
    assert response.status_code == 400 and "Location" not in response.headers


def test_discovery_advertises_only_s256_and_plain_stays_a_per_client_opt_in(
        driver: Driver) -> None:
    meta = json_of(driver.http.get("/.well-known/openid-configuration"))
    assert meta["code_challenge_methods_supported"] == ["S256"]
    driver.user()
    driver.login()
    opted_in, _ = driver.client(public=True, allow_plain_pkce=True)
    code = driver.code(opted_in.client_id, code_challenge="p" * 43,
                       code_challenge_method="plain")
    assert driver.token(opted_in.client_id, None, code=code,
                        code_verifier="p" * 43).status_code == 200
    other, _ = driver.client(public=True)
    refused = driver.authorize(response_type="code", client_id=other.client_id,
                               redirect_uri=REDIRECT, scope="openid",
                               code_challenge="p" * 43, code_challenge_method="plain")
    assert redirected(refused)["error"] == "invalid_request"


@pytest.mark.parametrize("public", [False, True])
def test_a_missing_code_verifier_for_a_pkce_code_is_invalid_grant(driver: Driver,
                                                                  public: bool) -> None:
    """RFC 7636 §4.6."""
    driver.user()
    driver.login()
    client, secret = driver.client(public=public)
    code = driver.code(client.client_id, code_challenge=s256(VERIFIER),
                       code_challenge_method="S256")
    response = driver.token(client.client_id, secret, code=code)
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_two_client_authentication_methods_are_invalid_request(driver: Driver) -> None:
    """RFC 6749 §2.3: one method per request, even when both are right."""
    driver.user()
    driver.login()
    client, secret = driver.client()
    assert secret is not None
    code = driver.code(client.client_id)
    response = driver.http.post("/token", headers=basic_auth(client.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": client.client_id, "client_secret": secret})
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_request"
    assert driver.token(client.client_id, secret, code=code).status_code == 200, \
        "the refusal spent nothing"


@pytest.mark.parametrize("repeated", ["scope", "state", "response_type", "nonce", 'x"\\y'])
def test_repeated_parameters_with_a_trusted_redirect_uri_redirect_invalid_request(
        driver: Driver, repeated: str) -> None:
    client, _ = driver.client()
    pairs = [("response_type", "code"), ("client_id", client.client_id),
             ("redirect_uri", REDIRECT), ("scope", "openid"), ("state", "st"), ("nonce", "n")]
    pairs += [(repeated, "v")] * (1 if repeated in dict(pairs) else 2)
    params = redirected(driver.http.get("/authorize?" + urlencode(pairs)))
    assert params["error"] == "invalid_request" and params["iss"] == "http://localhost"
    assert params.get("state") == (None if repeated == "state" else "st")


@pytest.mark.parametrize("repeated", ["client_id", "redirect_uri"])
def test_a_repeated_client_id_or_redirect_uri_is_a_page(driver: Driver, repeated: str) -> None:
    client, _ = driver.client()
    pairs = [("response_type", "code"), ("client_id", client.client_id),
             ("redirect_uri", REDIRECT), ("scope", "openid")]
    pairs.append((repeated, dict(pairs)[repeated]))
    response = driver.http.get("/authorize?" + urlencode(pairs))
    assert response.status_code == 400 and "Location" not in response.headers


def test_a_missing_response_type_redirects_invalid_request(driver: Driver) -> None:
    client, _ = driver.client()
    query = urlencode({"client_id": client.client_id, "redirect_uri": REDIRECT,
                       "scope": "openid", "state": "st"})
    params = redirected(driver.http.get("/authorize?" + query))
    assert params["error"] == "invalid_request" and params["state"] == "st"
