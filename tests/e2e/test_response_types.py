"""Every response type in every response mode it may use, through a real server per backend.

Each response is read as the client reads it (query, fragment or form_post page), every ID
token is verified with PyJWT against the published JWKS (signature, iss, aud, nonce, at_hash,
c_hash), and codes from hybrid responses are redeemed at /token.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import requests

from tests.browser import Browser
from tests.browser import callback
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider
from uauth.core.clients import RESPONSE_TYPES
from uauth.core.models import Client
from uauth.core.models import User

TOKEN_TYPES = [rt for rt in RESPONSE_TYPES if rt != "code"]
#: (response_type, response_mode); None is "no response_mode parameter".
MATRIX = [("code", mode) for mode in (None, "query", "fragment", "form_post")] + [
    (rt, mode) for rt in TOKEN_TYPES for mode in (None, "fragment", "form_post")]


def half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


_jwks: dict[str, jwt.PyJWKClient] = {}


def verify_id_token(provider: Provider, id_token: str, client_id: str, *, nonce: str | None,
                    access_token: str | None = None, code: str | None = None
                    ) -> dict[str, Any]:
    """What a relying party checks (OIDC Core §3.1.3.7, §3.2.2.11, §3.3.2.12)."""
    jwks = _jwks.setdefault(provider.url, jwt.PyJWKClient(provider.url + "/jwks.json"))
    key = jwks.get_signing_key_from_jwt(id_token)
    claims: dict[str, Any] = jwt.decode(
        id_token, key.key, algorithms=["RS256"], audience=client_id, issuer=provider.url,
        options={"require": ["exp", "iat", "sub", "auth_time"]})
    assert claims.get("nonce") == nonce
    if access_token is not None:
        assert claims["at_hash"] == half_hash(access_token)
    if code is not None:
        assert claims["c_hash"] == half_hash(code)
    return claims


@pytest.fixture(scope="module")
def signed_in(provider: Provider) -> Iterator[tuple[User, Client, str, Browser]]:
    """One user, signed in once, and a first-party client registered for every type."""
    user = provider.add_user(given_name="Grace", family_name="Hopper")
    client, secret = provider.add_client(response_types=list(RESPONSE_TYPES), first_party=True)
    assert secret is not None
    browser = Browser(provider.url)
    browser.authorize(provider.url + "/login", username=user.username)
    yield user, client, secret, browser


def authorize_url(provider: Provider, **params: str | None) -> str:
    return provider.url + "/authorize?" + urlencode(
        {k: v for k, v in params.items() if v is not None})


def token_request(provider: Provider, client_id: str, secret: str, code: str
                  ) -> requests.Response:
    return requests.post(provider.url + "/token", auth=(client_id, secret), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})


def userinfo(provider: Provider, access_token: str) -> requests.Response:
    return requests.get(provider.url + "/userinfo", timeout=5,
                        headers={"Authorization": f"Bearer {access_token}"})


@pytest.mark.parametrize(("response_type", "mode"), MATRIX)
def test_response_type_in_mode(provider: Provider, signed_in: tuple[User, Client, str, Browser],
                               response_type: str, mode: str | None) -> None:
    user, client, secret, browser = signed_in
    nonce, state = secrets.token_urlsafe(12), secrets.token_urlsafe(8)
    response = browser.authorize(authorize_url(
        provider, response_type=response_type, response_mode=mode, client_id=client.client_id,
        redirect_uri=REDIRECT, scope="openid profile email", nonce=nonce, state=state))
    got_mode, params = callback(response, REDIRECT)
    default = "query" if response_type == "code" else "fragment"
    assert got_mode == (mode or default)
    assert params["state"] == state and params["iss"] == provider.url
    types = set(response_type.split())
    expected = {"state", "iss"} | (types - {"token"})
    if "token" in types:
        expected |= {"access_token", "token_type", "expires_in", "scope"}
    assert set(params) == expected, params
    assert "refresh_token" not in params, "never from the authorization endpoint"

    access, code = params.get("access_token"), params.get("code")
    if "id_token" in types:
        claims = verify_id_token(provider, params["id_token"], client.client_id, nonce=nonce,
                                 access_token=access, code=code)
        assert claims["sub"] == provider.sub(user, client)
        if types == {"id_token"}:  # no access token: the scope claims travel in the ID token
            assert claims["email"] == user.profile["email"] and claims["given_name"] == "Grace"
        else:
            assert "email" not in claims
    if access is not None:
        assert params["token_type"] == "Bearer" and params["scope"] == "openid profile email"
        info = userinfo(provider, access)
        assert info.status_code == 200 and info.json()["sub"] == provider.sub(user, client)
        assert info.json()["family_name"] == "Hopper"
    if code is not None:
        token = token_request(provider, client.client_id, secret, code)
        assert token.status_code == 200, token.text
        body = token.json()
        claims = verify_id_token(provider, body["id_token"], client.client_id, nonce=nonce,
                                 access_token=body["access_token"])
        assert claims["sub"] == provider.sub(user, client), "the same user at both endpoints (OIDC Core §3.3.3.6)"


def test_form_post_page_submits_itself_under_a_strict_policy(
        provider: Provider, signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, _, browser = signed_in
    response = browser.authorize(authorize_url(
        provider, response_type="code id_token", response_mode="form_post", nonce="n1",
        client_id=client.client_id, redirect_uri=REDIRECT, scope="openid", state="s<\"'>"))
    assert response.headers["Cache-Control"] == "no-store"
    policy = response.headers["Content-Security-Policy"]
    script_nonce = re.search(r'<script nonce="([^"]+)">', response.text)
    assert script_nonce and f"script-src 'nonce-{script_nonce.group(1)}'" in policy
    assert "form-action http://127.0.0.1:8399" in policy and "default-src 'none'" in policy
    assert '<button type="submit"' in response.text, "works without scripts too"
    assert callback(response, REDIRECT)[1]["state"] == "s<\"'>", "values escaped, not mangled"


def test_value_order_of_response_type_does_not_matter(
        provider: Provider, signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, _, browser = signed_in
    for response_type in ("token id_token", "id_token code", "token id_token code"):
        response = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id, nonce="n",
            redirect_uri=REDIRECT, scope="email openid"))
        mode, params = callback(response, REDIRECT)
        wanted = {"access_token" if t == "token" else t for t in response_type.split()}
        assert mode == "fragment" and wanted <= set(params), params


def test_nonce_is_required_whenever_an_id_token_comes_back(
        provider: Provider, signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, _, browser = signed_in
    for response_type in TOKEN_TYPES:
        response = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id,
            redirect_uri=REDIRECT, scope="openid", state="st"))
        mode, params = callback(response, REDIRECT)
        if "id_token" in response_type:
            assert mode == "fragment" and params["error"] == "invalid_request", response_type
            assert "nonce" in params["error_description"] and params["state"] == "st"
        else:  # code token: nonce optional (OIDC Core §3.3.2.11)
            assert "code" in params and "access_token" in params


def test_types_a_client_was_not_registered_for_are_refused(provider: Provider) -> None:
    user = provider.add_user()
    client, _ = provider.add_client(response_types=["code", "code id_token"])
    browser = Browser(provider.url)
    for response_type in ("id_token", "id_token token", "code token", "code id_token token"):
        response = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id, nonce="n",
            redirect_uri=REDIRECT, scope="openid", state="x"), username=user.username)
        mode, params = callback(response, REDIRECT)
        assert mode == "fragment" and params["error"] == "unauthorized_client", response_type
        assert params["state"] == "x" and params["iss"] == provider.url
        assert not browser.pages[-1].endswith("/login"), "refused before anyone signs in"
    for response_type in ("token", "code code", "none"):
        response = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id, nonce="n",
            redirect_uri=REDIRECT, scope="openid"))
        assert callback(response, REDIRECT)[1]["error"] == "unsupported_response_type"


def test_tokens_never_go_in_a_query(provider: Provider,
                                    signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, _, browser = signed_in
    response = browser.authorize(authorize_url(
        provider, response_type="id_token token", response_mode="query", nonce="n",
        client_id=client.client_id, redirect_uri=REDIRECT, scope="openid", state="q"))
    mode, params = callback(response, REDIRECT)
    assert mode == "fragment" and params["error"] == "invalid_request" and params["state"] == "q"
    assert "access_token" not in params


def test_client_default_response_mode(provider: Provider) -> None:
    user = provider.add_user()
    browser = Browser(provider.url)
    for default, response_type, expected in (("form_post", "code", "form_post"),
                                             ("fragment", "code", "fragment"),
                                             ("query", "code id_token", "fragment")):
        client, _ = provider.add_client(response_types=["code", "code id_token"],
                                        default_response_mode=default, first_party=True)
        response = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id, nonce="n",
            redirect_uri=REDIRECT, scope="openid"), username=user.username)
        assert callback(response, REDIRECT)[0] == expected, (default, response_type)
        explicit = browser.authorize(authorize_url(
            provider, response_type=response_type, client_id=client.client_id, nonce="n",
            redirect_uri=REDIRECT, scope="openid", response_mode="fragment"))
        assert callback(explicit, REDIRECT)[0] == "fragment", "the request's mode wins"


def test_replayed_hybrid_code_revokes_the_front_channel_token(
        provider: Provider, signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, secret, browser = signed_in
    response = browser.authorize(authorize_url(
        provider, response_type="code token", client_id=client.client_id,
        redirect_uri=REDIRECT, scope="openid"))
    params = callback(response, REDIRECT)[1]
    assert token_request(provider, client.client_id, secret, params["code"]).status_code == 200
    assert userinfo(provider, params["access_token"]).status_code == 200
    replay = token_request(provider, client.client_id, secret, params["code"])
    assert replay.json()["error"] == "invalid_grant"
    assert userinfo(provider, params["access_token"]).status_code == 401, "same grant, revoked"


def test_implicit_needs_openid(provider: Provider,
                               signed_in: tuple[User, Client, str, Browser]) -> None:
    _, client, _, browser = signed_in
    response = browser.authorize(authorize_url(
        provider, response_type="id_token", client_id=client.client_id, nonce="n",
        redirect_uri=REDIRECT, scope="profile"))
    assert callback(response, REDIRECT)[1]["error"] == "invalid_scope"


def test_discovery_lists_types_and_modes(provider: Provider) -> None:
    meta = provider.discovery
    assert sorted(meta["response_types_supported"]) == sorted(RESPONSE_TYPES)
    assert meta["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert set(meta["grant_types_supported"]) >= {"authorization_code", "implicit"}


def test_form_post_never_targets_a_native_redirect_uri(provider: Provider) -> None:
    user = provider.add_user()
    native = "com.example.app:/cb"
    client, _ = provider.add_client(redirect_uris=[native], public=True, first_party=True,
                                    default_response_mode="form_post")
    browser = Browser(provider.url)
    refused = browser.authorize(authorize_url(
        provider, response_type="code", response_mode="form_post", client_id=client.client_id,
        redirect_uri=native, scope="openid", state="f"), username=user.username)
    mode, params = callback(refused, native)
    assert mode == "query" and params["error"] == "invalid_request" and params["state"] == "f"
    answered = browser.authorize(authorize_url(
        provider, response_type="code", client_id=client.client_id, redirect_uri=native,
        scope="openid", code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256"), username=user.username)
    mode, params = callback(answered, native)
    assert mode == "query" and "code" in params, "the client's form_post default yields"
