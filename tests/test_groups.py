"""Groups: the groups claim through a full OpenID flow, and clients that admit only groups."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.clients import save_client
from uauth.core.groups import GroupError
from uauth.core.groups import change_membership
from uauth.core.groups import create
from uauth.core.groups import remove
from uauth.extension import get_state
from uauth.storage import Store


@pytest.fixture
def driver(shared_instance: Path, store: Store, clock: FakeClock) -> Driver:
    """On every backend: memory, SQLite and Redis."""
    return Driver.of(make_app(shared_instance, store, clock))


def with_groups(driver: Driver, username: str, *names: str) -> None:
    with driver.app.app_context():
        state = get_state()
        for name in names:
            create(state.store, name, now=state.now())
        user = state.users.find_by_username(username)
        assert user is not None
        change_membership(state.store, state.users, user, add=names)


def test_groups_claim_in_id_token_userinfo_access_token_and_introspection(
        driver: Driver) -> None:
    driver.user("alice")
    with_groups(driver, "alice", "staff", "ops")
    client, secret = driver.client(first_party=True, scope="openid groups profile")
    driver.login()
    code = driver.code(client.client_id, scope="openid groups")
    tokens = json_of(driver.token(client.client_id, secret, code=code))
    for token in (tokens["id_token"], tokens["access_token"]):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["groups"] == ["ops", "staff"]
    info = json_of(driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"}))
    assert info["groups"] == ["ops", "staff"]
    introspected = json_of(driver.http.post("/introspect", data={
        "token": tokens["access_token"]}, headers=basic_auth(client.client_id, secret)))
    assert introspected["active"] is True and introspected["groups"] == ["ops", "staff"]
    # without the scope, no claim
    code = driver.code(client.client_id, scope="openid profile")
    plain = json_of(driver.token(client.client_id, secret, code=code))
    assert "groups" not in jwt.decode(plain["id_token"], options={"verify_signature": False})
    assert "groups" in json_of(driver.http.get("/.well-known/openid-configuration"))[
        "scopes_supported"]


def test_a_client_that_allows_a_group_refuses_everyone_else(driver: Driver) -> None:
    driver.user("alice")
    driver.user("bob")
    with_groups(driver, "alice", "staff")
    client, secret = driver.client(first_party=True)
    client.allowed_groups = ["staff"]
    with driver.app.app_context():
        save_client(get_state().store, client)
    driver.login("bob")
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s1"}
    page = driver.http.get("/authorize", query_string=params)
    assert page.status_code == 403 and "only admits members of certain groups" in page.text
    back = page.text.split('class="button secondary" href="')[1].split('"')[0].replace("&amp;", "&")
    assert back.startswith(REDIRECT)
    answer = parse_qs(urlsplit(back).query)
    assert answer["error"] == ["access_denied"] and answer["state"] == ["s1"]
    silent = driver.http.get("/authorize", query_string={**params, "prompt": "none"})
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == ["access_denied"]
    alice = Driver.of(driver.app)
    alice.login("alice")
    assert "code" in parse_qs(urlsplit(alice.authorize(**params).headers["Location"]).query)


def test_removing_a_group_takes_it_off_its_members(driver: Driver) -> None:
    driver.user("alice")
    with_groups(driver, "alice", "staff")
    with driver.app.app_context():
        state = get_state()
        with pytest.raises(GroupError, match="already exists"):
            create(state.store, "staff", now=0)
        with pytest.raises(GroupError, match="group name"):
            create(state.store, "no spaces", now=0)
        assert remove(state.store, state.users, "staff") == 1
        user = state.users.find_by_username("alice")
        assert user is not None and user.groups == []
        with pytest.raises(GroupError, match="no group"):
            change_membership(state.store, state.users, user, add=["staff"])


def test_the_device_flow_refuses_a_person_outside_the_allowed_groups(driver: Driver) -> None:
    from tests.test_device import DEVICE
    from tests.test_device import decide
    from tests.test_device import poll
    from tests.test_device import start

    driver.user("alice")
    client, _ = driver.client(grant_types=[DEVICE, "refresh_token"], redirect_uris=[],
                              public=True)
    client.allowed_groups = ["staff"]
    with driver.app.app_context():
        state = get_state()
        create(state.store, "staff", now=state.now())
        save_client(state.store, client)
    body = json_of(start(driver, client.client_id))
    driver.login("alice")
    page = driver.http.get("/device", query_string={"user_code": body["user_code"]})
    assert page.status_code == 403 and "only admits members of certain groups" in page.text
    answer = json_of(poll(driver, client.client_id, body["device_code"]))
    assert answer["error"] == "access_denied"
    with_groups_existing = Driver.of(driver.app)  # a member is let through
    driver.user("bob")
    with driver.app.app_context():
        bob = get_state().users.find_by_username("bob")
        assert bob is not None
        change_membership(get_state().store, get_state().users, bob, add=["staff"])
    second = json_of(start(with_groups_existing, client.client_id))
    with_groups_existing.login("bob")
    assert 'data-device-result="approved"' in decide(with_groups_existing,
                                                     second["user_code"]).text
