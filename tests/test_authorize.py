"""The authorization endpoint and login page, in process (injected clock, special settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.app_driver import own_users
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.audit import CONSENT_GIVEN
from uauth.core.records import AUDIT_EVENT
from uauth.storage import Store


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(tmp_path, store, clock))


def test_codes_expire_after_their_ttl(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client()
    driver.login()
    code = driver.code(client.client_id)
    clock.advance(61)
    response = driver.token(client.client_id, secret, code=code)
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(driver: Driver) -> None:
    driver.user()
    client, _ = driver.client()
    other, other_secret = driver.client()
    driver.login()
    code = driver.code(client.client_id)
    response = driver.token(other.client_id, other_secret, code=code)
    assert json_of(response)["error"] == "invalid_grant"


def test_require_pkce_applies_to_confidential_clients(tmp_path: Path, store: Store,
                                                      clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_REQUIRE_PKCE=True))
    driver.user()
    client, _ = driver.client()
    driver.login()
    response = driver.authorize(response_type="code", client_id=client.client_id,
                                redirect_uri="http://127.0.0.1:8399/cb", scope="openid")
    assert "error=invalid_request" in response.headers["Location"]


def test_plain_pkce_can_be_switched_off_globally(tmp_path: Path, store: Store,
                                                 clock: FakeClock) -> None:
    app = make_app(tmp_path, store, clock, UAUTH_ALLOW_PLAIN_PKCE=False)
    driver = Driver.of(app)
    driver.user()
    client, _ = driver.client(public=True, allow_plain_pkce=True)
    driver.login()
    response = driver.authorize(response_type="code", client_id=client.client_id,
                                redirect_uri="http://127.0.0.1:8399/cb", scope="openid",
                                code_challenge="a" * 43, code_challenge_method="plain")
    assert "error=invalid_request" in response.headers["Location"]
    assert json_of(driver.http.get("/.well-known/openid-configuration"))[
        "code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)", "http:/x"])
def test_login_next_never_leaves_the_provider(driver: Driver, target: str) -> None:
    driver.user()
    response = driver.login(next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/", target


def test_login_next_inside_the_provider_is_followed(driver: Driver) -> None:
    driver.user()
    response = driver.login(next_url="/authorize?x=1")
    assert response.headers["Location"] == "/authorize?x=1"


def test_login_form_needs_its_csrf_token(driver: Driver) -> None:
    driver.user()
    response = driver.http.post("/login", data={"username": "alice", "password": "password123"})
    assert response.status_code == 400 and "expired" in response.text


def test_consent_decision_needs_its_csrf_token(driver: Driver) -> None:
    driver.user()
    client, _ = driver.client()
    driver.login()
    response = driver.http.post("/authorize", data={
        "response_type": "code", "client_id": client.client_id, "consent": "allow",
        "redirect_uri": "http://127.0.0.1:8399/cb", "scope": "openid"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_sessions_end_after_their_lifetime(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    clock.advance(14 * 24 * 3600 + 1)
    response = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "scope": "openid",
        "redirect_uri": "http://127.0.0.1:8399/cb"})
    assert response.headers["Location"].startswith("/login?next=")


def test_disabled_users_cannot_log_in(driver: Driver) -> None:
    user = driver.user()
    with driver.app.app_context():

        user.disabled = True
        own_users().save(user)
    assert driver.login().status_code == 401


def test_logout_clears_the_session(driver: Driver) -> None:
    driver.user()
    driver.login()
    page = driver.http.get("/logout")
    assert page.status_code == 200 and "Sign out?" in page.text

    token = csrf_token(page.text)
    done = driver.http.post("/logout", data={"csrf_token": token})
    assert "You are signed out" in done.text
    assert "Sign in" in driver.http.get("/").text


def test_client_secrets_are_stored_hashed(driver: Driver) -> None:
    client, secret = driver.client()
    assert secret is not None and secret not in str(client.to_record())
    assert client.check_client_secret(secret) and not client.check_client_secret(secret + "x")


def test_an_empty_login_form_says_what_is_missing(driver: Driver) -> None:

    page = driver.http.get("/login")
    token = csrf_token(page.text)
    response = driver.http.post("/login", data={"csrf_token": token, "username": "",
                                                "password": ""})
    assert response.status_code == 400 and "Enter your username and password." in response.text


def test_plain_oauth_may_omit_the_redirect_uri_only_with_one_registered(driver: Driver) -> None:
    driver.user()
    single, _ = driver.client(first_party=True, scope="profile")
    several, _ = driver.client(first_party=True, scope="profile",
                               redirect_uris=["http://127.0.0.1:8399/cb",
                                              "http://127.0.0.1:8399/other"])
    driver.login()
    ok = driver.authorize(response_type="code", client_id=single.client_id, scope="profile")
    assert ok.status_code == 302
    assert ok.headers["Location"].startswith("http://127.0.0.1:8399/cb?code=")
    ambiguous = driver.authorize(response_type="code", client_id=several.client_id,
                                 scope="profile")
    assert ambiguous.status_code == 400 and "Location" not in ambiguous.headers
    assert "the client registered several" in ambiguous.text


def consent_page(driver: Driver, client_id: str, scope: str, response_type: str = "code"
                 ) -> Any:
    """/authorize for ``scope``: the consent page when the person has not allowed it all."""
    return driver.http.get("/authorize", query_string={
        "response_type": response_type, "client_id": client_id, "scope": scope,
        "redirect_uri": "http://127.0.0.1:8399/cb", "nonce": "n", "state": "s"})


@pytest.mark.parametrize("response_type", ["code", "id_token"])
def test_consent_given_adds_to_what_was_allowed_before_and_is_audited(
        driver: Driver, store: Store, response_type: str) -> None:
    """The consent written with the response (in its batch, for a code) is merged with what
    the request read of the earlier one: allowing ``email`` after ``profile`` covers both."""
    driver.user()
    client, _ = driver.client(response_types=["code", "id_token"],
                              grant_types=["authorization_code", "implicit"])
    driver.login()
    for scope in ("openid profile", "openid email"):
        page = consent_page(driver, client.client_id, scope, response_type)
        assert 'name="consent"' in page.text, scope
        assert driver.authorize(response_type=response_type, client_id=client.client_id,
                                scope=scope, redirect_uri="http://127.0.0.1:8399/cb",
                                nonce="n", state="s").status_code == 302
    both = consent_page(driver, client.client_id, "openid profile email", response_type)
    assert both.status_code == 302, "both consents, merged: no page"
    given = [record for _, record in store.scan(AUDIT_EVENT) if record["event"] == CONSENT_GIVEN]
    assert sorted(record["scope"] for record in given) == ["openid email", "openid profile"]
