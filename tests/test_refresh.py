"""Token lifetimes and the grace window, in process with the fake clock, on every backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.app_driver import own_users
from tests.conftest import FakeClock
from uauth.core.records import REFRESH
from uauth.core.tokens import revoke_grant
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage import hash_key

OFFLINE = "openid offline_access"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One instance folder for the module: its signing key is generated once, not per test."""
    return tmp_path_factory.mktemp("refresh")


def app_driver(shared: Path, store: Store, clock: FakeClock, **config: Any) -> Driver:
    return Driver.of(make_app(shared, store, clock, **config))


def start(driver: Driver) -> tuple[str, str | None, dict[str, Any]]:
    """A user, a client and the token response of an offline_access code flow."""
    driver.user()
    client, secret = driver.client()
    driver.login()
    code = driver.code(client.client_id, scope=OFFLINE)
    response = driver.token(client.client_id, secret, code=code)
    assert response.status_code == 200, response.text
    return client.client_id, secret, json_of(response)


def refresh(driver: Driver, client_id: str, secret: str | None, token: str, **data: str) -> Any:
    return driver.http.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": token, **data},
                            headers=basic_auth(client_id, secret))




def disable(driver: Driver, username: str) -> None:
    with driver.app.app_context():
        users = own_users()
        user = users.find_by_username(username)
        assert user is not None
        user.disabled = True
        users.save(user)


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_idle_refresh_tokens_expire(shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock, UAUTH_REFRESH_TOKEN_IDLE_TTL=100)
    client_id, secret, token = start(driver)
    r0 = token["refresh_token"]
    clock.advance(90)
    r1 = json_of(refresh(driver, client_id, secret, r0))["refresh_token"]
    clock.advance(90)
    r2 = json_of(refresh(driver, client_id, secret, r1))["refresh_token"]
    clock.advance(101)
    response = refresh(driver, client_id, secret, r2)
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_rotation_never_extends_the_family_lifetime(shared: Path, store: Store,
                                                    clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock, UAUTH_REFRESH_TOKEN_TTL=250,
                        UAUTH_REFRESH_TOKEN_IDLE_TTL=100)
    client_id, secret, token = start(driver)
    family_end = int(clock()) + 250
    current = token["refresh_token"]
    for _ in range(2):
        clock.advance(90)
        response = refresh(driver, client_id, secret, current)
        assert response.status_code == 200
        current = json_of(response)["refresh_token"]
    info = json_of(driver.http.post("/introspect", data={"token": current},
                                    headers=basic_auth(client_id, secret)))
    assert info["exp"] == family_end, "the successor got only what is left of the family"
    clock.advance(71)  # 80 s after the last use (under the idle limit), 251 s after login
    response = refresh(driver, client_id, secret, current)
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_refreshed_id_token_keeps_the_original_authentication(
        shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    client_id, secret, token = start(driver)
    original = unverified(token["id_token"])
    clock.advance(600)
    refreshed = unverified(json_of(refresh(driver, client_id, secret, token["refresh_token"]))
                           ["id_token"])
    for claim in ("iss", "sub", "aud", "azp", "auth_time", "amr"):
        assert refreshed[claim] == original[claim], claim
    assert refreshed["iat"] == original["iat"] + 600 and "nonce" not in refreshed


def test_claims_request_carries_over_to_refreshed_tokens(
        shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    driver.user(email="alice@example.com", name="Alice")
    client, secret = driver.client()
    driver.login()
    asked = json.dumps({"id_token": {"name": None}, "userinfo": {"email": None}})
    code = driver.code(client.client_id, scope=OFFLINE, claims=asked)
    token = json_of(driver.token(client.client_id, secret, code=code))
    rotated = json_of(refresh(driver, client.client_id, secret, token["refresh_token"]))
    assert unverified(rotated["id_token"])["name"] == "Alice"
    info = json_of(driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {rotated['access_token']}"}))
    assert info["email"] == "alice@example.com"


def test_retry_within_the_grace_window(shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock, UAUTH_REFRESH_REUSE_GRACE=10)
    client_id, secret, token = start(driver)
    first = json_of(refresh(driver, client_id, secret, token["refresh_token"]))
    clock.advance(10)  # the window includes its last second
    retry = refresh(driver, client_id, secret, token["refresh_token"])
    assert retry.status_code == 200
    assert json_of(retry)["refresh_token"] == first["refresh_token"]
    assert refresh(driver, client_id, secret, first["refresh_token"]).status_code == 200


def test_retry_after_the_grace_window_is_reuse(shared: Path, store: Store,
                                               clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock, UAUTH_REFRESH_REUSE_GRACE=10)
    client_id, secret, token = start(driver)
    first = json_of(refresh(driver, client_id, secret, token["refresh_token"]))
    clock.advance(11)
    late = refresh(driver, client_id, secret, token["refresh_token"])
    assert late.status_code == 400 and json_of(late)["error"] == "invalid_grant"
    assert json_of(refresh(driver, client_id, secret, first["refresh_token"]))["error"] == \
        "invalid_grant", "the family was revoked"
    userinfo = driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 401


def test_token_saved_by_a_request_racing_revocation_is_refused(
        shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    client_id, secret, token = start(driver)
    key = hash_key(token["refresh_token"])
    record = store.find(REFRESH, key)
    assert record is not None
    with driver.app.app_context():
        revoke_grant(get_state(), record["grant_id"])
    # A rotation that read the family before the revocation saves its token afterwards.
    store.save(REFRESH, key, record, ttl=600, grant_id=record["grant_id"])
    response = refresh(driver, client_id, secret, token["refresh_token"])
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_a_replay_landing_between_the_spend_and_the_deny_list_read_leaves_one_winner(
        shared: Path, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster the deny list lives on another primary than the token: a replay may find the
    token spent and revoke the family before the request that spent it reads the deny list.
    That revocation came after the spend, so the winner still gets its answer (the tokens it is
    given are denied with the family); the replay is refused. Before, both were refused."""
    from uauth.core.refresh import consume_refresh_token as spend

    driver = app_driver(shared, store, clock)
    client_id, secret, token = start(driver)
    replays: list[Any] = []

    def spend_then_replay(state: Any, raw: str, record: Any) -> Any:
        spent = spend(state, raw, record)
        if not replays:  # the replay's whole request, in this gap
            replays.append(None)  # first: the replay spends through this wrapper too
            replays[0] = refresh(driver, client_id, secret, raw)
        return spent

    monkeypatch.setattr("uauth.oauth.grants.refresh_token.consume_refresh_token",
                        spend_then_replay)
    winner = refresh(driver, client_id, secret, token["refresh_token"])
    monkeypatch.undo()
    assert [winner.status_code, replays[0].status_code] == [200, 400], winner.text
    assert json_of(replays[0])["error"] == "invalid_grant"
    onward = refresh(driver, client_id, secret, json_of(winner)["refresh_token"])
    assert onward.status_code == 400, "the replay revoked the family, the winner's tokens too"
    userinfo = driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {json_of(winner)['access_token']}"})
    assert userinfo.status_code == 401


def test_disabled_user_cannot_refresh(shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    client_id, secret, token = start(driver)
    disable(driver, "alice")
    response = refresh(driver, client_id, secret, token["refresh_token"])
    assert response.status_code == 400 and json_of(response)["error"] == "invalid_grant"


def test_expired_access_tokens_introspect_inactive_and_revoke_quietly(
        shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock, UAUTH_ACCESS_TOKEN_TTL=60)
    client_id, secret, token = start(driver)
    headers = basic_auth(client_id, secret)
    live = driver.http.post("/introspect", data={"token": token["access_token"]}, headers=headers)
    assert json_of(live)["active"] is True and json_of(live)["exp"] == int(clock()) + 60
    jti = unverified(token["access_token"])["jti"]
    driver.http.post("/revoke", data={"token": token["access_token"]}, headers=headers)
    assert store.find("revoked", f"jti:{jti}") is not None
    clock.advance(61)
    assert store.find("revoked", f"jti:{jti}") is None, "the deny list forgets expired tokens"
    fresh = json_of(driver.token(client_id, secret, code=driver.code(client_id, scope=OFFLINE)))
    clock.advance(61)
    late = driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {fresh['access_token']}"})
    assert late.status_code == 401 and 'error_description="the token has expired"' in \
        late.headers["WWW-Authenticate"]
    expired = driver.http.post("/introspect", data={"token": token["access_token"]},
                               headers=headers)
    assert expired.json == {"active": False}
    revoked = driver.http.post("/revoke", data={"token": token["access_token"]}, headers=headers)
    assert revoked.status_code == 200
    assert store.find("revoked", f"jti:{jti}") is None, "nothing to deny once it has expired"


def test_a_disabled_users_tokens_introspect_inactive(shared: Path, store: Store,
                                                     clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    client_id, secret, token = start(driver)
    headers = basic_auth(client_id, secret)
    disable(driver, "alice")
    for kind in ("access_token", "refresh_token"):
        answer = driver.http.post("/introspect", data={"token": token[kind]}, headers=headers)
        assert answer.json == {"active": False}, kind
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert driver.http.get("/userinfo", headers=bearer).status_code == 401, "the same verdict"


def test_a_retry_after_a_failed_save_gets_a_successor_that_works(shared: Path,
                                                                 clock: FakeClock) -> None:
    """The old token was spent and the successor derived, then storage failed before the
    successor was saved (503): the client's retry within the grace window must get a working
    token, not one that was never stored (issue 9: a storage outage loses nothing)."""
    from uauth.storage import StorageUnavailable
    from uauth.storage.memory import MemoryStore

    class FailsOnce(MemoryStore):
        """Memory storage whose next refresh-token write (save or add) fails."""

        armed = False

        def _fail(self, kind: str) -> None:
            if self.armed and kind == REFRESH:
                self.armed = False
                raise StorageUnavailable("storage down for one write")

        def save(self, kind: str, key: str, record: Any, ttl: int | None, *,
                 grant_id: str | None = None) -> None:
            self._fail(kind)
            super().save(kind, key, record, ttl, grant_id=grant_id)

        def add(self, kind: str, key: str, record: Any, ttl: int | None, *,
                grant_id: str | None = None) -> bool:
            self._fail(kind)
            return super().add(kind, key, record, ttl, grant_id=grant_id)

    store = FailsOnce(clock=clock)
    driver = app_driver(shared, store, clock, UAUTH_REFRESH_REUSE_GRACE=30)
    client_id, secret, token = start(driver)
    store.armed = True
    failed = refresh(driver, client_id, secret, token["refresh_token"])
    assert failed.status_code == 503 and json_of(failed)["error"] == "temporarily_unavailable"
    retried = refresh(driver, client_id, secret, token["refresh_token"])
    assert retried.status_code == 200
    onward = refresh(driver, client_id, secret, json_of(retried)["refresh_token"])
    assert onward.status_code == 200, onward.json


def test_narrowing_the_scope_on_refresh_drops_the_claims_of_the_scopes_left_out(
        shared: Path, store: Store, clock: FakeClock) -> None:
    driver = app_driver(shared, store, clock)
    driver.user(email="alice@example.com", phone_number="+44 20 7946 0958", name="Alice")
    client, secret = driver.client()
    driver.login()
    asked = json.dumps({"id_token": {"phone_number": None}, "userinfo": {"email": None}})
    code = driver.code(client.client_id, scope="openid email phone offline_access", claims=asked)
    token = json_of(driver.token(client.client_id, secret, code=code))
    narrowed = json_of(refresh(driver, client.client_id, secret, token["refresh_token"],
                               scope="openid offline_access"))
    assert narrowed["scope"] == "openid offline_access"
    assert "phone_number" not in unverified(narrowed["id_token"])
    info = json_of(driver.http.get("/userinfo", headers={
        "Authorization": f"Bearer {narrowed['access_token']}"}))
    assert "email" not in info, info
    wide = json_of(refresh(driver, client.client_id, secret, narrowed["refresh_token"]))
    assert unverified(wide["id_token"])["phone_number"] == "+44 20 7946 0958", (
        "the refresh token keeps the grant's scope, so a later refresh may ask for it again")
