"""The admin console at /admin, in process: who may see it, CSRF, audit, re-authentication,
last-admin protection, and what its changes do to sign-in and tokens."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from werkzeug.test import TestResponse

from tests.app_driver import PASSWORD
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from uauth.core.audittrail import Query
from uauth.core.audittrail import search
from uauth.core.clients import get_client
from uauth.extension import get_state
from uauth.models import User
from uauth.storage import Store


@pytest.fixture
def driver(shared_instance: Path, store: Store, clock: FakeClock) -> Driver:
    """On every backend: memory, SQLite and Redis."""
    return Driver.of(make_app(shared_instance, store, clock))


SECRETS: dict[str, str] = {}


def make_admin(driver: Driver, username: str = "root") -> User:
    """An admin with an authenticator app (admins sign in with a second factor)."""
    user = driver.user(username)
    with driver.app.app_context():
        user.admin = True
        state = get_state()
        state.users.save(user)  # type: ignore[attr-defined]
        _, SECRETS[user.id] = state.factors.add_totp(user.id)
    return user


def console_login(driver: Driver, user: User, clock: FakeClock) -> None:
    """Password, then the authenticator app's code, as an admin signs in."""
    assert driver.login(user.username, next_url="/admin").status_code == 302
    step = driver.http.get("/admin")
    assert step.headers["Location"].startswith("/login/second-factor")
    page = driver.http.get(step.headers["Location"])
    done = driver.http.post(page.request.full_path, data={
        "csrf_token": csrf_token(page.text),
        "otp": pyotp.TOTP(SECRETS[user.id]).at(int(clock()))})
    assert done.status_code == 302 and done.headers["Location"].startswith("/admin"), done.text


def post(driver: Driver, page_path: str, action: str, **data: str) -> TestResponse:
    page = driver.http.get(page_path)
    assert page.status_code == 200, (page_path, page.text[:300])
    return driver.http.post(action, data={"csrf_token": csrf_token(page.text), **data})


def fetch(driver: Driver, username: str) -> User:
    with driver.app.app_context():
        user = get_state().users.find_by_username(username)
    assert user is not None
    return user


def events(driver: Driver, **query: str) -> list[dict[str, object]]:
    with driver.app.app_context():
        return search(get_state().store, Query(**query))


def test_nobody_but_an_admin_sees_anything(driver: Driver) -> None:
    for path in ("/admin", "/admin/people", "/admin/apps", "/admin/people/x"):
        anonymous = driver.http.get(path)
        assert anonymous.status_code == 404, path
        assert "admin" not in anonymous.text.lower() and "people" not in anonymous.text.lower()
    driver.user("mallory")
    driver.login("mallory")
    assert driver.http.get("/admin/people").status_code == 404
    assert driver.http.post("/admin/groups", data={"name": "x"}).status_code == 404
    assert any(e["event"] == "admin.denied" for e in events(driver))


def test_an_admin_manages_people_and_every_change_is_audited(driver: Driver,
                                                             clock: FakeClock) -> None:
    root = make_admin(driver)
    bob = driver.user("bob", email="bob@example.com")
    bob_session = Driver.of(driver.app)
    bob_session.login("bob")
    console_login(driver, root, clock)
    assert driver.http.get("/admin").headers["Location"] == "/admin/people"
    listing = driver.http.get("/admin/people?q=bob")
    assert "bob" in listing.text and "root" not in listing.text.split("<h1>")[1].split("Signed in")[0]
    assert post(driver, "/admin/groups", "/admin/groups", name="staff").status_code == 302
    person = f"/admin/people/{bob.id}"
    post(driver, person, f"{person}/groups", groups="staff")
    page = driver.http.get(person).text
    bad = driver.http.post(f"{person}/profile", data={
        "attr-csrf_token": csrf_token(page, "attr"), "attr-email": "not-an-address"})
    assert bad.status_code == 400 and "Enter an email address" in bad.text
    driver.http.post(f"{person}/profile", data={
        "attr-csrf_token": csrf_token(page, "attr"), "attr-name": "Bob B",
        "attr-email": "bob@example.com", "attr-birthdate": "1990-02-03", "email_verified": "on"})
    again = fetch(driver, "bob")
    assert again.groups == ["staff"] and again.profile["name"] == "Bob B"
    assert again.profile["email_verified"] is True and again.profile["birthdate"] == "1990-02-03"
    # disabling ends bob's sessions
    post(driver, person, f"{person}/status", disabled="yes")
    assert fetch(driver, "bob").disabled is True
    assert bob_session.http.get("/account").status_code == 302
    assert Driver.of(driver.app).login("bob").status_code == 401
    post(driver, person, f"{person}/status", disabled="no")
    assert Driver.of(driver.app).login("bob").status_code == 302
    # a POST without its CSRF token changes nothing
    driver.http.post(f"{person}/status", data={"disabled": "yes"})
    assert fetch(driver, "bob").disabled is False
    actions = {e.get("action") for e in events(driver, event="admin")}
    assert {"group.add", "user.groups", "user.set", "user.disable", "user.enable"} <= actions
    assert all(e["actor"] == "root" and e["actor_id"] == root.id
               for e in events(driver, event="admin") if e.get("via") == "console")
    # the audit view filters by event, user and text
    page = driver.http.get(f"/admin/audit?event=admin&user_id={bob.id}").text
    assert "user.disable" in page and "group.add" not in page
    assert "group.add" in driver.http.get("/admin/audit?q=staff").text


