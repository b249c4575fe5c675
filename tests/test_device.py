"""The device authorization grant (RFC 8628) in process: the clock drives polling and expiry."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.test_mfa import enrol_totp
from uauth.core.device import USER_CODE_ALPHABET
from uauth.core.mfa import ACR_MFA
from uauth.storage import Store

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    d = Driver.of(make_app(tmp_path, store, clock))
    d.user()
    return d


def device_client(driver: Driver, **kwargs: Any) -> tuple[str, str | None]:
    kwargs.setdefault("public", True)
    client, secret = driver.client(grant_types=[DEVICE, "refresh_token"], redirect_uris=[],
                                   **kwargs)
    return client.client_id, secret


def start(driver: Driver, client_id: str, secret: str | None = None,
          scope: str | None = "openid offline_access") -> Any:
    headers = basic_auth(client_id, secret) if secret else {}
    data = {} if secret else {"client_id": client_id}
    if scope is not None:
        data["scope"] = scope
    return driver.http.post("/device_authorization", data=data, headers=headers)


def poll(driver: Driver, client_id: str, device_code: str, secret: str | None = None) -> Any:
    headers = basic_auth(client_id, secret) if secret else {}
    data = {"grant_type": DEVICE, "device_code": device_code}
    if not secret:
        data["client_id"] = client_id
    return driver.http.post("/token", data=data, headers=headers)


def decide(driver: Driver, user_code: str, decision: str = "allow") -> Any:
    """The person's part: the confirmation page (arriving with the code), then a button."""
    page = driver.http.get("/device", query_string={"user_code": user_code})
    assert page.status_code == 200, page.text[:300]
    return driver.http.post("/device", data={"csrf_token": csrf_token(page.text),
                                             "user_code": user_code, "decision": decision})


def test_the_device_flow_from_code_to_tokens(driver: Driver, clock: FakeClock) -> None:
    client_id, _ = device_client(driver)
    started = start(driver, client_id)
    assert started.status_code == 200 and started.headers["Cache-Control"] == "no-store"
    body = json_of(started)
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}",
                        body["user_code"])
    assert body["verification_uri"] == "http://localhost/device"
    assert body["verification_uri_complete"].endswith("user_code=" + body["user_code"])
    assert body["expires_in"] == 600 and body["interval"] == 5
    pending = poll(driver, client_id, body["device_code"])
    assert pending.status_code == 400 and json_of(pending)["error"] == "authorization_pending"
    clock.advance(1)
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "slow_down"
    clock.advance(9)
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "slow_down", \
        "the interval grew by 5 s to 10: polling after 9 s is too fast"
    clock.advance(15)
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "authorization_pending"

    driver.login()
    page = driver.http.get("/device", query_string={"user_code": body["user_code"]})
    assert f'data-user-code="{body["user_code"]}"' in page.text
    assert 'data-scope="offline_access"' in page.text and "App" in page.text
    done = decide(driver, body["user_code"])
    assert 'data-device-result="approved"' in done.text
    clock.advance(20)
    tokens = poll(driver, client_id, body["device_code"])
    assert tokens.status_code == 200, json_of(tokens)
    assert tokens.headers["Cache-Control"] == "no-store"
    assert {"access_token", "id_token", "refresh_token"} <= set(json_of(tokens))
    clock.advance(20)
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "invalid_grant", \
        "a device code is redeemed once"
    refreshed = driver.http.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": json_of(tokens)["refresh_token"],
        "client_id": client_id})
    assert refreshed.status_code == 200, json_of(refreshed)


def test_a_denied_request_answers_access_denied(driver: Driver, clock: FakeClock) -> None:
    client_id, _ = device_client(driver)
    body = json_of(start(driver, client_id))
    driver.login()
    assert 'data-device-result="denied"' in decide(driver, body["user_code"], "deny").text
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "access_denied"


def test_an_unused_device_code_expires(driver: Driver, clock: FakeClock) -> None:
    client_id, _ = device_client(driver)
    body = json_of(start(driver, client_id))
    clock.advance(601)
    assert json_of(poll(driver, client_id, body["device_code"]))["error"] == "expired_token"
    driver.login()
    page = driver.http.get("/device", query_string={"user_code": body["user_code"]})
    assert page.status_code == 400 and "expired" in page.text


def test_user_codes_are_case_and_dash_insensitive_and_decide_once(driver: Driver) -> None:
    client_id, _ = device_client(driver)
    body = json_of(start(driver, client_id))
    driver.login()
    typed = body["user_code"].replace("-", " ").lower()
    entry = driver.http.get("/device")
    page = driver.http.post("/device", data={"csrf_token": csrf_token(entry.text),
                                             "user_code": typed})
    assert f'data-user-code="{body["user_code"]}"' in page.text
    assert 'data-device-result="approved"' in decide(driver, typed).text
    again = driver.http.post("/device", data={"csrf_token": csrf_token(entry.text),
                                              "user_code": body["user_code"],
                                              "decision": "deny"})
    assert again.status_code == 400
    assert poll(driver, client_id, body["device_code"]).status_code == 200, \
        "the first decision stands"


