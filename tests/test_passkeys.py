"""Passkeys in process with a software authenticator (real keys and signatures): registration
on /account, a passwordless sign-in whose tokens say hwk/swk + user + mfa, a passkey as the
second factor, and every refusal the issue names, on every storage backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.conftest import FakeClock
from tests.soft_authenticator import SoftAuthenticator
from tests.test_mfa import SECOND
from tests.test_mfa import authorize_url
from tests.test_mfa import body
from tests.test_mfa import code_of
from tests.test_mfa import fresh
from tests.test_mfa import jwks_verify
from uauth.core.mfa import ACR_MFA
from uauth.core.records import CHALLENGE
from uauth.core.records import PASSKEY
from uauth.extension import get_state
from uauth.storage import Store

ISSUER = "http://localhost:5000"


@pytest.fixture
def d(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_ISSUER=ISSUER))
    driver.user()
    driver.user("bob")
    return driver


def page_csrf(d: Driver, url: str) -> str:
    page = d.http.get(url)
    assert page.status_code == 200, page.text
    assert "passkeys.js" in page.text
    match = re.search(r'data-csrf="([^"]+)"', page.text)
    assert match
    return match.group(1)


def options(d: Driver, purpose: str, csrf: str) -> dict[str, Any]:
    response = d.http.post(f"/passkeys/options/{purpose}", headers={"X-CSRFToken": csrf})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return body(response)


def register(d: Driver, authenticator: SoftAuthenticator, name: str = "Laptop") -> Any:
    csrf = page_csrf(d, "/account")
    created = authenticator.create(options(d, "register", csrf))
    return d.http.post("/passkeys/register", headers={"X-CSRFToken": csrf},
                       json={"name": name, "credential": created})


def passkey_login(d: Driver, authenticator: SoftAuthenticator, query: str = "", **kw: Any
                  ) -> Any:
    csrf = page_csrf(d, "/login" + query)
    assertion = authenticator.get(options(d, "login", csrf), **kw)
    return d.http.post("/passkeys/login" + query, headers={"X-CSRFToken": csrf},
                       data=json.dumps(assertion), content_type="application/json")


def test_register_then_sign_in_with_the_passkey_only(d: Driver) -> None:
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    d.login()
    registered = register(d, authenticator)
    assert registered.status_code == 200 and body(registered)["redirect"] == "/account"
    account = d.http.get("/account")
    assert "Laptop" in account.text and "Added" in account.text
    client, secret = d.client(first_party=True)

    browser = fresh(d)
    start = browser.http.get(authorize_url(client.client_id))
    next_query = "?" + start.headers["Location"].split("?", 1)[1]
    signed_in = passkey_login(browser, authenticator, next_query)
    assert signed_in.status_code == 200, signed_in.text
    code = code_of(browser.http.get(body(signed_in)["redirect"]))
    token = browser.token(client.client_id, secret, code=code)
    claims = jwks_verify(d.app, body(token)["id_token"], client.client_id)
    assert claims["amr"] == ["hwk", "user", "mfa"] and claims["acr"] == ACR_MFA
    assert "last used" in browser.http.get("/account").text


def test_a_synced_passkey_says_swk(d: Driver) -> None:
    authenticator = SoftAuthenticator(ISSUER, "localhost", backup_eligible=True)
    d.login()
    assert register(d, authenticator).status_code == 200
    browser = fresh(d)
    assert passkey_login(browser, authenticator).status_code == 200
    client, secret = d.client(first_party=True)
    code = code_of(browser.http.get(authorize_url(client.client_id)))
    claims = jwks_verify(d.app, body(browser.token(client.client_id, secret, code=code))
                         ["id_token"], client.client_id)
    assert claims["amr"] == ["swk", "user", "mfa"]


def test_refusals(d: Driver, log_lines: Any) -> None:
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    d.login()
    assert register(d, authenticator).status_code == 200
    assert passkey_login(fresh(d), authenticator).status_code == 200

    # a counter that goes backwards: refused and audited
    backwards = passkey_login(fresh(d), authenticator, sign_count=1)
    assert backwards.status_code == 400 and "not accepted" in body(backwards)["error"]
    assert "passkey.counter_regressed" in log_lines.getvalue()

    # a response for another origin
    wrong_origin = passkey_login(fresh(d), authenticator, origin="http://evil.example")
    assert wrong_origin.status_code == 400

    # a challenge from another session
    one, other = fresh(d), fresh(d)
    csrf_one = page_csrf(one, "/login")
    stolen = options(one, "login", csrf_one)
    csrf_other = page_csrf(other, "/login")
    options(other, "login", csrf_other)
    foreign = other.http.post("/passkeys/login", headers={"X-CSRFToken": csrf_other},
                              data=json.dumps(authenticator.get(stolen)),
                              content_type="application/json")
    assert foreign.status_code == 400

    # a replayed response: the challenge is consumed
    browser = fresh(d)
    csrf = page_csrf(browser, "/login")
    assertion = json.dumps(authenticator.get(options(browser, "login", csrf)))
    first = browser.http.post("/passkeys/login", headers={"X-CSRFToken": csrf}, data=assertion,
                              content_type="application/json")
    assert first.status_code == 200
    again = fresh(d)
    again_csrf = page_csrf(again, "/login")
    options(again, "login", again_csrf)
    replay = again.http.post("/passkeys/login", headers={"X-CSRFToken": again_csrf},
                             data=assertion, content_type="application/json")
    assert replay.status_code == 400

    # no CSRF token, garbage
    assert fresh(d).http.post("/passkeys/options/login").status_code == 400
    junk = fresh(d)
    junk_csrf = page_csrf(junk, "/login")
    options(junk, "login", junk_csrf)
    garbage = junk.http.post("/passkeys/login", headers={"X-CSRFToken": junk_csrf},
                             data="{not json", content_type="application/json")
    assert garbage.status_code == 400 and "error" in body(garbage)
    assert "passkey.failed" in log_lines.getvalue()


def test_a_removed_passkey_no_longer_signs_in(d: Driver) -> None:
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    d.login()
    register(d, authenticator)
    account = d.http.get("/account")
    factor = re.search(r'name="factor" value="([^"]+)"', account.text)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', account.text)
    assert factor and csrf
    removed = d.http.post("/account/factors/remove", data={
        "csrf_token": csrf.group(1), "factor": factor.group(1), "confirm": "password123"},
        follow_redirects=True)
    assert "was removed" in removed.text
    with d.app.app_context():
        assert list(get_state().store.scan(PASSKEY)) == []
    assert passkey_login(fresh(d), authenticator).status_code == 400


def test_a_passkey_as_second_factor_and_not_another_users(d: Driver) -> None:
    alice_key = SoftAuthenticator(ISSUER, "localhost")
    bob_key = SoftAuthenticator(ISSUER, "localhost")
    d.login()
    register(d, alice_key)
    bob = fresh(d)
    bob.login("bob")
    register(bob, bob_key)

    browser = fresh(d)
    step = browser.login()
    assert step.headers["Location"].startswith(SECOND)
    csrf = page_csrf(browser, step.headers["Location"])
    ask = options(browser, "second-factor", csrf)
    assert ask["allowCredentials"], "the person's own passkeys only"
    foreign = browser.http.post("/passkeys/login?second=1", headers={"X-CSRFToken": csrf},
                                data=json.dumps(bob_key.get(ask)),
                                content_type="application/json")
    assert foreign.status_code == 400
    ask = options(browser, "second-factor", csrf)
    done = browser.http.post("/passkeys/login?second=1&next=/account",
                             headers={"X-CSRFToken": csrf},
                             data=json.dumps(alice_key.get(ask)), content_type="application/json")
    assert done.status_code == 200 and body(done)["redirect"] == "/account"
    assert browser.http.get("/account").status_code == 200


def test_challenges_are_short_lived(d: Driver, clock: FakeClock) -> None:
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    d.login()
    register(d, authenticator)
    browser = fresh(d)
    csrf = page_csrf(browser, "/login")
    ask = options(browser, "login", csrf)
    with d.app.app_context():
        assert len(list(get_state().store.scan(CHALLENGE))) >= 1
    clock.advance(600)
    late = browser.http.post("/passkeys/login", headers={"X-CSRFToken": csrf},
                             data=json.dumps(authenticator.get(ask)),
                             content_type="application/json")
    assert late.status_code == 400


def test_the_login_page_offers_autofill(d: Driver) -> None:
    page = d.http.get("/login")
    assert 'autocomplete="username webauthn"' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script src=" in page.text and "<script>" not in page.text


def test_passkey_sign_ins_are_throttled_per_address_and_per_account(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """A refused assertion counts toward the passkey's account and the address, anything else
    toward the address: past the free failures the next attempt waits, the right passkey too."""
    d = Driver.of(make_app(tmp_path, store, clock, UAUTH_ISSUER=ISSUER,
                           UAUTH_THROTTLE_FREE_FAILURES=1, UAUTH_THROTTLE_LOCK_FAILURES=20,
                           UAUTH_THROTTLE_IP_FREE_FAILURES=1, UAUTH_THROTTLE_IP_LOCK_FAILURES=20))
    d.user()
    d.login()
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    assert register(d, authenticator).status_code == 200

    def attempt(address: str, **kw: Any) -> Any:
        browser = fresh(d)
        browser.http.environ_base["REMOTE_ADDR"] = address
        return passkey_login(browser, authenticator, **kw)

    # the account: refused assertions (another origin), each from another address
    for address in ("10.0.0.1", "10.0.0.2"):
        assert attempt(address, origin="http://evil.example").status_code == 400
    blocked = attempt("10.0.0.3")
    assert blocked.status_code == 429 and "wait 1 second before" in body(blocked)["error"]
    clock.advance(2)
    assert attempt("10.0.0.3").status_code == 200, "the account's wait is over"

    def junk(address: str) -> int:
        """A body that is no passkey response at all: it names no account."""
        browser = fresh(d)
        browser.http.environ_base["REMOTE_ADDR"] = address
        csrf = page_csrf(browser, "/login")
        options(browser, "login", csrf)
        return int(browser.http.post("/passkeys/login", headers={"X-CSRFToken": csrf},
                                     data="{not json", content_type="application/json"
                                     ).status_code)

    # the address
    assert [junk("10.0.0.9"), junk("10.0.0.9"), junk("10.0.0.9")] == [400, 400, 429]
    blocked = attempt("10.0.0.9")
    assert blocked.status_code == 429, "the address waits, whoever's passkey it brings"
    assert attempt("10.0.0.4").status_code == 200, "another address does not"
