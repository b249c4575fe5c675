"""Refresh rotation and reuse detection, client credentials, revocation and introspection, per
storage backend through a real server, with Authlib's client and PyJWT against the JWKS."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256

from tests.e2e.conftest import PROVIDER_BACKENDS
from tests.e2e.conftest import Provider
from tests.e2e.conftest import start_provider
from tests.e2e.test_code_flow import get_code
from tests.e2e.test_code_flow import token_request
from uauth.storage import hash_key

OFFLINE = "openid profile offline_access"


def post(provider: Provider, path: str, client_id: str, secret: str | None, **data: str
         ) -> requests.Response:
    """A back-channel POST, authenticated with client_secret_basic (or client_id for public)."""
    if secret is None:
        data["client_id"] = client_id
    return requests.post(provider.url + path, data=data, timeout=10,
                         auth=(client_id, secret) if secret else None)


def refresh(provider: Provider, client_id: str, secret: str | None, token: str, **data: str
            ) -> requests.Response:
    return post(provider, "/token", client_id, secret, grant_type="refresh_token",
                refresh_token=token, **data)


def userinfo_status(provider: Provider, access_token: str) -> int:
    return requests.get(provider.url + "/userinfo", timeout=5,
                        headers={"Authorization": f"Bearer {access_token}"}).status_code


def offline_grant(provider: Provider, client_id: str, secret: str | None, scope: str = OFFLINE
                  ) -> dict[str, Any]:
    """Log a new user in through the browser pages and redeem the code (with PKCE)."""
    user = provider.add_user()
    verifier = secrets.token_urlsafe(48)
    code = get_code(provider, client_id, user.username, scope=scope,
                    code_challenge=s256(verifier), code_challenge_method="S256")
    response = token_request(provider, client_id, secret, code=code, code_verifier=verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["refresh_token"], "offline_access was granted"
    return body


def verify(provider: Provider, token: str, audience: str, typ: str) -> dict[str, Any]:
    """Validate as a relying party or resource server does: JWKS key, its alg, iss, aud, exp."""
    key = jwt.PyJWKClient(provider.url + "/jwks.json").get_signing_key_from_jwt(token)
    assert jwt.get_unverified_header(token)["typ"] == typ
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[key.algorithm_name],
                                        audience=audience, issuer=provider.url,
                                        options={"require": ["exp", "iat", "sub"]})
    return claims


# --- refresh tokens --------------------------------------------------------------------------


def test_refresh_rotates_through_a_chain_of_ten(provider: Provider) -> None:
    client, secret = provider.add_client()
    first = offline_grant(provider, client.client_id, secret)
    original = verify(provider, first["id_token"], client.client_id, "JWT")
    session = OAuth2Session(client.client_id, secret, token=first)
    seen = {first["refresh_token"]}
    for _ in range(10):
        token = session.refresh_token(provider.url + "/token")
        assert token["refresh_token"] not in seen, "every use rotates"
        assert len(token["refresh_token"]) >= 43
        seen.add(token["refresh_token"])
        assert token["scope"] == OFFLINE and token["expires_in"] == 7200
        assert userinfo_status(provider, token["access_token"]) == 200
        refreshed = verify(provider, token["id_token"], client.client_id, "JWT")
        for claim in ("sub", "auth_time", "azp", "amr"):
            assert refreshed[claim] == original[claim], claim
        access = verify(provider, token["access_token"], provider.url, "at+jwt")
        assert access["sub"] == original["sub"] and access["auth_time"] == original["auth_time"]
    for old in seen - {session.token["refresh_token"]}:
        assert provider.store.find("refresh_token", hash_key(old)) is not None, "kept as spent"


def test_refresh_tokens_are_stored_only_as_digests(provider: Provider) -> None:
    client, secret = provider.add_client()
    token = offline_grant(provider, client.client_id, secret)
    rotated = refresh(provider, client.client_id, secret, token["refresh_token"]).json()
    for value in (token["refresh_token"], rotated["refresh_token"]):
        assert provider.store.find("refresh_token", value) is None
        assert provider.store.find("refresh_token", hash_key(value)) is not None
    if provider.backend == "sqlite":
        for path in provider.instance.glob("uauth.db*"):
            data = path.read_bytes()
            assert token["refresh_token"].encode() not in data
            assert rotated["refresh_token"].encode() not in data


def test_reused_refresh_token_revokes_the_family(provider: Provider) -> None:
    client, secret = provider.add_client()
    r0 = offline_grant(provider, client.client_id, secret)["refresh_token"]
    step1 = refresh(provider, client.client_id, secret, r0).json()
    step2 = refresh(provider, client.client_id, secret, step1["refresh_token"]).json()
    assert userinfo_status(provider, step2["access_token"]) == 200
    reuse = refresh(provider, client.client_id, secret, r0)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert reuse.headers["Cache-Control"] == "no-store"
    newest = refresh(provider, client.client_id, secret, step2["refresh_token"])
    assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"
    assert userinfo_status(provider, step2["access_token"]) == 401, "latest access token too"
    assert userinfo_status(provider, step1["access_token"]) == 401


def simultaneously(count: int, call: Callable[[], requests.Response]) -> list[requests.Response]:
    """Run ``call`` on ``count`` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run() -> requests.Response:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [future.result(timeout=30) for future in futures]


