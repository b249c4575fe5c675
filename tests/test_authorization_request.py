"""prompt, max_age and id_token_hint in process, where the injected clock makes time pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.storage import Store


@pytest.fixture
def driver(tmp_path: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(tmp_path, store, clock))


def params(client_id: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "nonce": "n", **extra}


def id_claims(driver: Driver, client_id: str, secret: str | None, response: Any
              ) -> dict[str, Any]:
    assert response.status_code == 302 and "code=" in response.headers["Location"], response.text
    code = response.headers["Location"].split("code=")[1].split("&")[0]
    body = json_of(driver.token(client_id, secret, code=code))
    token: str = body["id_token"]
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims["raw"] = token
    return claims


def test_max_age_forces_a_new_login_with_a_later_auth_time(driver: Driver,
                                                           clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    first = id_claims(driver, client.client_id, secret,
                      driver.authorize(**params(client.client_id, max_age="1")))
    assert first["auth_time"] == int(clock.now)
    clock.advance(2)
    again = driver.authorize(**params(client.client_id, max_age="1"))
    assert again.status_code == 302 and again.headers["Location"].startswith("/login?next=")
    back = driver.login_at(again.headers["Location"])
    second = id_claims(driver, client.client_id, secret, driver.http.get(back.headers["Location"]))
    assert second["auth_time"] == first["auth_time"] + 2


def test_max_age_zero_after_a_fresh_login_does_not_loop(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client()
    driver.login()
    clock.advance(5)
    sent = driver.authorize(**params(client.client_id, max_age="0"))
    assert driver.login_at(sent.headers["Location"]).status_code == 302
    clock.advance(1)  # the login and the request's return straddle a second
    consent = driver.authorize(**params(client.client_id, max_age="0"))  # consent page, allowed
    assert id_claims(driver, client.client_id, secret, consent)["auth_time"] == int(clock.now) - 1
    clock.advance(1)
    replay = driver.authorize(**params(client.client_id, max_age="0"))
    assert replay.headers["Location"].startswith("/login?next="), "a fresh login counts once"


def test_prompt_login_gives_a_later_auth_time(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    start = int(clock.now)
    clock.advance(30)
    sent = driver.authorize(**params(client.client_id, prompt="login"))
    assert sent.headers["Location"].startswith("/login?next=")
    back = driver.login_at(sent.headers["Location"])
    claims = id_claims(driver, client.client_id, secret, driver.http.get(back.headers["Location"]))
    assert claims["auth_time"] == start + 30


def test_expired_id_token_hint_is_accepted(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, secret = driver.client(first_party=True)
    driver.login()
    hint = id_claims(driver, client.client_id, secret,
                     driver.authorize(**params(client.client_id)))["raw"]
    clock.advance(3600 + 60)  # the ID token expired; the session did not
    silent = driver.authorize(**params(client.client_id, prompt="none", id_token_hint=hint))
    assert "code=" in silent.headers["Location"]


def test_prompt_none_with_an_old_session_and_max_age(driver: Driver, clock: FakeClock) -> None:
    driver.user()
    client, _ = driver.client(first_party=True)
    driver.login()
    clock.advance(120)
    response = driver.authorize(**params(client.client_id, prompt="none", max_age="60",
                                         state="s"))
    assert "error=login_required" in response.headers["Location"]
    assert "state=s" in response.headers["Location"]


def fragment(response: Any) -> dict[str, str]:
    from urllib.parse import parse_qs
    from urllib.parse import urlsplit

    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).fragment).items()}


def test_front_channel_tokens_need_the_implicit_grant(driver: Driver) -> None:
    from uauth.core.clients import Registration
    from uauth.core.clients import RegistrationError
    from uauth.core.clients import register_client
    from uauth.core.clients import save_client
    from uauth.extension import get_state

    driver.user()
    client, _ = driver.client(first_party=True, response_types=["id_token token"])
    assert client.grant_types == ["implicit", "refresh_token"], "derived from the response types"
    with driver.app.app_context(), pytest.raises(RegistrationError) as refused:
        register_client(get_state().store, Registration(
            name="X", redirect_uris=[REDIRECT], response_types=["id_token"],
            grant_types=["authorization_code"]))
    assert str(refused.value) == "the response types need --grant-type implicit too"
    client.grant_types = ["authorization_code"]  # a record stored before that rule
    with driver.app.app_context():
        save_client(get_state().store, client)
    driver.login()
    got = fragment(driver.authorize(**params(client.client_id, response_type="id_token token")))
    assert got["error"] == "unauthorized_client" and "access_token" not in got


def test_offline_access_is_ignored_without_a_code_and_logout_revokes(driver: Driver) -> None:

    driver.user()
    client, _ = driver.client(first_party=True, response_types=["id_token token"])
    driver.login()
    got = fragment(driver.authorize(**params(client.client_id, response_type="id_token token",
                                             scope="openid offline_access")))
    assert got["scope"] == "openid", "OIDC Core §11: no code, no offline access"
    bearer = {"Authorization": f"Bearer {got['access_token']}"}
    assert driver.http.get("/userinfo", headers=bearer).status_code == 200
    page = driver.http.get("/logout")
    token = csrf_token(page.text)
    driver.http.post("/logout", data={"csrf_token": token})
    assert driver.http.get("/userinfo", headers=bearer).status_code == 401
