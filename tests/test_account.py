"""/account: profile, password and the apps a person let in, in process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.app_driver import PASSWORD
from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.models import User
from uauth.core.records import REFRESH
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage import hash_key
from uauth.storage.memory import MemoryStore


@pytest.fixture
def driver(shared_instance: Path, clock: FakeClock) -> Driver:
    return Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock,
                              UAUTH_REQUIRED_ATTRIBUTES=["given_name"],
                              UAUTH_ATTRIBUTES=[{"name": "groups", "editable": False}],
                              UAUTH_CUSTOM_SCOPES={"groups": {"claims": ["groups"]}}))


def form_post(driver: Driver, page: Any, action: str, prefix: str, **values: str) -> Any:
    data = {f"{prefix}-csrf_token": csrf_token(page.text, prefix),
            **{(k if k == "client_id" else f"{prefix}-{k}"): v for k, v in values.items()}}
    return driver.http.post(action, data=data)


def reload_user(driver: Driver, username: str = "alice") -> User:
    with driver.app.app_context():
        user = get_state().users.find_by_username(username)
    assert user is not None
    return user


def test_the_account_page_needs_a_signed_in_user(driver: Driver) -> None:
    response = driver.http.get("/account")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/account"
    driver.user()
    assert driver.login(next_url="/account").headers["Location"] == "/account"
    for path in ("/account/profile", "/account/password", "/account/apps"):
        assert Driver.of(driver.app).http.post(path).status_code == 302, path


def test_profile_is_shown_and_edited_with_inline_errors(driver: Driver) -> None:
    driver.user(given_name="Ada", email="ada@example.com", email_verified=True,
                groups=["staff", "admins"])
    driver.login()
    page = driver.http.get("/account")
    assert page.status_code == 200 and 'value="Ada"' in page.text
    assert "verified" in page.text and "staff, admins" in page.text, "read-only shown"
    assert 'name="attr-groups"' not in page.text, "operator-managed: not editable"

    bad = form_post(driver, page, "/account/profile", "attr", given_name="", email="nope",
                    family_name="Lovelace")
    assert bad.status_code == 400
    assert "Enter your first name." in bad.text, "a globally required attribute stays required"
    assert "Enter an email address" in bad.text and 'value="Lovelace"' in bad.text

    saved = form_post(driver, page, "/account/profile", "attr", given_name="Ada",
                      email="ada@new.example", family_name="Lovelace", birthdate="1985-12-10")
    assert saved.status_code == 302 and saved.headers["Location"] == "/account"
    assert "Your profile was saved." in driver.http.get("/account").text
    profile = reload_user(driver).profile
    assert profile["family_name"] == "Lovelace" and profile["email"] == "ada@new.example"
    assert "email_verified" not in profile, "a changed email is no longer verified"
    assert profile["groups"] == ["staff", "admins"], "operator attributes are untouched"


def test_the_profile_form_needs_its_csrf_token(driver: Driver) -> None:
    driver.user(given_name="Ada")
    driver.login()
    response = driver.http.post("/account/profile", data={"attr-given_name": "Eve"})
    assert response.status_code == 400 and "expired" in response.text
    assert reload_user(driver).profile["given_name"] == "Ada"


def test_changing_the_password_needs_the_current_one(driver: Driver) -> None:
    driver.user(given_name="Ada")
    driver.login()
    page = driver.http.get("/account")
    wrong = form_post(driver, page, "/account/password", "pw", current_password="guess-1234",
                      new_password="a new secret", confirm="a new secret")
    assert wrong.status_code == 400 and "That is not your current password." in wrong.text
    differ = form_post(driver, page, "/account/password", "pw", current_password=PASSWORD,
                       new_password="a new secret", confirm="another one")
    assert differ.status_code == 400 and "The two new passwords differ." in differ.text
    short = form_post(driver, page, "/account/password", "pw", current_password=PASSWORD,
                      new_password="short", confirm="short")
    assert short.status_code == 400 and "Use 8 to 1024 characters." in short.text
    elsewhere = Driver.of(driver.app)
    assert elsewhere.login().status_code == 302
    done = form_post(driver, page, "/account/password", "pw", current_password=PASSWORD,
                     new_password="a new secret", confirm="a new secret")
    assert done.status_code == 302
    assert "your other sessions were signed out" in driver.http.get("/account").text
    assert elsewhere.http.get("/account").status_code == 302, "the other browser is signed out"
    assert reload_user(driver).password_hash.startswith("$argon2id$")  # type: ignore[union-attr]
    assert Driver.of(driver.app).login(password=PASSWORD).status_code == 401
    assert Driver.of(driver.app).login(password="a new secret").status_code == 302


def test_revoking_an_app_revokes_its_refresh_tokens_and_consent(shared_instance: Path, store: Store,
                                                                 clock: FakeClock) -> None:
    driver = Driver.of(make_app(shared_instance, store, clock))
    driver.user()
    client, secret = driver.client(name="Photo App")
    other, other_secret = driver.client(name="Other App")
    driver.login()
    code = driver.code(client.client_id, scope="openid offline_access profile")
    token = json_of(driver.token(client.client_id, secret, code=code))
    kept = json_of(driver.token(other.client_id, other_secret,
                                code=driver.code(other.client_id, scope="openid offline_access")))
    assert store.find(REFRESH, hash_key(token["refresh_token"])) is not None
    page = driver.http.get("/account")
    assert "Photo App" in page.text and "Other App" in page.text
    assert "Your name, username, picture" in page.text, "what the app can see"

    response = form_post(driver, page, "/account/apps", "app", client_id=client.client_id)
    assert response.status_code == 302
    assert "Photo App no longer has access" in driver.http.get("/account").text
    assert store.find(REFRESH, hash_key(token["refresh_token"])) is None
    info = driver.http.get("/userinfo",
                           headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 401, "the grant's access tokens are denied too"
    assert store.find(REFRESH, hash_key(kept["refresh_token"])) is not None, "others untouched"
    after = driver.http.get("/account").text  # the notice was shown once, above
    assert "Photo App" not in after and "Other App" in after
    ask = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid"})
    assert 'name="consent"' in ask.text, "consent was withdrawn: asked again"


def test_revoking_needs_its_csrf_token(driver: Driver) -> None:
    driver.user(given_name="Ada")
    client, _ = driver.client(name="Photo App")
    driver.login()
    driver.code(client.client_id)
    response = driver.http.post("/account/apps", data={"client_id": client.client_id})
    assert response.status_code == 302
    assert "Photo App" in driver.http.get("/account").text.split("Apps with access")[1]


def test_the_account_page_links_to_the_sessions_page(driver: Driver) -> None:
    driver.user(given_name="Ada")
    driver.login()
    page = driver.http.get("/account").text
    assert 'href="/account/sessions"' in page
    sessions = driver.http.get("/account/sessions")
    assert sessions.status_code == 200 and "(this browser)" in sessions.text
    assert 'href="/account"' in sessions.text, "and back"


def test_saving_the_profile_leaves_untouched_fields_as_they_were(driver: Driver) -> None:
    address = {"street_address": "1 Main St", "locality": "Springfield", "country": "US"}
    driver.user(given_name="Ada", address=address, birthdate="1990-04-23")
    driver.login()
    page = driver.http.get("/account")
    assert "1 Main St, Springfield, US" in page.text
    values = dict(re.findall(r'name="attr-([a-z_]+)"[^>]*value="([^"]*)"', page.text))
    values.pop("csrf_token")
    values["address"] = "1 Main St, Springfield, US"
    saved = form_post(driver, page, "/account/profile", "attr", **{**values,
                                                                   "family_name": "Lovelace"})
    assert saved.status_code == 302
    profile = reload_user(driver).profile
    assert profile["address"] == address, "a structured address is not flattened"
    assert profile["birthdate"] == "1990-04-23" and profile["family_name"] == "Lovelace"


def test_only_grants_that_may_still_hold_tokens_are_remembered(driver: Driver,
                                                               clock: FakeClock) -> None:
    from uauth.core.consents import apps_of

    user = driver.user(given_name="Ada")
    client, secret = driver.client(first_party=True)
    driver.login()
    family = driver.token(client.client_id, secret,
                          code=driver.code(client.client_id, scope="openid offline_access"))
    assert "refresh_token" in json_of(family)
    driver.code(client.client_id, scope="openid offline_access")  # never redeemed: no family
    driver.code(client.client_id, scope="openid")
    clock.advance(60 + 7200 + 1)  # the codes and access tokens of the other grants are over
    driver.code(client.client_id, scope="openid")
    with driver.app.app_context():
        apps = apps_of(get_state().store, user.id, get_state().now())
    assert len(apps) == 1 and len(apps[0].grant_ids) == 2, "the refresh family stays listed"
    assert apps[0].last_authorized == int(clock.now)


def test_a_host_apps_own_directory_keeps_its_profiles(tmp_path: Path) -> None:
    from tests.test_embedding_wiring import CAROL
    from tests.test_embedding_wiring import DictUsers
    from tests.test_embedding_wiring import host_app
    from uauth import UAuth

    app = host_app(tmp_path, UAUTH_REQUIRED_ATTRIBUTES=["birthdate"])
    UAuth(app, users=DictUsers((CAROL, "carol-password")))
    driver = Driver.of(app)
    client, _ = driver.client(first_party=True)
    assert driver.login("carol", "carol-password").status_code == 302
    response = driver.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid"})
    assert "code=" in response.headers["Location"], "no form: uauth cannot save to the host"
    page = driver.http.get("/account").text
    assert "Carol" in page and "c@example.com" in page and 'name="attr-' not in page
    assert "managed where you signed up" in page and 'name="pw-' not in page
    assert driver.http.post("/account/profile").headers["Location"] == "/account"


def test_guessing_the_current_password_is_throttled_without_locking_the_login(
        driver: Driver, clock: FakeClock) -> None:
    driver.user(given_name="Ada")
    driver.login()
    page = driver.http.get("/account")
    for n in range(5):  # UAUTH_THROTTLE_FREE_FAILURES
        guess = form_post(driver, page, "/account/password", "pw", current_password=f"guess-{n}",
                          new_password="a new secret", confirm="a new secret")
        assert guess.status_code == 400, n
    slowed = form_post(driver, page, "/account/password", "pw", current_password="guess-5",
                       new_password="a new secret", confirm="a new secret")
    assert slowed.status_code == 429 and slowed.headers["Retry-After"] == "1"
    right = form_post(driver, page, "/account/password", "pw", current_password=PASSWORD,
                      new_password="a new secret", confirm="a new secret")
    assert right.status_code == 429, "the right password waits too, or the wait would leak it"
    assert Driver.of(driver.app).login().status_code == 302, "the owner can still sign in"
    clock.advance(2)
    done = form_post(driver, page, "/account/password", "pw", current_password=PASSWORD,
                     new_password="a new secret", confirm="a new secret")
    assert done.status_code == 302
