"""Single sign-on sessions, RP-initiated logout and back-channel logout, per storage backend.

A scripted browser signs in through real servers (gunicorn with two workers for SQLite and
Redis); relying parties verify ID and logout tokens with PyJWT against the published JWKS, and
receive back-channel logout POSTs on a loopback server the test starts.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.browser import Browser
from tests.browser import csrf_token
from tests.browser import location
from tests.e2e.conftest import REDIRECT
from tests.e2e.conftest import Provider
from tests.e2e.test_code_flow import query
from tests.logout_receiver import SLOW_SECONDS
from tests.logout_receiver import Receiver
from tests.logout_receiver import receiver
from uauth.core.backchannel import EVENT
from uauth.ops.selfcheck import forms
from uauth.storage import hash_key

AFTER_LOGOUT = "http://127.0.0.1:8399/bye"


@pytest.fixture
def rp() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def sign_in(provider: Provider, browser: Browser, client_id: str, secret: str | None,
            username: str, scope: str = "openid") -> dict[str, Any]:
    """One authorization code flow in ``browser``; the token response."""
    url = provider.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": scope, "state": "s", "nonce": "n"})
    code = query(location(browser.authorize(url, username=username)))["code"]
    body = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code": code}
    response = requests.post(provider.url + "/token", data=body, auth=(client_id, secret or ""),
                             timeout=10)
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


def verified(provider: Provider, token: str, audience: str, typ: str) -> dict[str, Any]:
    """Verify as a relying party does: JWKS signature, iss, aud, and the explicit type."""
    key = jwt.PyJWKClient(provider.url + "/jwks.json").get_signing_key_from_jwt(token)
    assert jwt.get_unverified_header(token)["typ"] == typ
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                                        issuer=provider.url, options={"require": ["iat", "exp"]})
    return claims


def signed_in(provider: Provider, browser: Browser) -> bool:
    """True when the provider still knows this browser's user."""
    page = browser.http.get(provider.url + "/", timeout=5)
    return "You are signed in as" in page.text


def logout(browser: Browser, provider: Provider, **params: str) -> requests.Response:
    return browser.http.get(provider.url + "/logout", params=params, allow_redirects=False,
                            timeout=10)


def confirm(browser: Browser, page: requests.Response) -> requests.Response:
    assert page.status_code == 200 and "Sign out?" in page.text, page.text[:300]
    return browser.submit(page, {})


def test_discovery_advertises_logout(provider: Provider) -> None:
    meta = provider.discovery
    assert meta["end_session_endpoint"] == provider.url + "/logout"
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


def test_sid_is_shared_by_the_clients_of_one_session(provider: Provider) -> None:
    user = provider.add_user()
    first, first_secret = provider.add_client(first_party=True)
    second, second_secret = provider.add_client(first_party=True)
    browser = Browser(provider.url)
    one = sign_in(provider, browser, first.client_id, first_secret, user.username)
    seen = len(browser.pages)
    two = sign_in(provider, browser, second.client_id, second_secret, user.username)
    assert not any("/login" in page for page in browser.pages[seen:]), "single sign-on"
    sid = verified(provider, one["id_token"], first.client_id, "JWT")["sid"]
    assert verified(provider, two["id_token"], second.client_id, "JWT")["sid"] == sid
    assert len(sid) >= 22
    other = sign_in(provider, Browser(provider.url), first.client_id, first_secret, user.username)
    assert verified(provider, other["id_token"], first.client_id, "JWT")["sid"] != sid


