"""Claims from the profile, operator-defined claims and scopes, and pairwise subjects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.app_driver import own_users
from tests.conftest import FakeClock
from tests.http_stub import serve
from uauth import create_app
from uauth.core.claims import SALT
from uauth.core.claims import sector_of
from uauth.core.claims import shared_salt
from uauth.core.clients import RegistrationError
from uauth.core.records import SETTING
from uauth.core.records import SUBJECT
from uauth.core.settings import ConfigError
from uauth.ops.instance import SALT_FILE
from uauth.storage import Store
from uauth.storage.memory import MemoryStore

GROUPS = {"groups": {"description": "The groups you belong to", "claims": ["groups"]},
          "profile": {"claims": {"department": "dept"}}}


def tokens(driver: Driver, client_id: str, secret: str | None, scope: str = "openid",
           redirect_uri: str = REDIRECT) -> Any:
    code = driver.code(client_id, scope=scope, redirect_uri=redirect_uri)
    response = driver.token(client_id, secret, code=code, redirect_uri=redirect_uri)
    assert response.status_code == 200, response.json
    return json_of(response)


def userinfo(driver: Driver, access_token: str) -> Any:
    return driver.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def sub_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


# --- operator-defined claims -------------------------------------------------------------------


@pytest.fixture
def custom(shared_instance: Path, clock: FakeClock) -> Driver:
    return Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock,
                              UAUTH_CUSTOM_SCOPES=GROUPS))


def test_custom_scopes_and_claims_are_advertised(custom: Driver) -> None:
    meta = json_of(custom.http.get("/.well-known/openid-configuration"))
    assert "groups" in meta["scopes_supported"]
    assert {"groups", "department", "email_verified"} <= set(meta["claims_supported"])
    assert meta["subject_types_supported"] == ["public", "pairwise"]


def test_a_custom_scope_releases_its_claims_and_only_when_granted(custom: Driver) -> None:
    custom.user(groups=["staff", "admins"], dept="R&D", email="a@example.com")
    client, secret = custom.client(scope="openid profile groups")
    custom.login()
    page = custom.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid groups"})
    assert "The groups you belong to" in page.text, "the consent page describes the scope"
    granted = json_of(userinfo(custom, tokens(custom, client.client_id, secret,
                                              "openid groups profile")["access_token"]))
    assert granted["groups"] == ["staff", "admins"] and granted["department"] == "R&D"
    assert "email" not in granted and "dept" not in granted
    plain = json_of(userinfo(custom, tokens(custom, client.client_id, secret)["access_token"]))
    assert "groups" not in plain and "department" not in plain


def test_custom_claims_can_be_asked_for_by_name(custom: Driver) -> None:
    custom.user(groups=["staff"], dept="R&D")
    client, secret = custom.client(scope="openid profile groups")
    custom.login()
    asked = json.dumps({"userinfo": {"groups": None}, "id_token": {"department": None}})
    code = custom.code(client.client_id, scope="openid", claims=asked)
    token = json_of(custom.token(client.client_id, secret, code=code))
    assert json_of(userinfo(custom, token["access_token"]))["groups"] == ["staff"]
    id_token = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert id_token["department"] == "R&D" and "groups" not in id_token


def test_clients_may_not_ask_for_custom_scopes_they_were_not_given(custom: Driver) -> None:
    custom.user()
    client, _ = custom.client(scope="openid profile")
    custom.login()
    response = custom.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid groups"})
    assert "error=invalid_scope" in response.headers["Location"]


@pytest.mark.parametrize(("value", "message"), [
    ({"groups": {"claims": ["sub"]}}, "'sub' cannot be a custom claim name"),
    ({"groups": {"claims": "groups"}}, "needs 'claims'"),
    ({"bad scope": {"claims": ["x"]}}, "not a valid scope name"),
    ({"openid": {"claims": ["x"]}}, "cannot carry claims"),
    ({"groups": {"claims": ["groups"], "colour": 1}}, "must be a mapping with 'claims'"),
    (["groups"], "must be a mapping"),
])
def test_bad_custom_scopes_fail_at_start(shared_instance: Path, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app({"UAUTH_STORAGE": "memory://", "UAUTH_CUSTOM_SCOPES": value},
                   instance_path=shared_instance / "instance")
    assert str(caught.value).startswith("UAUTH_CUSTOM_SCOPES") and message in str(caught.value)


def test_email_is_verified_only_when_someone_verified_it(custom: Driver) -> None:
    address = {"street_address": "1 Main St", "locality": "Springfield", "country": "US"}
    custom.user("ann", email="ann@example.com", phone_number="+44 20 7946 0958",
                address=address)
    custom.user("bob", email="bob@example.com", email_verified=True)
    client, secret = custom.client(first_party=True)
    infos = {}
    for name, verified in (("ann", False), ("bob", True)):
        browser = Driver.of(custom.app)  # its own cookies
        browser.login(name)
        info = json_of(userinfo(browser, tokens(browser, client.client_id, secret,
                                                "openid email phone address")["access_token"]))
        assert info["email"] == f"{name}@example.com" and info["email_verified"] is verified
        infos[name] = info
    assert infos["ann"]["phone_number"] == "+44 20 7946 0958"
    assert infos["ann"]["phone_number_verified"] is False, "nobody verified the number"
    assert infos["ann"]["address"] == address, "the address scope releases the address claim"
    assert "phone_number" not in infos["bob"] and "address" not in infos["bob"]


def test_changing_a_verified_value_resets_its_flag(custom: Driver) -> None:
    user = custom.user(email="a@example.com", email_verified=True, phone_number="+15551234567",
                       phone_number_verified=True)
    with custom.app.app_context():
        users = own_users()
        assert users.update_profile(user, {"email": "a@example.com"}) == [], "unchanged: kept"
        changed = users.update_profile(user, {"email": "new@example.com"})
        assert changed == ["email", "email_verified"]
        assert "email_verified" not in user.profile and user.profile["phone_number_verified"]
        users.update_profile(user, {"phone_number": "+15557654321",
                                    "phone_number_verified": True})
        assert user.profile["phone_number_verified"] is True, "an operator may set both at once"


# --- pairwise subjects -------------------------------------------------------------------------


@pytest.fixture
def driver(shared_instance: Path, store: Store, clock: FakeClock) -> Driver:
    return Driver.of(make_app(shared_instance, store, clock))


def test_pairwise_subjects_differ_per_sector_and_resolve_at_userinfo(
        driver: Driver, shared_instance: Path, store: Store, clock: FakeClock) -> None:
    user = driver.user()
    web = "https://rp.example.com/cb"
    same_a, secret_a = driver.client(redirect_uris=[web])
    same_b, secret_b = driver.client(redirect_uris=[web])  # same host: same sector
    other, secret_o = driver.client(redirect_uris=[web.replace("rp.", "other.")])
    public, secret_p = driver.client(subject_type="public")
    assert same_a.subject_type == "pairwise" and same_a.sector_identifier == "rp.example.com"
    driver.login()
    got = {}
    for client, secret in ((same_a, secret_a), (same_b, secret_b), (other, secret_o),
                           (public, secret_p)):
        token = tokens(driver, client.client_id, secret, redirect_uri=client.redirect_uris[0])
        got[client.client_id] = sub_of(token["id_token"])
        assert sub_of(token["access_token"]) == got[client.client_id]
        info = userinfo(driver, token["access_token"])
        assert info.status_code == 200 and json_of(info)["sub"] == got[client.client_id]
    assert got[same_a.client_id] == got[same_b.client_id], "one sector, one sub"
    assert got[same_a.client_id] != got[other.client_id], "another sector, another sub"
    assert got[public.client_id] == user.id
    assert user.id not in got[same_a.client_id] and len(got[same_a.client_id]) == 43
    again = tokens(driver, same_a.client_id, secret_a, redirect_uri=web)
    assert sub_of(again["id_token"]) == got[same_a.client_id], "stable across tokens"
    # another worker (empty cache) over the same storage resolves it through the index
    fresh = Driver.of(make_app(shared_instance, store, clock))
    assert json_of(userinfo(fresh, again["access_token"]))["sub"] == got[same_a.client_id]
    index = store.find(SUBJECT, got[same_a.client_id])
    assert index == {"user_id": user.id, "sector": "rp.example.com"}


def test_the_pairwise_salt_is_shared_through_storage(tmp_path: Path, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    first = Driver.of(make_app(tmp_path / "a", store, clock))
    user = first.user()
    client, secret = first.client()
    first.login()
    sub = sub_of(tokens(first, client.client_id, secret)["id_token"])
    assert sub != user.id
    assert len(store.find(SETTING, SALT)["salt"]) >= 43  # type: ignore[index]
    assert not (tmp_path / "a" / "instance" / SALT_FILE).exists(), "nothing to copy between hosts"
    shared_secret = (tmp_path / "a" / "instance" / "secret_key").read_text()  # as the guide says
    other_host = Driver.of(make_app(tmp_path / "b", store, clock, SECRET_KEY=shared_secret))
    other_host.login()
    assert sub_of(tokens(other_host, client.client_id, secret)["id_token"]) == sub


def test_a_legacy_salt_file_is_imported_so_subjects_do_not_change(tmp_path: Path,
                                                                  clock: FakeClock) -> None:
    legacy = tmp_path / "instance"
    legacy.mkdir()
    (legacy / SALT_FILE).write_text("an-older-uauth-wrote-this-salt-0123456789abcdef\n")
    store = MemoryStore(clock=clock)
    assert shared_salt(store, legacy / SALT_FILE) == b"an-older-uauth-wrote-this-salt-0123456789abcdef"
    assert shared_salt(store) == shared_salt(store, legacy / SALT_FILE), "stored once, then kept"


def test_default_subject_type_follows_the_config(shared_instance: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock,
                                UAUTH_DEFAULT_SUBJECT_TYPE="public"))
    client, _ = driver.client()
    assert client.subject_type == "public" and client.sector_identifier is None
    with pytest.raises(ConfigError, match="UAUTH_DEFAULT_SUBJECT_TYPE must be pairwise or public"):
        make_app(shared_instance, MemoryStore(), clock, UAUTH_DEFAULT_SUBJECT_TYPE="private")


def test_pairwise_needs_one_host_or_a_sector_identifier_uri(driver: Driver) -> None:
    with pytest.raises(RegistrationError, match="OIDC Core 8.1"):
        driver.client(redirect_uris=["https://a.example.com/cb", "https://b.example.com/cb"])
    public, _ = driver.client(redirect_uris=["https://a.example.com/cb",
                                             "https://b.example.com/cb"], subject_type="public")
    assert public.sector_identifier is None
    native, _ = driver.client(redirect_uris=["com.example.app:/cb"], public=True)
    assert native.sector_identifier is None, "a private-use scheme: the client's own sector"


def test_loopback_and_native_clients_each_get_their_own_sector(driver: Driver) -> None:
    """Issue 17 item 5: every CLI redirecting to 127.0.0.1 must not share one pairwise sub."""
    user = driver.user()
    cli_a, secret_a = driver.client(redirect_uris=[REDIRECT])
    cli_b, secret_b = driver.client(redirect_uris=[REDIRECT])
    driver.login()
    sub_a = sub_of(tokens(driver, cli_a.client_id, secret_a)["id_token"])
    sub_b = sub_of(tokens(driver, cli_b.client_id, secret_b)["id_token"])
    assert sub_a != sub_b, "two loopback clients, two sectors"
    assert user.id not in (sub_a, sub_b)
    app_a, _ = driver.client(redirect_uris=["com.example.app:/cb"], public=True)
    app_b, _ = driver.client(redirect_uris=["com.example.app:/cb"], public=True)
    assert sector_of(app_a) != sector_of(app_b)


@pytest.fixture
def sector_site() -> Iterator[tuple[str, dict[str, bytes]]]:
    documents: dict[str, bytes] = {}
    with serve(documents, "application/json") as url:
        yield url, documents


def test_a_sector_identifier_uri_groups_hosts_into_one_sector(
        driver: Driver, sector_site: tuple[str, dict[str, bytes]]) -> None:
    sector_host, documents = sector_site
    uris = ["http://localhost:8399/cb", "http://[::1]:8399/cb"]
    documents.update({"/sector.json": json.dumps([*uris, "http://localhost:9/x"]).encode(),
                      "/short.json": json.dumps(uris[:1]).encode(),
                      "/object.json": b'{"redirect_uris": []}'})
    # The stub is plain http on loopback: allowed only because the host is allow-listed.
    allowed = {"fetch_allowed_hosts": ["127.0.0.1"]}
    client, _ = driver.client(redirect_uris=uris, sector_identifier_uri=sector_host +
                              "/sector.json", **allowed)
    assert client.sector_identifier == "127.0.0.1"
    with pytest.raises(RegistrationError, match=r"does not list the redirect URI\(s\) http://\[::1\]"):
        driver.client(redirect_uris=uris, sector_identifier_uri=sector_host + "/short.json",
                      **allowed)
    with pytest.raises(RegistrationError, match="must return a JSON array"):
        driver.client(redirect_uris=uris, sector_identifier_uri=sector_host + "/object.json",
                      **allowed)
    with pytest.raises(RegistrationError, match="cannot fetch"):
        driver.client(redirect_uris=uris, sector_identifier_uri=sector_host + "/missing.json",
                      **allowed)
    with pytest.raises(RegistrationError, match="must be an https URL"):
        driver.client(redirect_uris=uris, sector_identifier_uri=sector_host + "/sector.json")
    with pytest.raises(RegistrationError, match="must be an https URL"):
        driver.client(redirect_uris=uris, sector_identifier_uri="http://example.com/s.json")
