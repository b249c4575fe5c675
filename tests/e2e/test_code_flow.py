"""Authorization code flow end to end, per storage backend, with real OpenID client libraries.

Authlib's OAuth2 client drives the protocol, a scripted browser fills in the pages, and every ID
token is verified with PyJWT against the published JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256

from tests.browser import Browser
from tests.browser import location
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider


def query(url: str) -> dict[str, str]:
    """Response parameters from the query or, for fragment responses, the fragment."""
    parts = urlsplit(url)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


def verify_id_token(provider: Provider, token: dict[str, Any], client_id: str,
                    nonce: str) -> dict[str, Any]:
    """Verify like a relying party: JWKS signature, iss, aud, exp, nonce, at_hash."""
    jwks = jwt.PyJWKClient(provider.discovery["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(token["id_token"])
    claims: dict[str, Any] = jwt.decode(
        token["id_token"], key.key, algorithms=["RS256"], audience=client_id,
        issuer=provider.url, options={"require": ["exp", "iat", "sub", "auth_time"]},
    )
    assert jwt.get_unverified_header(token["id_token"])["kid"] == key.key_id
    assert claims["nonce"] == nonce
    digest = hashlib.sha256(token["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return claims


def run_flow(provider: Provider, session: OAuth2Session, user: str, *, pkce: bool,
             json_body: bool = False) -> tuple[dict[str, Any], str]:
    meta = provider.discovery
    nonce = secrets.token_urlsafe(12)
    verifier = secrets.token_urlsafe(48) if pkce else None
    url, state = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce)
    callback = location(Browser(provider.url).authorize(url, username=user))
    assert callback.startswith(REDIRECT + "?")
    params = query(callback)
    assert params["state"] == state and params["iss"] == provider.url
    if json_body:
        body = {"grant_type": "authorization_code", "code": params["code"],
                "redirect_uri": REDIRECT, "client_id": session.client_id,
                "client_secret": session.client_secret}
        response = requests.post(meta["token_endpoint"], json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json(), nonce
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    return dict(token), nonce


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_logs_a_user_in(provider: Provider, auth_method: str) -> None:
    user = provider.add_user(given_name="Ada", family_name="Lovelace")
    client, secret = provider.add_client(token_endpoint_auth_method=auth_method)
    session = OAuth2Session(client.client_id, secret, scope="openid profile email",
                            redirect_uri=REDIRECT, token_endpoint_auth_method=auth_method)
    token, nonce = run_flow(provider, session, user.username, pkce=False)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 7200
    assert isinstance(token["created_at"], int) and token["scope"] == "openid profile email"
    assert "refresh_token" not in token, "no offline_access, no refresh token"
    claims = verify_id_token(provider, token, client.client_id, nonce)
    assert claims["sub"] == provider.sub(user, client) != user.id, "pairwise by default"
    assert claims["azp"] == client.client_id
    assert "email" not in claims, "scope claims come from userinfo when an access token exists"
    info = requests.get(provider.discovery["userinfo_endpoint"], timeout=5,
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {"sub": claims["sub"], "email": user.profile["email"],
                           "email_verified": False, "name": user.profile["name"],
                           "given_name": "Ada", "family_name": "Lovelace",
                           "preferred_username": user.username, "updated_at": user.updated_at}


def test_public_client_with_s256(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(public=True, scope="openid offline_access")
    assert secret is None
    session = OAuth2Session(client.client_id, scope="openid offline_access", redirect_uri=REDIRECT,
                            token_endpoint_auth_method="none", code_challenge_method="S256")
    token, nonce = run_flow(provider, session, user.username, pkce=True)
    verify_id_token(provider, token, client.client_id, nonce)
    assert token["refresh_token"] and len(token["refresh_token"]) >= 43, "offline_access granted"
    access = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} <= set(access)
    assert access["client_id"] == client.client_id and access["sub"] == provider.sub(user, client)


def test_json_token_request(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    session = OAuth2Session(client.client_id, secret, scope="openid", redirect_uri=REDIRECT)
    token, nonce = run_flow(provider, session, user.username, pkce=False, json_body=True)
    verify_id_token(provider, token, client.client_id, nonce)


# --- negative cases --------------------------------------------------------------------------


def authorize_url(provider: Provider, **params: str) -> str:
    return provider.url + "/authorize?" + urlencode(params)


def get_code(provider: Provider, client_id: str, user: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "xyz", **extra}
    callback = location(Browser(provider.url).authorize(authorize_url(provider, **params),
                                                        username=user))
    return query(callback)["code"]


def token_request(provider: Provider, client_id: str, secret: str | None, **data: str
                  ) -> requests.Response:
    body = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, **data}
    auth = (client_id, secret) if secret else None
    if secret is None:
        body["client_id"] = client_id
    return requests.post(provider.url + "/token", data=body, auth=auth, timeout=10)


def test_pkce_wrong_missing_and_unasked_verifiers_fail(provider: Provider) -> None:
    user = provider.add_user()
    public, _ = provider.add_client(public=True)
    verifier = secrets.token_urlsafe(48)
    code = get_code(provider, public.client_id, user.username, code_challenge=s256(verifier),
                    code_challenge_method="S256")
    wrong = token_request(provider, public.client_id, None, code=code,
                          code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code = get_code(provider, public.client_id, user.username, code_challenge=s256(verifier),
                    code_challenge_method="S256")
    missing = token_request(provider, public.client_id, None, code=code)
    assert missing.json()["error"] == "invalid_grant", "RFC 7636 4.6 (issue 21)"

    code = get_code(provider, public.client_id, user.username, code_challenge=s256(verifier),
                    code_challenge_method="S256")
    short = token_request(provider, public.client_id, None, code=code, code_verifier="a" * 42)
    assert short.json()["error"] == "invalid_request", "verifier under 43 characters"

    for bad, why in (("a" * 129, "over 128 characters"), ("a+/" + "a" * 41, "outside A-Z a-z 0-9 -._~")):
        code = get_code(provider, public.client_id, user.username, code_challenge=s256(bad),
                        code_challenge_method="S256")
        refused = token_request(provider, public.client_id, None, code=code, code_verifier=bad)
        assert refused.json()["error"] == "invalid_request", why
    longest = "A-._~z9" * 18 + "ab"  # 128 characters of the whole alphabet
    code = get_code(provider, public.client_id, user.username, code_challenge=s256(longest),
                    code_challenge_method="S256")
    assert token_request(provider, public.client_id, None, code=code,
                         code_verifier=longest).status_code == 200

    confidential, secret = provider.add_client()
    code = get_code(provider, confidential.client_id, user.username)
    unasked = token_request(provider, confidential.client_id, secret, code=code,
                            code_verifier=verifier)
    assert unasked.json()["error"] == "invalid_request", "verifier without a challenge"


def test_public_client_must_send_a_challenge(provider: Provider) -> None:
    user = provider.add_user()
    public, _ = provider.add_client(public=True)
    response = Browser(provider.url).authorize(authorize_url(
        provider, response_type="code", client_id=public.client_id, redirect_uri=REDIRECT,
        scope="openid", state="s1"), username=user.username)
    params = query(location(response))
    assert params["error"] == "invalid_request" and params["state"] == "s1"
    assert params["iss"] == provider.url


def test_plain_pkce_only_for_clients_allowed_it(provider: Provider) -> None:
    user = provider.add_user()
    verifier = secrets.token_urlsafe(48)
    strict, _ = provider.add_client(public=True)
    refused = Browser(provider.url).authorize(authorize_url(
        provider, response_type="code", client_id=strict.client_id, redirect_uri=REDIRECT,
        scope="openid", code_challenge=verifier, code_challenge_method="plain"),
        username=user.username)
    assert query(location(refused))["error"] == "invalid_request"
    lenient, _ = provider.add_client(public=True, allow_plain_pkce=True)
    code = get_code(provider, lenient.client_id, user.username, code_challenge=verifier,
                    code_challenge_method="plain")
    ok = token_request(provider, lenient.client_id, None, code=code, code_verifier=verifier)
    assert ok.status_code == 200, ok.text


def test_code_reuse_fails_and_revokes_the_first_tokens(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    code = get_code(provider, client.client_id, user.username)
    first = token_request(provider, client.client_id, secret, code=code)
    assert first.status_code == 200
    access = first.json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert requests.get(provider.url + "/userinfo", headers=headers, timeout=5).status_code == 200
    again = token_request(provider, client.client_id, secret, code=code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    after = requests.get(provider.url + "/userinfo", headers=headers, timeout=5)
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]


def test_refresh_token_of_a_replayed_code_is_deleted(provider: Provider) -> None:
    from uauth.storage import hash_key

    user = provider.add_user()
    client, secret = provider.add_client(always_issue_refresh_token=True)
    code = get_code(provider, client.client_id, user.username)
    refresh = token_request(provider, client.client_id, secret, code=code).json()["refresh_token"]
    assert provider.store.find("refresh_token", hash_key(refresh)) is not None
    token_request(provider, client.client_id, secret, code=code)
    assert provider.store.find("refresh_token", hash_key(refresh)) is None


def test_redirect_uri_mismatch_at_authorize_shows_a_page(provider: Provider) -> None:
    client, _ = provider.add_client()
    for bad in (REDIRECT + "/", REDIRECT.upper(), REDIRECT + "x", "https://evil.example/cb",
                REDIRECT + "?a=1"):
        response = requests.get(authorize_url(provider, response_type="code", scope="openid",
                                              client_id=client.client_id, redirect_uri=bad),
                                allow_redirects=False, timeout=5)
        assert response.status_code == 400 and "Location" not in response.headers, bad
        assert "text/html" in response.headers["Content-Type"]
        assert "redirect_uri is not registered" in response.text


def test_openid_request_needs_a_redirect_uri(provider: Provider) -> None:
    client, _ = provider.add_client()
    response = requests.get(authorize_url(provider, response_type="code", scope="openid",
                                          client_id=client.client_id), allow_redirects=False,
                            timeout=5)
    assert response.status_code == 400 and "Location" not in response.headers


def test_redirect_uri_mismatch_at_token_is_invalid_grant(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(redirect_uris=[REDIRECT, REDIRECT + "2"])
    code = get_code(provider, client.client_id, user.username)
    response = token_request(provider, client.client_id, secret, code=code,
                             redirect_uri=REDIRECT + "2")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_unknown_client_never_redirects(provider: Provider) -> None:
    response = requests.get(authorize_url(provider, response_type="code", scope="openid",
                                          client_id="nobody", redirect_uri=REDIRECT),
                            allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "Location" not in response.headers
    assert "<title>" in response.text


def test_wrong_secret_is_401_with_challenge(provider: Provider) -> None:
    user = provider.add_user()
    client, _ = provider.add_client()
    code = get_code(provider, client.client_id, user.username)
    response = token_request(provider, client.client_id, "wrong-secret", code=code)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_unsupported_response_type_and_invalid_scope_redirect(provider: Provider) -> None:
    client, _ = provider.add_client(scope="openid profile")
    for params, error in (({"response_type": "token"}, "unsupported_response_type"),
                          ({"response_type": "bogus"}, "unsupported_response_type"),
                          ({"response_type": "code", "scope": "openid email"}, "invalid_scope"),
                          ({"response_type": "code", "scope": "write"}, "invalid_scope"),
                          ({"response_type": "code", "scope": ""}, "invalid_scope")):
        base = {"client_id": client.client_id, "redirect_uri": REDIRECT, "scope": "openid",
                "state": "st8"}
        response = requests.get(authorize_url(provider, **{**base, **params}),
                                allow_redirects=False, timeout=5)
        got = query(location(response))
        assert got["error"] == error and got["state"] == "st8" and got["iss"] == provider.url


def test_unknown_openid_scopes_are_ignored(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    code = get_code(provider, client.client_id, user.username, scope="profile bogus openid")
    token = token_request(provider, client.client_id, secret, code=code).json()
    assert token["scope"] == "profile openid", "order kept, unknown dropped (OIDC Core 3.1.2.1)"


def test_id_token_is_refused_at_userinfo(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    code = get_code(provider, client.client_id, user.username)
    id_token = token_request(provider, client.client_id, secret, code=code).json()["id_token"]
    response = requests.get(provider.url + "/userinfo", timeout=5,
                            headers={"Authorization": f"Bearer {id_token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    missing = requests.get(provider.url + "/userinfo", timeout=5)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")


def test_userinfo_accepts_post_with_form_token(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    code = get_code(provider, client.client_id, user.username)
    access = token_request(provider, client.client_id, secret, code=code).json()["access_token"]
    response = requests.post(provider.url + "/userinfo", data={"access_token": access}, timeout=5)
    assert response.status_code == 200 and response.json()["sub"] == provider.sub(user, client)


def test_cors_only_for_registered_origins(provider: Provider) -> None:
    provider.add_client(public=True, allowed_origins=["http://localhost:3000"])
    for path in ("/token", "/userinfo", "/jwks.json", "/.well-known/openid-configuration"):
        pre = requests.options(provider.url + path, timeout=5, headers={
            "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
        assert pre.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000", path
        other = requests.options(provider.url + path, timeout=5, headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in other.headers, path
    page = requests.get(provider.url + "/login", headers={"Origin": "http://localhost:3000"},
                        timeout=5)
    assert "Access-Control-Allow-Origin" not in page.headers, "pages never get CORS"
    # the real request after the preflight, which is what a browser app reads
    answer = requests.post(provider.url + "/token", data={"grant_type": "authorization_code"},
                           headers={"Origin": "http://localhost:3000"}, timeout=5)
    assert answer.status_code in (400, 401)
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "WWW-Authenticate" in answer.headers.get("Access-Control-Expose-Headers", "")


def test_consent_deny_redirects_access_denied(provider: Provider) -> None:
    user = provider.add_user()
    client, _ = provider.add_client()
    response = Browser(provider.url).authorize(authorize_url(
        provider, response_type="code", client_id=client.client_id, redirect_uri=REDIRECT,
        scope="openid", state="d1"), username=user.username, consent="deny")
    got = query(location(response))
    assert got["error"] == "access_denied" and got["state"] == "d1" and got["iss"] == provider.url
    assert "code" not in got


def test_consent_is_remembered_and_first_party_skips_it(provider: Provider) -> None:
    user = provider.add_user()
    client, _ = provider.add_client()
    browser = Browser(provider.url)
    url = authorize_url(provider, response_type="code", client_id=client.client_id,
                        redirect_uri=REDIRECT, scope="openid profile")
    assert "code" in query(location(browser.authorize(url, username=user.username)))
    again = browser.http.get(url, allow_redirects=False, timeout=5)
    assert "code" in query(location(again)), "remembered: straight back with a code"
    wider = browser.http.get(url.replace("profile", "profile+email"), timeout=5,
                             allow_redirects=False)
    assert wider.status_code == 200 and 'name="consent"' in wider.text, "a new scope asks again"
    trusted, _ = provider.add_client(first_party=True)
    first = Browser(provider.url)
    first.authorize(authorize_url(provider, response_type="code", client_id=trusted.client_id,
                                  redirect_uri=REDIRECT, scope="openid"), username=user.username)
    assert not any("consent" in page for page in first.pages)


def test_post_authorize_and_parameter_order(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client()
    browser = Browser(provider.url)
    browser.authorize(provider.url + "/login", username=user.username)  # sign in first
    params = [("state", "p1"), ("foo", "bar"), ("scope", "profile openid"),
              ("redirect_uri", REDIRECT), ("client_id", client.client_id),
              ("response_type", "code")]
    page = browser.http.post(provider.url + "/authorize", data=params, allow_redirects=False,
                             timeout=5)
    assert page.status_code == 200
    got = query(location(browser.submit(page, {}, ("consent", "allow"))))
    assert got["state"] == "p1"
    assert token_request(provider, client.client_id, secret, code=got["code"]).status_code == 200


def test_login_failure_does_not_reveal_accounts(provider: Provider) -> None:
    user = provider.add_user()
    texts = []
    for username in (user.username, "no-such-user"):
        browser = Browser(provider.url)
        page = browser.http.get(provider.url + "/login", timeout=5)
        response = browser.submit(page, {"username": username, "password": "wrong-password"})
        assert response.status_code == 401
        assert "Incorrect username or password." in response.text
        texts.append(response.text.split("csrf_token")[0])
    assert texts[0] == texts[1]


def test_token_endpoint_refuses_other_content_types(provider: Provider) -> None:
    response = requests.post(provider.url + "/token", data="grant_type=authorization_code",
                             headers={"Content-Type": "text/plain"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    bad_json = requests.post(provider.url + "/token", json={"grant_type": ["x"]}, timeout=5)
    assert bad_json.json()["error"] == "invalid_request"


def test_discovery_advertises_what_is_implemented(provider: Provider) -> None:
    response = requests.get(provider.url + "/.well-known/openid-configuration", timeout=5)
    meta = response.json()
    assert "max-age" in response.headers["Cache-Control"]
    assert meta["issuer"] == provider.url
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert meta[key].startswith(provider.url + "/")
    assert "code" in meta["response_types_supported"]
    assert meta["code_challenge_methods_supported"][0] == "S256"
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    oauth = requests.get(provider.url + "/.well-known/oauth-authorization-server", timeout=5)
    assert oauth.json() == meta