def test_logout_with_a_hint_redirects_with_state(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(first_party=True, post_logout_redirect_uris=[AFTER_LOGOUT])
    browser = Browser(provider.url)
    token = sign_in(provider, browser, client.client_id, secret, user.username)
    response = logout(browser, provider, id_token_hint=token["id_token"],
                      post_logout_redirect_uri=AFTER_LOGOUT, state="st-1", ui_locales="de en")
    assert location(response) == AFTER_LOGOUT + "?state=st-1"
    assert not signed_in(provider, browser)
    again = Browser(provider.url)
    again.http.cookies = browser.http.cookies
    url = provider.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid"})
    assert "/login" in location(again.http.get(url, allow_redirects=False, timeout=5))


def test_logout_by_post_without_redirect_shows_the_signed_out_page(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(first_party=True)
    browser = Browser(provider.url)
    token = sign_in(provider, browser, client.client_id, secret, user.username)
    response = browser.http.post(provider.url + "/logout", allow_redirects=False, timeout=10,
                                 data={"id_token_hint": token["id_token"], "state": "x"})
    assert response.status_code == 200 and "You are signed out" in response.text
    assert client.name in response.text
    assert not signed_in(provider, browser)


def test_logout_without_a_hint_asks_first(provider: Provider) -> None:
    user = provider.add_user()
    client, _ = provider.add_client(first_party=True, post_logout_redirect_uris=[AFTER_LOGOUT])
    browser = Browser(provider.url)
    browser.authorize(provider.url + "/login", username=user.username)
    page = logout(browser, provider, client_id=client.client_id,
                  post_logout_redirect_uri=AFTER_LOGOUT, state="st-2")
    assert client.name in page.text
    assert signed_in(provider, browser), "nothing happens before the person confirms"
    forged = browser.http.post(provider.url + "/logout", allow_redirects=False, timeout=10,
                               data={**dict(forms(page.text)[0]["fields"]),
                                     "csrf_token": "forged"})
    assert forged.status_code == 400 and signed_in(provider, browser), "CSRF-protected"
    page = logout(browser, provider, client_id=client.client_id,
                  post_logout_redirect_uri=AFTER_LOGOUT, state="st-2")
    assert location(confirm(browser, page)) == AFTER_LOGOUT + "?state=st-2"
    assert not signed_in(provider, browser)
    plain = Browser(provider.url)
    plain.authorize(provider.url + "/login", username=user.username)
    done = confirm(plain, logout(plain, provider))
    assert done.status_code == 200 and "You are signed out" in done.text
    assert not signed_in(provider, plain)


def test_a_hint_for_another_user_asks_first(provider: Provider) -> None:
    alice, bob = provider.add_user(), provider.add_user()
    client, secret = provider.add_client(first_party=True)
    bobs = sign_in(provider, Browser(provider.url), client.client_id, secret, bob.username)
    browser = Browser(provider.url)
    sign_in(provider, browser, client.client_id, secret, alice.username)
    page = logout(browser, provider, id_token_hint=bobs["id_token"])
    assert alice.username in page.text and signed_in(provider, browser)
    assert "You are signed out" in confirm(browser, page).text
    assert not signed_in(provider, browser)


def _tampered(id_token: str) -> str:
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_modified_and_foreign_hints_are_refused(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(first_party=True, post_logout_redirect_uris=[AFTER_LOGOUT])
    browser = Browser(provider.url)
    token = sign_in(provider, browser, client.client_id, secret, user.username)
    real = jwt.decode(token["id_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(token["id_token"])["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = jwt.encode(real, stranger, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
    other_kid = jwt.encode(real, stranger, algorithm="RS256", headers={"kid": "k2", "typ": "JWT"})
    unsigned = jwt.encode(real, "", algorithm="none")
    hints = {"modified": _tampered(token["id_token"]), "foreign key": foreign,
             "unknown kid": other_kid, "alg none": unsigned, "garbage": "not-a-jwt",
             "access token": token["access_token"]}
    for name, hint in hints.items():
        response = logout(browser, provider, id_token_hint=hint,
                          post_logout_redirect_uri=AFTER_LOGOUT, state="s")
        assert response.status_code == 400 and "Location" not in response.headers, name
        assert "cannot be completed" in response.text, name
        assert signed_in(provider, browser), name
    mismatch, _ = provider.add_client(first_party=True)
    response = logout(browser, provider, id_token_hint=token["id_token"],
                      client_id=mismatch.client_id)
    assert response.status_code == 400 and signed_in(provider, browser), "client_id != aud"
    page = logout(browser, provider, id_token_hint=hints["modified"])
    assert "You are signed out" in browser.submit(page, {}).text, "refused, yet can sign out"
    assert not signed_in(provider, browser)


def test_post_logout_redirect_uri_must_match_exactly(provider: Provider) -> None:
    user = provider.add_user()
    client, secret = provider.add_client(first_party=True, post_logout_redirect_uris=[AFTER_LOGOUT])
    browser = Browser(provider.url)
    token = sign_in(provider, browser, client.client_id, secret, user.username)
    for bad in (AFTER_LOGOUT + "?next=/admin", AFTER_LOGOUT + "/", AFTER_LOGOUT.upper(),
                "https://evil.example/bye", REDIRECT, AFTER_LOGOUT + "#x"):
        response = logout(browser, provider, id_token_hint=token["id_token"],
                          post_logout_redirect_uri=bad, state="s")
        assert response.status_code == 400 and "Location" not in response.headers, bad
        assert "not registered" in response.text
        assert signed_in(provider, browser), bad
    unknown = logout(browser, provider, client_id="nobody", post_logout_redirect_uri=AFTER_LOGOUT)
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    ok = logout(browser, provider, id_token_hint=token["id_token"],
                post_logout_redirect_uri=AFTER_LOGOUT)
    assert location(ok) == AFTER_LOGOUT, "no state sent, none added"


def test_backchannel_logout_reaches_every_client_of_the_session(provider: Provider,
                                                                rp: Receiver) -> None:
    user = provider.add_user()
    one, one_secret = provider.add_client(first_party=True, backchannel_logout_uri=rp.url + "/ok")
    two, two_secret = provider.add_client(first_party=True,
                                          backchannel_logout_uri=rp.url + "/ok?rp=2",
                                          backchannel_logout_session_required=True)
    quiet, quiet_secret = provider.add_client(first_party=True)
    unused, _ = provider.add_client(first_party=True, backchannel_logout_uri=rp.url + "/refuse")
    browser = Browser(provider.url)
    tokens = [sign_in(provider, browser, c.client_id, s, user.username)
              for c, s in ((one, one_secret), (two, two_secret), (quiet, quiet_secret))]
    sid = verified(provider, tokens[0]["id_token"], one.client_id, "JWT")["sid"]
    page = confirm(browser, logout(browser, provider))
    assert "You are signed out" in page.text
    received = rp.wait_for("/ok", count=2)
    by_client = {}
    for item in received:
        assert item.content_type == "application/x-www-form-urlencoded"
        audience = jwt.decode(item.logout_token, options={"verify_signature": False})["aud"]
        claims = verified(provider, item.logout_token, audience, "logout+jwt")
        by_client[audience] = claims
        assert claims["events"] == {EVENT: {}}
        assert "nonce" not in claims
        client = one if audience == one.client_id else two
        assert claims["sid"] == sid and claims["sub"] == provider.sub(user, client)
        assert claims["exp"] - claims["iat"] <= 120 and claims["jti"]
    assert set(by_client) == {one.client_id, two.client_id}
    assert by_client[one.client_id]["jti"] != by_client[two.client_id]["jti"]
    assert rp.posts_within("/refuse") == [], (
        f"{unused.client_id} got nothing in the session, so it hears nothing")
    assert len(rp.received) == 2


def test_failing_clients_never_break_or_slow_logout(provider: Provider, rp: Receiver) -> None:
    user = provider.add_user()
    behaviours = ("/fail", "/slow", "/refuse", "/ok")
    clients = [provider.add_client(first_party=True, backchannel_logout_uri=rp.url + path)
               for path in behaviours]
    dead, dead_secret = provider.add_client(first_party=True,
                                            backchannel_logout_uri="http://127.0.0.1:9/gone")
    browser = Browser(provider.url)
    for client, secret in [*clients, (dead, dead_secret)]:
        sign_in(provider, browser, client.client_id, secret, user.username)
    page = logout(browser, provider)
    started = time.monotonic()
    done = confirm(browser, page)
    elapsed = time.monotonic() - started
    assert "You are signed out" in done.text and not signed_in(provider, browser)
    assert elapsed < SLOW_SECONDS / 2, f"logout waited {elapsed:.2f}s for clients"
    assert len(rp.wait_for("/ok")) == 1
    assert len(rp.wait_for("/slow")) == 1
    assert len(rp.wait_for("/refuse")) == 1
    assert len(rp.wait_for("/fail", count=3)) == 3, "5xx is retried twice (default)"
    # A retry of the refused token would have come 0.5 s after it, before the last /fail one.
    assert len(rp.at("/refuse")) == 1, "a 400 means the client refused it: no retry"
    if provider.live is not None:
        failing = clients[0][0].client_id
        log = wait_for_log(provider, f"client {failing} failed after 3 attempt(s): 500")
        assert f"client {dead.client_id} failed after 3 attempt(s)" in log
        assert rp.at("/fail")[0].logout_token not in log, "tokens are never logged"


def wait_for_log(provider: Provider, text: str, timeout: float = 10.0) -> str:
    assert provider.live is not None
    deadline = time.monotonic() + timeout
    while text not in provider.live.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a log file another process writes; no TTL involved
    log = provider.live.log()
    assert text in log
    return log


def test_logout_revokes_the_sessions_grants_except_offline_access(provider: Provider) -> None:
    user = provider.add_user()
    online, online_secret = provider.add_client(first_party=True, always_issue_refresh_token=True)
    offline, offline_secret = provider.add_client(first_party=True)
    browser = Browser(provider.url)
    short = sign_in(provider, browser, online.client_id, online_secret, user.username)
    lasting = sign_in(provider, browser, offline.client_id, offline_secret, user.username,
                      scope="openid offline_access")
    assert short["refresh_token"] and lasting["refresh_token"]
    confirm(browser, logout(browser, provider))
    assert provider.store.find("refresh_token", hash_key(short["refresh_token"])) is None
    assert provider.store.find("refresh_token", hash_key(lasting["refresh_token"])) is not None
    for token, status in ((short, 401), (lasting, 200)):
        info = requests.get(provider.url + "/userinfo", timeout=5,
                            headers={"Authorization": f"Bearer {token['access_token']}"})
        assert info.status_code == status


def test_users_see_and_end_their_own_sessions(provider: Provider, rp: Receiver) -> None:
    user, other = provider.add_user(), provider.add_user()
    client, secret = provider.add_client(name="Wiki", first_party=True,
                                         backchannel_logout_uri=rp.url + "/ok")
    laptop, phone, stranger = Browser(provider.url), Browser(provider.url), Browser(provider.url)
    phone.http.headers["User-Agent"] = "PhoneBrowser/1.0"
    sign_in(provider, laptop, client.client_id, secret, user.username)
    sign_in(provider, phone, client.client_id, secret, user.username)
    stranger.authorize(provider.url + "/login", username=other.username)
    page = laptop.http.get(provider.url + "/account/sessions", timeout=5)
    assert page.status_code == 200
    assert page.text.count("data-sid=") == 2 and "(this browser)" in page.text
    assert "PhoneBrowser/1.0" in page.text and "Wiki" in page.text
    phone_sid = page.text.split("PhoneBrowser/1.0")[0].rsplit('data-sid="', 1)[1].split('"')[0]
    theirs = stranger.http.post(provider.url + "/account/sessions", allow_redirects=False,
                                timeout=5, data={"csrf_token": csrf_token(stranger.http.get(
                                    provider.url + "/account/sessions", timeout=5).text),
                                    "sid": phone_sid})
    assert theirs.status_code == 302 and signed_in(provider, phone), "only your own sessions"
    ended = laptop.http.post(provider.url + "/account/sessions", allow_redirects=False,
                             timeout=5, data={"csrf_token": csrf_token(page.text),
                                              "sid": phone_sid})
    assert ended.status_code == 302
    assert not signed_in(provider, phone) and signed_in(provider, laptop)
    assert rp.wait_for("/ok")[0].logout_token
    page = laptop.http.get(provider.url + "/account/sessions", timeout=5)
    assert page.text.count("data-sid=") == 1
    assert "Sign in" in requests.get(provider.url + "/account/sessions", timeout=5).text


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["sqlite", "redis"], indirect=True)
def test_admin_logs_a_user_out_everywhere_across_workers(provider: Provider,
                                                         rp: Receiver) -> None:
    assert provider.live is not None and provider.live.workers == 2
    user, bystander = provider.add_user(), provider.add_user()
    client, secret = provider.add_client(first_party=True, backchannel_logout_uri=rp.url + "/ok")
    browsers = [Browser(provider.url) for _ in range(3)]
    tokens = [sign_in(provider, b, client.client_id, secret, user.username) for b in browsers]
    other = Browser(provider.url)
    sign_in(provider, other, client.client_id, secret, bystander.username)
    for _ in range(4):  # sync workers take one connection each: both workers see the sessions
        assert all(signed_in(provider, b) for b in browsers)
    result = provider.live.cli("user", "logout", user.username)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ended 3 session(s) of {user.username}"
    for _ in range(4):
        assert not any(signed_in(provider, b) for b in browsers)
    assert signed_in(provider, other), "other users keep their sessions"
    sids = {verified(provider, t["id_token"], client.client_id, "JWT")["sid"] for t in tokens}
    got = {jwt.decode(r.logout_token, options={"verify_signature": False})["sid"]
           for r in rp.wait_for("/ok", count=3)}
    assert got == sids, "the CLI delivered a logout token per session before exiting"
    missing = provider.live.cli("user", "logout", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    disabled = provider.live.cli("user", "disable", bystander.username)
    assert disabled.returncode == 0 and "ended 1 session(s)" in disabled.stdout
    assert not signed_in(provider, other), "disabling a user ends their sessions"
