"""Second factors in process: TOTP enrolment and sign-in, replay, the ±1 step window,
throttling, recovery codes, UAUTH_MFA=required, per-client policy, step-up (acr_values, the
claims parameter, prompt=login, prompt=none) and acr/amr in tokens, on every storage backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pyotp
import pytest
from flask import Flask

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.mfa import ACR_MFA
from uauth.core.mfa import ACR_SFA
from uauth.core.records import FACTOR
from uauth.extension import get_state
from uauth.storage import Store

SECOND = "/login/second-factor"


def driver_for(tmp_path: Path, store: Store, clock: FakeClock, **config: Any) -> Driver:
    return Driver.of(make_app(tmp_path, store, clock, **config))


def fresh(d: Driver) -> Driver:
    """Another browser on the same provider."""
    return Driver(d.app, d.app.test_client())


def enrol_totp(d: Driver, clock: FakeClock, next_url: str = "/account") -> tuple[str, list[str]]:
    """Set up an authenticator app through the pages: the secret and the recovery codes."""
    page = d.http.get("/login/enrol", query_string={"next": next_url})
    assert page.status_code == 200, page.text
    assert "<svg" in page.text and page.headers["Cache-Control"] == "no-store"
    secret = re.search(r"data-secret>([A-Z2-7]+)<", page.text)
    assert secret
    code = pyotp.TOTP(secret.group(1)).at(int(clock()))
    done = d.http.post(page.request.full_path, data={"csrf_token": csrf_token(page.text),
                                                     "otp": code})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done.text)
    return secret.group(1), codes


def at_second_step(d: Driver, clock: FakeClock) -> tuple[str, str]:
    """A person with an authenticator app signs in again on a new browser: the app's secret and
    the second step's URL, the enrolment's time step over (its code is spent)."""
    d.user()
    d.login()
    secret, _ = enrol_totp(d, clock)
    d.http = d.app.test_client()
    step = d.login().headers["Location"]
    clock.advance(30)
    return secret, step


def answer_otp(d: Driver, url: str, code: str) -> Any:
    page = d.http.get(url)
    assert page.status_code == 200, page.text
    assert 'name="otp"' in page.text
    return d.http.post(page.request.full_path, data={"csrf_token": csrf_token(page.text),
                                                     "otp": code})


def body(response: Any) -> dict[str, Any]:
    data = response.get_json()
    assert isinstance(data, dict), response.text
    return data


def jwks_verify(app: Flask, token: str, audience: str) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict(body(app.test_client().get("/jwks.json")))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[key.algorithm_name],
                                        audience=audience, leeway=3600)
    return claims


def authorize_url(client_id: str, **params: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
             "scope": "openid", **params}
    return "/authorize?" + urlencode(query)


def code_of(response: Any) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "code" in query, query
    return str(query["code"][0])


@pytest.fixture
def d(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    driver = driver_for(tmp_path, store, clock)
    driver.user()
    return driver


def test_totp_enrolment_then_sign_in_with_a_code(d: Driver, clock: FakeClock) -> None:
    assert d.login().status_code == 302
    secret, codes = enrol_totp(d, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    with d.app.app_context():
        records = list(get_state().store.scan(FACTOR))
    assert secret not in json.dumps(records), "the secret is sealed at rest"

    other = fresh(d)
    response = other.login()
    assert response.status_code == 302 and response.headers["Location"].startswith(SECOND)
    assert other.http.get("/account").headers["Location"].startswith(SECOND), \
        "a password alone does not open the account page"
    assert other.http.get("/account/sessions").headers["Location"].startswith(SECOND)
    clock.advance(30)
    wrong = answer_otp(other, response.headers["Location"], "000000")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    right = answer_otp(other, response.headers["Location"], pyotp.TOTP(secret).at(int(clock())))
    assert right.status_code == 302
    assert other.http.get("/account").status_code == 200


def test_code_flow_after_totp_carries_amr_and_acr(d: Driver, clock: FakeClock) -> None:
    client, client_secret = d.client(first_party=True)
    d.login()
    secret, _ = enrol_totp(d, clock)
    browser = fresh(d)
    start = browser.http.get(authorize_url(client.client_id, nonce="n1"))
    login = browser.login_at(start.headers["Location"])
    assert login.headers["Location"].startswith(SECOND), "straight on to the second factor"
    clock.advance(30)
    back = answer_otp(browser, login.headers["Location"], pyotp.TOTP(secret).at(int(clock())))
    assert back.headers["Location"].startswith("/authorize")
    code = code_of(browser.http.get(back.headers["Location"]))
    token = browser.token(client.client_id, client_secret, code=code)
    assert token.status_code == 200, token.text
    claims = jwks_verify(d.app, body(token)["id_token"], client.client_id)
    assert set(claims["amr"]) == {"pwd", "otp", "mfa"} and claims["acr"] == ACR_MFA
    access = jwt.decode(body(token)["access_token"], options={"verify_signature": False})
    assert access["acr"] == ACR_MFA and "otp" in access["amr"]
    info = d.http.post("/introspect", data={"token": body(token)["access_token"]},
                       headers=basic_auth(client.client_id, client_secret))
    introspected = body(info)
    assert introspected["active"] and introspected["acr"] == ACR_MFA
    assert "mfa" in introspected["amr"]


def test_a_code_is_accepted_once_per_time_step(d: Driver, clock: FakeClock) -> None:
    d.login()
    secret, _ = enrol_totp(d, clock)
    clock.advance(30)
    code = pyotp.TOTP(secret).at(int(clock()))
    first = fresh(d)
    assert answer_otp(first, first.login().headers["Location"], code).status_code == 302
    second = fresh(d)
    replay = answer_otp(second, second.login().headers["Location"], code)
    assert replay.status_code == 401 and "used already" in replay.text


@pytest.mark.parametrize(("offset", "accepted"), [(-30, True), (30, True), (-60, False),
                                                  (60, False)])
def test_codes_one_step_either_side_are_accepted(d: Driver, clock: FakeClock, offset: int,
                                                 accepted: bool) -> None:
    d.login()
    secret, _ = enrol_totp(d, clock)
    clock.advance(300)
    browser = fresh(d)
    code = pyotp.TOTP(secret).at(int(clock()) + offset)
    response = answer_otp(browser, browser.login().headers["Location"], code)
    assert response.status_code == (302 if accepted else 401)


def test_wrong_codes_are_throttled_like_passwords(tmp_path: Path, store: Store,
                                                  clock: FakeClock) -> None:
    d = driver_for(tmp_path, store, clock, UAUTH_THROTTLE_FREE_FAILURES=2,
                   UAUTH_THROTTLE_LOCK_FAILURES=20)
    d.user()
    d.login()
    secret, _ = enrol_totp(d, clock)
    browser = fresh(d)
    url = browser.login().headers["Location"]
    statuses = [answer_otp(browser, url, "123456").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    next_code = pyotp.TOTP(secret).at(int(clock()) + 30)
    held = answer_otp(browser, url, next_code)
    assert held.status_code == 429 and held.headers["Retry-After"], "even the right code waits"
    clock.advance(int(held.headers["Retry-After"]))
    assert answer_otp(browser, url, next_code).status_code == 302


def test_a_recovery_code_works_once_and_says_how_many_are_left(d: Driver,
                                                               clock: FakeClock) -> None:
    d.login()
    _, codes = enrol_totp(d, clock)
    browser = fresh(d)
    used = answer_otp(browser, browser.login().headers["Location"], codes[0].upper())
    assert used.status_code == 200 and "You have 9 recovery codes left." in used.text
    assert 'href="/"' in used.text, "then on to where the sign-in was going"
    account = browser.http.get("/account")
    assert "Recovery codes left: 9" in account.text
    again = fresh(d)
    assert answer_otp(again, again.login().headers["Location"], codes[0]).status_code == 401


def test_mfa_required_enrols_between_login_and_consent(tmp_path: Path, store: Store,
                                                       clock: FakeClock) -> None:
    d = driver_for(tmp_path, store, clock, UAUTH_MFA="required")
    d.user()
    client, client_secret = d.client(first_party=True)
    start = d.http.get(authorize_url(client.client_id))
    login = d.login_at(start.headers["Location"])
    step = d.http.get(login.headers["Location"])
    assert step.headers["Location"].startswith("/login/enrol")
    _, codes = enrol_totp(d, clock, next_url=parse_qs(urlsplit(step.headers["Location"]).query)
                          ["next"][0])
    assert len(codes) == 10
    page = d.http.get("/login/enrol")  # already has a factor and an elevated session
    assert page.status_code == 200
    code = d.code(client.client_id)
    token = d.token(client.client_id, client_secret, code=code)
    claims = jwks_verify(d.app, body(token)["id_token"], client.client_id)
    assert claims["acr"] == ACR_MFA and "otp" in claims["amr"]


def test_a_client_can_require_mfa(d: Driver, clock: FakeClock) -> None:
    plain, _ = d.client(first_party=True)
    strict, _ = d.client(first_party=True, require_mfa=True)
    d.login()
    assert d.http.get(authorize_url(plain.client_id)).status_code == 302
    assert "code=" in d.http.get(authorize_url(plain.client_id)).headers["Location"]
    step = d.http.get(authorize_url(strict.client_id))
    assert step.headers["Location"].startswith("/login/enrol")


def test_step_up_with_acr_values_and_prompt_none(d: Driver, clock: FakeClock) -> None:
    client, client_secret = d.client(first_party=True)
    d.login()
    code = code_of(d.http.get(authorize_url(client.client_id)))
    claims = jwks_verify(d.app, d.token(client.client_id, client_secret, code=code)
                         .get_json()["id_token"], client.client_id)
    assert claims["acr"] == ACR_SFA and claims["amr"] == ["pwd"]

    silent = d.http.get(authorize_url(client.client_id, prompt="none", acr_values=ACR_MFA))
    error = parse_qs(urlsplit(silent.headers["Location"]).query)
    assert error["error"] == ["interaction_required"]
    essential = json.dumps({"id_token": {"acr": {"essential": True, "values": [ACR_MFA]}}})
    silent = d.http.get(authorize_url(client.client_id, prompt="none", claims=essential))
    assert "interaction_required" in silent.headers["Location"]

    step = d.http.get(authorize_url(client.client_id, acr_values=ACR_MFA))
    assert step.headers["Location"].startswith("/login/enrol"), "no factor yet: enrol one"
    secret, _ = enrol_totp(d, clock, "/")
    code = code_of(d.http.get(authorize_url(client.client_id, acr_values=ACR_MFA)))
    claims = jwks_verify(d.app, d.token(client.client_id, client_secret, code=code)
                         .get_json()["id_token"], client.client_id)
    assert claims["acr"] == ACR_MFA

    # prompt=login: the password again, then the second factor again.
    again = d.http.get(authorize_url(client.client_id, prompt="login"))
    login = d.login_at(again.headers["Location"])
    assert login.headers["Location"].startswith(SECOND)
    clock.advance(30)
    back = answer_otp(d, login.headers["Location"], pyotp.TOTP(secret).at(int(clock())))
    assert code_of(d.http.get(back.headers["Location"]))


def test_mfa_off_ignores_factors_and_refuses_an_essential_acr(tmp_path: Path, store: Store,
                                                              clock: FakeClock) -> None:
    d = driver_for(tmp_path, store, clock, UAUTH_MFA="off")
    d.user()
    client, _ = d.client(first_party=True)
    d.login()
    assert d.http.get("/login/enrol").status_code == 302
    assert "code=" in d.http.get(authorize_url(client.client_id, acr_values=ACR_MFA)
                                 ).headers["Location"]
    essential = json.dumps({"id_token": {"acr": {"essential": True, "value": ACR_MFA}}})
    refused = d.http.get(authorize_url(client.client_id, claims=essential))
    assert "error=access_denied" in refused.headers["Location"]


def test_removing_a_factor_needs_the_password_or_a_code(d: Driver, clock: FakeClock) -> None:
    d.login()
    enrol_totp(d, clock)
    account = d.http.get("/account")
    factor = re.search(r'name="factor" value="([^"]+)"', account.text)
    assert factor
    token = csrf_token(account.text)
    wrong = d.http.post("/account/factors/remove", data={
        "csrf_token": token, "factor": factor.group(1), "confirm": "nope"},
        follow_redirects=True)
    assert "nothing was removed" in wrong.text
    done = d.http.post("/account/factors/remove", data={
        "csrf_token": token, "factor": factor.group(1), "confirm": "password123"},
        follow_redirects=True)
    assert "was removed" in done.text
    with d.app.app_context():
        user = get_state().users.find_by_username("alice")
        assert user is not None
        assert not get_state().factors.has_second_factor(user.id)
        assert get_state().factors.recovery_left(user.id) == 0
    assert fresh(d).login().headers["Location"] == "/"


def test_discovery_lists_the_acr_values(d: Driver) -> None:
    meta = body(d.http.get("/.well-known/openid-configuration"))
    assert meta["acr_values_supported"] == [ACR_SFA, ACR_MFA]


def test_an_ip_address_issuer_explains_why_there_are_no_passkeys(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    d = driver_for(tmp_path, store, clock, UAUTH_ISSUER="http://127.0.0.1:5000")
    d.user()
    assert "passkeys.js" not in d.http.get("/login").text
    d.login()
    page = d.http.get("/account")
    assert "Passkeys need a domain name" in page.text and "http://localhost:5000" in page.text
    assert "data-passkey=" not in page.text


def test_max_age_asks_for_the_password_and_the_second_factor_again(d: Driver,
                                                                   clock: FakeClock) -> None:
    client, client_secret = d.client(first_party=True)
    d.login()
    secret, _ = enrol_totp(d, clock, "/")
    assert code_of(d.http.get(authorize_url(client.client_id, max_age="600")))
    clock.advance(601)
    again = d.http.get(authorize_url(client.client_id, max_age="600"))
    assert again.headers["Location"].startswith("/login")
    login = d.login_at(again.headers["Location"])
    assert login.headers["Location"].startswith(SECOND)
    back = answer_otp(d, login.headers["Location"], pyotp.TOTP(secret).at(int(clock())))
    code = code_of(d.http.get(back.headers["Location"]))
    claims = jwks_verify(d.app, body(d.token(client.client_id, client_secret, code=code))
                         ["id_token"], client.client_id)
    assert claims["auth_time"] >= int(clock()) - 1 and claims["acr"] == ACR_MFA


def test_the_device_page_waits_for_the_second_factor(d: Driver, clock: FakeClock) -> None:
    d.login()
    secret, _ = enrol_totp(d, clock)
    browser = fresh(d)
    browser.login()  # the password only: the session has no second factor yet
    held = browser.http.get("/device")
    assert held.status_code == 302 and held.headers["Location"].startswith(SECOND)
    clock.advance(30)
    back = answer_otp(browser, held.headers["Location"], pyotp.TOTP(secret).at(int(clock())))
    assert back.headers["Location"] == "/device"
    assert browser.http.get("/device").status_code == 200
