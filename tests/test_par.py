"""Pushed authorization requests (RFC 9126) in process, where the clock can move."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.mfa import ACR_MFA
from uauth.core.par import URN_PREFIX
from uauth.storage import Store

REQUEST = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid", "state": "st",
           "nonce": "n"}


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(tmp_path, store, clock))


def push(driver: Driver, who: str, secret: str | None, **params: str) -> Any:
    headers = basic_auth(who, secret) if secret else {}
    data = {**REQUEST, **params}
    if not secret:
        data["client_id"] = who
    return driver.http.post("/par", data=data, headers=headers)


def query(response: Any) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_a_pushed_request_is_answered_once(driver: Driver) -> None:
    driver.user()
    client, secret = driver.client()
    pushed = push(driver, client.client_id, secret)
    assert pushed.status_code == 201 and pushed.headers["Cache-Control"] == "no-store"
    request_uri = json_of(pushed)["request_uri"]
    assert request_uri.startswith(URN_PREFIX) and 60 <= json_of(pushed)["expires_in"] <= 90
    sent = {"client_id": client.client_id, "request_uri": request_uri}
    login = driver.http.get("/authorize", query_string=sent)
    assert login.headers["Location"].startswith("/login?next=")
    assert "redirect_uri" not in login.headers["Location"], "the pushed parameters stay out"
    back = driver.login_at(login.headers["Location"])
    assert parse_qs(urlsplit(back.headers["Location"]).query)["request_uri"] == [request_uri]
    got = query(driver.authorize(**sent))  # the consent page carries the request_uri too
    assert got["state"] == "st" and "code" in got
    token = driver.token(client.client_id, secret, code=got["code"])
    assert token.status_code == 200 and "id_token" in json_of(token)
    again = driver.http.get("/authorize", query_string=sent)
    assert again.status_code == 400 and "invalid_request_uri" in again.text


def test_a_request_uri_expires_unused(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    driver.login()
    client, secret = driver.client(first_party=True)
    request_uri = json_of(push(driver, client.client_id, secret))["request_uri"]
    clock.advance(61)
    late = driver.http.get("/authorize", query_string={"client_id": client.client_id,
                                                       "request_uri": request_uri})
    assert late.status_code == 400 and "invalid_request_uri" in late.text


def test_a_request_uri_is_bound_to_its_client(driver: Driver) -> None:
    driver.user()
    driver.login()
    client, secret = driver.client(first_party=True)
    other, _ = driver.client(first_party=True)
    request_uri = json_of(push(driver, client.client_id, secret))["request_uri"]
    stolen = driver.http.get("/authorize", query_string={"client_id": other.client_id,
                                                         "request_uri": request_uri})
    assert stolen.status_code == 400 and "invalid_request_uri" in stolen.text
    own = driver.http.get("/authorize", query_string={"client_id": client.client_id,
                                                      "request_uri": request_uri})
    assert "code" in query(own), "the wrong client burnt nothing"


def test_par_authenticates_the_client_and_validates_the_request(driver: Driver) -> None:
    client, secret = driver.client()
    assert push(driver, client.client_id, "wrong").status_code == 401
    bad = [({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
           ({"scope": "write"}, "invalid_scope"),
           ({"response_type": "token"}, "unsupported_response_type"),
           ({"request_uri": URN_PREFIX + "x"}, "invalid_request"),
           ({"client_id": "someone-else"}, "invalid_request")]
    for params, error in bad:
        response = push(driver, client.client_id, secret, **params)
        assert response.status_code == 400 and json_of(response)["error"] == error, params
    public, _ = driver.client(public=True)
    no_pkce = push(driver, public.client_id, None)
    assert json_of(no_pkce)["error"] == "invalid_request", "PKCE is checked as at /authorize"
    ok = push(driver, public.client_id, None, code_challenge="c" * 43,
              code_challenge_method="S256")
    assert ok.status_code == 201


def test_a_client_that_must_push_cannot_send_the_query(driver: Driver) -> None:
    driver.user()
    driver.login()
    client, secret = driver.client(first_party=True, require_pushed_authorization_requests=True)
    refused = driver.authorize(client_id=client.client_id, **REQUEST)
    assert query(refused)["error"] == "invalid_request"
    request_uri = json_of(push(driver, client.client_id, secret))["request_uri"]
    pushed = driver.http.get("/authorize", query_string={"client_id": client.client_id,
                                                         "request_uri": request_uri})
    assert "code" in query(pushed)


def test_par_can_be_required_of_every_client(tmp_path: Path, store: Store,
                                             clock: FakeClock) -> None:
    driver = Driver.of(make_app(tmp_path, store, clock, UAUTH_REQUIRE_PAR=True))
    driver.user()
    driver.login()
    client, _ = driver.client(first_party=True)
    assert query(driver.authorize(client_id=client.client_id, **REQUEST))["error"] == \
        "invalid_request"
    meta = json_of(driver.http.get("/.well-known/openid-configuration"))
    assert meta["require_pushed_authorization_requests"] is True
    assert meta["pushed_authorization_request_endpoint"] == "http://localhost/par"


def test_a_pushed_acr_request_asks_for_the_second_factor(driver: Driver) -> None:
    """``acr_values`` and ``prompt`` travel inside the pushed request, not the query: step-up
    still applies (OIDC Core §3.1.2.1), and ``prompt=none`` still answers without a page."""
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    pushed = json_of(push(driver, client.client_id, secret, acr_values=ACR_MFA))
    step = driver.http.get("/authorize", query_string={"client_id": client.client_id,
                                                       "request_uri": pushed["request_uri"]})
    assert step.status_code == 302 and step.headers["Location"].startswith("/login/enrol")
    silent = json_of(push(driver, client.client_id, secret, acr_values=ACR_MFA, prompt="none"))
    answer = query(driver.http.get("/authorize", query_string={
        "client_id": client.client_id, "request_uri": silent["request_uri"]}))
    assert answer["error"] == "interaction_required" and answer["state"] == "st"


def test_a_request_uri_lives_for_the_interaction_once_a_page_is_shown(
        driver: Driver, clock: FakeClock) -> None:
    """``UAUTH_PAR_TTL`` bounds the time to reach /authorize; signing in may take longer."""
    driver.user()
    client, secret = driver.client(first_party=True)
    request_uri = json_of(push(driver, client.client_id, secret))["request_uri"]
    sent = {"client_id": client.client_id, "request_uri": request_uri}
    login = driver.http.get("/authorize", query_string=sent)
    assert login.headers["Location"].startswith("/login?next=")
    clock.advance(600)  # ten minutes on the login page
    back = driver.login_at(login.headers["Location"])
    got = query(driver.http.get(back.headers["Location"]))
    assert got["state"] == "st" and "code" in got


def test_a_pushed_request_denied_at_once_cannot_be_answered_again(driver: Driver) -> None:
    """The person refuses on their first visit (a consent POST without the page before it):
    the denial spends the request_uri, and nothing keeps it alive after."""
    driver.user()
    client, secret = driver.client()
    driver.login()
    request_uri = json_of(push(driver, client.client_id, secret))["request_uri"]
    sent = {"client_id": client.client_id, "request_uri": request_uri}
    token = csrf_token(driver.http.get("/account").text)
    denied = query(driver.http.post("/authorize", data={**sent, "csrf_token": token,
                                                        "consent": "deny"}))
    assert denied["error"] == "access_denied" and denied["state"] == "st"
    again = driver.http.get("/authorize", query_string=sent)
    assert again.status_code == 400 and "invalid_request_uri" in again.text