def test_the_last_admin_cannot_lose_the_role_or_be_disabled(driver: Driver,
                                                            clock: FakeClock) -> None:
    root = make_admin(driver)
    console_login(driver, root, clock)
    me = f"/admin/people/{root.id}"
    answer = post(driver, me, f"{me}/admin", admin="off")
    assert fetch(driver, "root").admin is True
    page = driver.http.get(me).text
    assert "last active admin" in page
    post(driver, me, f"{me}/status", disabled="yes")
    assert fetch(driver, "root").disabled is False
    assert any(e.get("action") == "refused" for e in events(driver, event="admin"))
    second = make_admin(driver, "second")
    post(driver, me, f"{me}/admin", admin="off")
    assert fetch(driver, "root").admin is False and answer is not None
    assert driver.http.get("/admin/people").status_code == 404  # no longer an admin
    assert fetch(driver, "second").admin is True and second.admin


def test_apps_register_rotate_and_remove_after_reauthentication(driver: Driver,
                                                                clock: FakeClock) -> None:
    console_login(driver, make_admin(driver), clock)
    created = post(driver, "/admin/apps/new", "/admin/apps/new", name="Wiki",
                   redirect_uris="https://wiki.example.com/cb")
    text = created.text
    client_id = re.search(r'id="client-id">([^<]+)<', text).group(1)  # type: ignore[union-attr]
    secret = re.search(r'id="client-secret">([^<]+)<', text).group(1)  # type: ignore[union-attr]
    with driver.app.app_context():
        client = get_client(get_state().store, client_id)
    assert client is not None and client.check_client_secret(secret)
    app_page = f"/admin/apps/{client_id}"
    assert "jwt access tokens" in driver.http.get(app_page).text, "the format is shown"
    bad = post(driver, app_page, app_page, name="Wiki", redirect_uris="http://evil.example/cb")
    assert bad.status_code == 400 and "http on a non-loopback host" in bad.text
    rotated = post(driver, app_page, f"{app_page}/rotate")
    new_secret = re.search(r'id="client-secret">([^<]+)<', rotated.text).group(1)  # type: ignore[union-attr]
    with driver.app.app_context():
        client = get_client(get_state().store, client_id)
    assert client is not None and client.check_client_secret(new_secret)
    assert not client.check_client_secret(secret)
    # removal asks for the password again
    first = post(driver, app_page, f"{app_page}/remove")
    assert first.headers["Location"] == f"/admin/reauth?next={app_page}"
    reauth = driver.http.get(first.headers["Location"])
    wrong = driver.http.post(reauth.request.full_path, data={
        "csrf_token": csrf_token(reauth.text), "password": "nope-nope"})
    assert wrong.status_code == 401
    ok = driver.http.post(reauth.request.full_path, data={
        "csrf_token": csrf_token(reauth.text), "password": PASSWORD})
    assert ok.status_code == 302 and ok.headers["Location"] == app_page
    post(driver, app_page, f"{app_page}/remove")
    with driver.app.app_context():
        assert get_client(get_state().store, client_id) is None
    clock.advance(301)  # the re-authentication has worn off
    make_client = post(driver, "/admin/apps/new", "/admin/apps/new", name="Two",
                       redirect_uris="https://two.example.com/cb")
    two = re.search(r'id="client-id">([^<]+)<', make_client.text).group(1)  # type: ignore[union-attr]
    again = post(driver, f"/admin/apps/{two}", f"/admin/apps/{two}/remove")
    assert again.headers["Location"].startswith("/admin/reauth")