def test_guessing_user_codes_is_throttled(driver: Driver) -> None:
    driver.login()
    entry = driver.http.get("/device")
    token = csrf_token(entry.text)
    answers = [driver.http.post("/device", data={"csrf_token": token, "user_code": "BCDF-GHJK"})
               for _ in range(12)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 400 and statuses[-1] == 429, statuses
    assert re.search(r"please wait \d+ seconds? before trying again", answers[-1].text)
    assert " 1 seconds" not in answers[-1].text


def test_the_device_page_needs_a_signed_in_person_and_its_csrf_token(driver: Driver) -> None:
    page = driver.http.get("/device?user_code=BCDF-GHJK")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")
    assert "user_code" in html.unescape(page.headers["Location"])
    driver.login()
    forged = driver.http.post("/device", data={"user_code": "BCDF-GHJK", "decision": "allow"})
    assert forged.status_code == 400 and "expired" in forged.text


def test_only_clients_registered_for_the_grant_may_start_it(driver: Driver) -> None:
    web, secret = driver.client()
    refused = start(driver, web.client_id, secret)
    assert refused.status_code == 400 and json_of(refused)["error"] == "unauthorized_client"
    confidential, secret = device_client(driver, public=False)
    assert start(driver, confidential, "wrong").status_code == 401
    assert start(driver, confidential, secret).status_code == 200
    assert json_of(start(driver, confidential, secret, scope="write"))["error"] == "invalid_scope"
    meta = json_of(driver.http.get("/.well-known/openid-configuration"))
    assert meta["device_authorization_endpoint"] == "http://localhost/device_authorization"
    assert DEVICE in meta["grant_types_supported"]


def test_without_scope_the_device_gets_the_clients_registered_scope(driver: Driver) -> None:
    """RFC 8628 §3.1: ``scope`` is OPTIONAL; the default is the client's registered scope
    (RFC 6749 §3.3), shown to the person and granted, not refused."""
    client_id, _ = device_client(driver, scope="openid email")
    started = start(driver, client_id, scope=None)
    assert started.status_code == 200, started.text
    body = json_of(started)
    driver.login()
    page = driver.http.get("/device", query_string={"user_code": body["user_code"]})
    assert 'data-scope="openid"' in page.text and 'data-scope="email"' in page.text
    assert 'data-scope="profile"' not in page.text
    decide(driver, body["user_code"])
    token = poll(driver, client_id, body["device_code"])
    assert token.status_code == 200 and json_of(token)["scope"] == "openid email"
    assert "id_token" in json_of(token) and "refresh_token" not in json_of(token)


@pytest.mark.parametrize("policy", ["client", "required"])
def test_the_second_factor_rule_holds_on_the_device_page(tmp_path: Path, store: Store,
                                                         clock: FakeClock, policy: str) -> None:
    """A client that requires a second factor (or UAUTH_MFA=required) cannot be approved from
    the device page with a password alone: the person sets one up first, then approves, and
    the device's ID token says so."""
    config = {"UAUTH_MFA": "required"} if policy == "required" else {}
    driver = Driver.of(make_app(tmp_path, store, clock, **config))
    driver.user()
    client_id, _ = device_client(driver, require_mfa=policy == "client")
    body = json_of(start(driver, client_id))
    driver.login()
    page = driver.http.get("/device", query_string={"user_code": body["user_code"]})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login/enrol")
    forged = driver.http.post("/device", data={"csrf_token": csrf_token(
        driver.http.get("/device").text), "user_code": body["user_code"], "decision": "allow"})
    assert forged.status_code == 302, "no approval without the second factor"
    back = parse_qs(urlsplit(page.headers["Location"]).query)["next"][0]
    assert back.startswith("/device?user_code=")
    enrol_totp(driver, clock, next_url=back)
    assert 'data-device-result="approved"' in decide(driver, body["user_code"]).text
    clock.advance(5)
    tokens = poll(driver, client_id, body["device_code"])
    assert tokens.status_code == 200, json_of(tokens)
    claims = jwt.decode(json_of(tokens)["id_token"], options={"verify_signature": False})
    assert claims["acr"] == ACR_MFA and "otp" in claims["amr"]


def test_a_user_code_already_live_is_drawn_again(driver: Driver,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A user code that collides with a live one (one in billions) is drawn again, and the
    device's request, saved with the first code in the same trip, is saved again with the
    second: the person's code decides it, and the earlier request keeps its own code."""
    client_id, _ = device_client(driver)
    first = json_of(start(driver, client_id))
    drawn = iter([first["user_code"], "BCDF-GHJK"])
    monkeypatch.setattr("uauth.core.device.new_user_code", lambda: next(drawn))
    second = json_of(start(driver, client_id))
    assert second["user_code"] == "BCDF-GHJK"
    driver.login()
    assert 'data-device-result="approved"' in decide(driver, second["user_code"]).text
    assert poll(driver, client_id, second["device_code"]).status_code == 200
    assert json_of(poll(driver, client_id, first["device_code"]))["error"] == \
        "authorization_pending", "the earlier request still waits for its own code"
    assert 'data-device-result="denied"' in decide(driver, first["user_code"], "deny").text