def test_concurrent_refreshes_exactly_one_succeeds(provider: Provider) -> None:
    client, secret = provider.add_client()
    for _ in range(3):
        token = offline_grant(provider, client.client_id, secret)["refresh_token"]
        results = simultaneously(
            4, partial(refresh, provider, client.client_id, secret, token))
        assert sorted(r.status_code for r in results) == [200] + [400] * 3, [r.text for r in results]
        winner = next(r.json() for r in results if r.status_code == 200)
        loser = next(r.json() for r in results if r.status_code == 400)
        assert loser["error"] == "invalid_grant"
        # The loser presented a spent token: reuse, so the family is gone, winner's tokens too.
        again = refresh(provider, client.client_id, secret, winner["refresh_token"])
        assert again.json()["error"] == "invalid_grant"
        assert userinfo_status(provider, winner["access_token"]) == 401


def test_scope_may_be_narrowed_never_widened(provider: Provider) -> None:
    client, secret = provider.add_client()
    r0 = offline_grant(provider, client.client_id, secret)["refresh_token"]
    wider = refresh(provider, client.client_id, secret, r0, scope="openid profile email")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrow = refresh(provider, client.client_id, secret, r0, scope="openid")
    assert narrow.status_code == 200, "a refused request does not spend the token"
    body = narrow.json()
    assert body["scope"] == "openid"
    assert verify(provider, body["access_token"], provider.url, "at+jwt")["scope"] == "openid"
    full = refresh(provider, client.client_id, secret, body["refresh_token"]).json()
    assert full["scope"] == OFFLINE, "the new refresh token keeps the original scope (RFC 6749 6)"
    no_openid = refresh(provider, client.client_id, secret, full["refresh_token"],
                        scope="profile").json()
    assert "id_token" not in no_openid and no_openid["refresh_token"]


def test_refresh_token_is_bound_to_its_client(provider: Provider) -> None:
    client, secret = provider.add_client()
    other, other_secret = provider.add_client()
    r0 = offline_grant(provider, client.client_id, secret)["refresh_token"]
    stolen = refresh(provider, other.client_id, other_secret, r0)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    wrong_secret = refresh(provider, client.client_id, "not-the-secret", r0)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert refresh(provider, client.client_id, secret, r0).status_code == 200