def test_disabling_a_person_makes_their_next_refresh_fail(driver: Driver,
                                                          clock: FakeClock) -> None:
    root = make_admin(driver)
    bob = driver.user("bob")
    client, secret = driver.client(first_party=True, scope="openid offline_access",
                                   always_issue_refresh_token=True)
    bob_driver = Driver.of(driver.app)
    bob_driver.login("bob")
    code = bob_driver.code(client.client_id, scope="openid offline_access")
    tokens = json_of(bob_driver.token(client.client_id, secret, code=code))
    console_login(driver, root, clock)
    person = f"/admin/people/{bob.id}"
    post(driver, person, f"{person}/status", disabled="yes")
    refreshed = bob_driver.token(client.client_id, secret, grant_type="refresh_token",
                                 refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and json_of(refreshed)["error"] == "invalid_grant"


def test_keys_and_invitations_pages(driver: Driver, clock: FakeClock) -> None:
    console_login(driver, make_admin(driver), clock)
    with driver.app.app_context():
        before = len(get_state().keys.describe())
    post(driver, "/admin/keys", "/admin/keys")
    with driver.app.app_context():
        assert len(get_state().keys.describe()) == before + 1
    page = post(driver, "/admin/invitations", "/admin/invitations", email="zoe@example.com")
    link = re.search(r'id="invitation-link">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    assert "/invite/" in link and "zoe@example.com" in page.text


def test_an_admin_without_a_second_factor_sets_one_up_first(shared_instance: Path,
                                                           clock: FakeClock) -> None:
    from uauth.storage.memory import MemoryStore

    driver = Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock))
    root = driver.user("root")
    with driver.app.app_context():
        root.admin = True
        get_state().users.save(root)  # type: ignore[attr-defined]
    driver.login("root")
    step = driver.http.get("/admin/people")
    assert step.headers["Location"] == "/login/second-factor?next=/admin/people"
    assert driver.http.get(step.headers["Location"]).headers["Location"].startswith(
        "/login/enrol")
    off = Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock, UAUTH_MFA="off"))
    admin = off.user("root")
    with off.app.app_context():
        admin.admin = True
        get_state().users.save(admin)  # type: ignore[attr-defined]
    off.login("root")
    assert off.http.get("/admin/people").status_code == 200  # no second factors here at all


def test_resetting_second_factors_needs_reauthentication(driver: Driver,
                                                          clock: FakeClock) -> None:
    root = make_admin(driver)
    bob = make_admin(driver, "bob")  # someone with an authenticator app
    console_login(driver, root, clock)
    person = f"/admin/people/{bob.id}"
    page = driver.http.get(person).text
    assert "Reset second factors" in page
    first = post(driver, person, f"{person}/factors")
    assert first.headers["Location"] == f"/admin/reauth?next={person}"
    reauth = driver.http.get(first.headers["Location"])
    driver.http.post(reauth.request.full_path, data={"csrf_token": csrf_token(reauth.text),
                                                     "password": PASSWORD})
    done = post(driver, person, f"{person}/factors")
    assert done.status_code == 302
    with driver.app.app_context():
        assert not get_state().factors.has_second_factor(bob.id)
    assert any(e.get("action") == "user.mfa.reset" for e in events(driver, event="admin"))


def test_registration_tokens_are_shown_once_listed_and_revoked(shared_instance: Path,
                                                                store: Store,
                                                                clock: FakeClock) -> None:
    driver = Driver.of(make_app(shared_instance, store, clock, UAUTH_REGISTRATION="token"))
    # a signed-in non-admin gets the plain 404, for the page and its forms
    driver.user("mallory")
    visitor = Driver.of(driver.app)
    visitor.login("mallory")
    assert visitor.http.get("/admin/registration").status_code == 404
    assert visitor.http.post("/admin/registration", data={"expires": "3600",
                                                          "uses": "1"}).status_code == 404
    root = make_admin(driver)
    console_login(driver, root, clock)
    assert 'href="/admin/registration"' in driver.http.get("/admin/people").text
    # without its CSRF token a POST creates nothing
    driver.http.post("/admin/registration", data={"expires": "3600", "uses": "1"})
    assert "registration-token" not in driver.http.get("/admin/registration").text
    refused = post(driver, "/admin/registration", "/admin/registration", expires="123", uses="1")
    assert refused.status_code == 400 and "registration-token" not in refused.text
    page = post(driver, "/admin/registration", "/admin/registration", expires="3600", uses="2")
    assert page.status_code == 200
    token = re.search(r'id="registration-token">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    metadata = {"client_name": "svc", "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "none"}
    made = driver.http.post("/register", json=metadata,
                            headers={"Authorization": f"Bearer {token}"})
    assert made.status_code == 201, made.text
    # the list shows an id, the lifetime and the uses left, never the token again
    listing = driver.http.get("/admin/registration").text
    assert token not in listing and "1 of 2 use(s) left" in listing
    key = re.search(r'name="key" value="([^"]+)"', listing).group(1)  # type: ignore[union-attr]
    assert key != token and key[:12] in listing
    revoked = post(driver, "/admin/registration", "/admin/registration/revoke", key=key)
    assert revoked.status_code == 302
    assert "None." in driver.http.get("/admin/registration").text
    late = driver.http.post("/register", json=metadata,
                            headers={"Authorization": f"Bearer {token}"})
    assert late.status_code == 401 and json_of(late)["error"] == "invalid_token"
    console = [e for e in events(driver, event="admin") if e.get("via") == "console"]
    actions = [e.get("action") for e in console]
    assert "registration.token.create" in actions and "registration.token.revoke" in actions
    assert actions.count("registration.token.create") == 1
    assert all(e["actor"] == "root" and e["actor_id"] == root.id for e in console)
    assert all(token not in str(e) for e in events(driver))