def test_public_client_refreshes_and_revokes_without_a_secret(provider: Provider) -> None:
    origin = "http://localhost:3001"
    client, _ = provider.add_client(public=True, allowed_origins=[origin])
    preflight = requests.options(provider.url + "/revoke", timeout=5, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == origin, "SPAs revoke too"
    token = offline_grant(provider, client.client_id, None)
    rotated = refresh(provider, client.client_id, None, token["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    revoked = post(provider, "/revoke", client.client_id, None,
                   token=rotated.json()["refresh_token"])
    assert revoked.status_code == 200
    assert userinfo_status(provider, rotated.json()["access_token"]) == 401


def test_refresh_needs_the_grant_type(provider: Provider) -> None:
    client, secret = provider.add_client(grant_types=["authorization_code"],
                                         always_issue_refresh_token=True)
    user = provider.add_user()
    code = get_code(provider, client.client_id, user.username, scope=OFFLINE)
    token = token_request(provider, client.client_id, secret, code=code).json()
    assert token["access_token"] and "refresh_token" not in token, "no refresh_token grant, no refresh token"


# --- the grace window ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=PROVIDER_BACKENDS)
def graced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Provider]:
    yield from start_provider(request, tmp_path_factory, request.param,
                              {"UAUTH_REFRESH_REUSE_GRACE": 300})


def test_retry_within_the_grace_window_gets_the_same_successor(graced: Provider) -> None:
    client, secret = graced.add_client()
    r0 = offline_grant(graced, client.client_id, secret)["refresh_token"]
    lost = refresh(graced, client.client_id, secret, r0).json()
    retry = refresh(graced, client.client_id, secret, r0)
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == lost["refresh_token"], "one chain, no fork"
    assert retry.json()["access_token"] != lost["access_token"]
    assert userinfo_status(graced, retry.json()["access_token"]) == 200
    step2 = refresh(graced, client.client_id, secret, lost["refresh_token"])
    assert step2.status_code == 200, "the family survived the retry"
    late = refresh(graced, client.client_id, secret, r0)
    assert late.json()["error"] == "invalid_grant", "its successor was used: this is reuse"
    assert userinfo_status(graced, step2.json()["access_token"]) == 401


def test_grace_window_does_not_excuse_another_client(graced: Provider) -> None:
    client, secret = graced.add_client()
    other, other_secret = graced.add_client()
    r0 = offline_grant(graced, client.client_id, secret)["refresh_token"]
    assert refresh(graced, client.client_id, secret, r0).status_code == 200
    assert refresh(graced, other.client_id, other_secret, r0).json()["error"] == "invalid_grant"


# --- client credentials ----------------------------------------------------------------------


def test_client_credentials_happy_path(provider: Provider) -> None:
    api = "https://orders.example.com"
    client, secret = provider.add_client(grant_types=["client_credentials"], redirect_uris=[],
                                         scope="profile email", audiences=[api])
    session = OAuth2Session(client.client_id, secret, scope="profile")
    token = session.fetch_token(provider.url + "/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "profile"
    assert "id_token" not in token and "refresh_token" not in token
    claims = verify(provider, token["access_token"], provider.url, "at+jwt")
    assert claims["sub"] == client.client_id and claims["client_id"] == client.client_id
    assert "auth_time" not in claims
    default = post(provider, "/token", client.client_id, secret, grant_type="client_credentials")
    assert default.json()["scope"] == "profile email", "no scope: all the client may have"
    targeted = post(provider, "/token", client.client_id, secret,
                    grant_type="client_credentials", resource=api)
    assert targeted.status_code == 200, targeted.text
    assert verify(provider, targeted.json()["access_token"], api, "at+jwt")["aud"] == api
    assert userinfo_status(provider, targeted.json()["access_token"]) == 401, "not for userinfo"
    elsewhere = post(provider, "/token", client.client_id, secret,
                     grant_type="client_credentials", resource="https://evil.example.com")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_target"
    named = post(provider, "/token", client.client_id, secret, grant_type="client_credentials",
                 audience=api)  # the audience parameter, as some clients name it
    assert verify(provider, named.json()["access_token"], api, "at+jwt")["aud"] == api
    assert post(provider, "/token", client.client_id, secret, grant_type="client_credentials",
                audience="https://evil.example.com").json()["error"] == "invalid_target"


def test_client_credentials_denials(provider: Provider) -> None:
    public, _ = provider.add_client(public=True)
    response = post(provider, "/token", public.client_id, None, grant_type="client_credentials")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    web, web_secret = provider.add_client()
    response = post(provider, "/token", web.client_id, web_secret,
                    grant_type="client_credentials")
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    m2m, m2m_secret = provider.add_client(grant_types=["client_credentials"], redirect_uris=[],
                                          scope="profile")
    for scope in ("email", "profile openid", "offline_access", "nonsense"):
        response = post(provider, "/token", m2m.client_id, m2m_secret,
                        grant_type="client_credentials", scope=scope)
        assert response.status_code == 400, scope
        assert response.json()["error"] == "invalid_scope", scope
    bad = post(provider, "/token", m2m.client_id, "wrong", grant_type="client_credentials")
    assert bad.status_code == 401


# --- revocation ------------------------------------------------------------------------------


def test_revoking_an_access_token_denies_only_it(provider: Provider) -> None:
    client, secret = provider.add_client()
    token = offline_grant(provider, client.client_id, secret)
    response = post(provider, "/revoke", client.client_id, secret, token=token["access_token"],
                    token_type_hint="access_token")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert userinfo_status(provider, token["access_token"]) == 401
    assert introspect(provider, client.client_id, secret, token["access_token"]) == {
        "active": False}
    rotated = refresh(provider, client.client_id, secret, token["refresh_token"])
    assert rotated.status_code == 200, "the refresh token is untouched"
    assert userinfo_status(provider, rotated.json()["access_token"]) == 200


def test_revoking_a_refresh_token_revokes_its_family(provider: Provider) -> None:
    client, secret = provider.add_client()
    token = offline_grant(provider, client.client_id, secret)
    rotated = refresh(provider, client.client_id, secret, token["refresh_token"]).json()
    # The hint is wrong on purpose: it orders the lookups, it is never trusted.
    response = post(provider, "/revoke", client.client_id, secret,
                    token=rotated["refresh_token"], token_type_hint="access_token")
    assert response.status_code == 200
    assert refresh(provider, client.client_id, secret,
                   rotated["refresh_token"]).json()["error"] == "invalid_grant"
    for access in (token["access_token"], rotated["access_token"]):
        assert userinfo_status(provider, access) == 401
        assert introspect(provider, client.client_id, secret, access) == {"active": False}
    assert introspect(provider, client.client_id, secret, rotated["refresh_token"]) == {
        "active": False}


def test_revocation_of_unknown_foreign_and_revoked_tokens(provider: Provider) -> None:
    client, secret = provider.add_client()
    other, other_secret = provider.add_client()
    token = offline_grant(provider, client.client_id, secret)
    for junk in ("not-a-token", "a.b.c", "x" * 5000):
        assert post(provider, "/revoke", client.client_id, secret, token=junk).status_code == 200
    for value in (token["access_token"], token["refresh_token"]):
        foreign = post(provider, "/revoke", other.client_id, other_secret, token=value)
        assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"
    assert userinfo_status(provider, token["access_token"]) == 200, "not revoked by another"
    for _ in range(2):
        again = post(provider, "/revoke", client.client_id, secret, token=token["refresh_token"])
        assert again.status_code == 200, "revoked or not, the answer is 200"
    unauthenticated = requests.post(provider.url + "/revoke", data={"token": "x"}, timeout=5)
    assert unauthenticated.status_code in (400, 401)
    assert unauthenticated.json()["error"] == "invalid_client"
    missing = post(provider, "/revoke", client.client_id, secret)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    bad_hint = post(provider, "/revoke", client.client_id, secret, token="x",
                    token_type_hint="id_token")
    assert bad_hint.json()["error"] == "unsupported_token_type"


# --- introspection ---------------------------------------------------------------------------


def introspect(provider: Provider, client_id: str, secret: str | None, token: str, **extra: str
               ) -> dict[str, Any]:
    response = post(provider, "/introspect", client_id, secret, token=token, **extra)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def test_introspection_of_own_tokens(provider: Provider) -> None:
    client, secret = provider.add_client()
    token = offline_grant(provider, client.client_id, secret)
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    info = introspect(provider, client.client_id, secret, token["access_token"])
    assert info == {"active": True, "scope": OFFLINE, "client_id": client.client_id,
                    "sub": claims["sub"], "exp": claims["exp"], "iat": claims["iat"],
                    "iss": provider.url, "aud": provider.url, "jti": claims["jti"],
                    "auth_time": claims["auth_time"], "token_type": "Bearer",
                    "acr": "urn:uauth:acr:sfa", "amr": ["pwd"]}
    info = introspect(provider, client.client_id, secret, token["refresh_token"],
                      token_type_hint="refresh_token")
    assert info["active"] is True and info["token_type"] == "refresh_token"
    assert info["sub"] == claims["sub"] and info["scope"] == OFFLINE
    assert info["exp"] > info["iat"]
    refresh(provider, client.client_id, secret, token["refresh_token"])
    assert introspect(provider, client.client_id, secret, token["refresh_token"]) == {
        "active": False}, "a rotated refresh token is spent"
    for junk in ("garbage", token["id_token"], token["access_token"][:-4] + "AAAA"):
        assert introspect(provider, client.client_id, secret, junk) == {"active": False}


def test_introspection_permissions(provider: Provider) -> None:
    client, secret = provider.add_client()
    other, other_secret = provider.add_client()
    resource_server, rs_secret = provider.add_client(grant_types=["client_credentials"],
                                                     redirect_uris=[], introspect_any_token=True)
    token = offline_grant(provider, client.client_id, secret)
    assert introspect(provider, other.client_id, other_secret, token["access_token"]) == {
        "active": False}, "another client's token"
    info = introspect(provider, resource_server.client_id, rs_secret, token["access_token"])
    assert info["active"] is True and info["client_id"] == client.client_id
    assert introspect(provider, resource_server.client_id, rs_secret,
                      token["refresh_token"]) == {"active": False}, "never a refresh token"
    public, _ = provider.add_client(public=True)
    response = post(provider, "/introspect", public.client_id, None, token=token["access_token"])
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_discovery_advertises_the_token_endpoints(provider: Provider) -> None:
    meta = provider.discovery
    assert meta["revocation_endpoint"] == provider.url + "/revoke"
    assert meta["introspection_endpoint"] == provider.url + "/introspect"
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        meta["grant_types_supported"])
    assert "none" in meta["revocation_endpoint_auth_methods_supported"]
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
