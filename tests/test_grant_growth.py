"""Issue 17 item 4: what one session or account accumulates is bounded, and logout's cost does
not grow with how many times a person authorized."""

from __future__ import annotations

from pathlib import Path

from tests.app_driver import Driver
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.conftest import FakeClock
from uauth.core.consents import apps_group
from uauth.core.grantlimits import MAX_GRANTS_PER_CLIENT
from uauth.core.grantlimits import HeldGrant
from uauth.core.grantlimits import family_prefix
from uauth.core.grantlimits import remember_session_grant
from uauth.core.grantlimits import session_grant
from uauth.core.records import APP_GRANT
from uauth.core.records import AUDIT_EVENT
from uauth.core.records import REVOKED
from uauth.core.sessions import end_all
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage.memory import MemoryStore

ROUNDS = 120


def notes(store: MemoryStore, user_id: str, client_id: str) -> int:
    return sum(1 for kind, _, record in store.grant_records(apps_group(user_id))
               if kind == APP_GRANT and record["client_id"] == client_id)


def test_silent_authorizations_reuse_one_grant_per_client_and_session(tmp_path: Path,
                                                                     clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    d = Driver.of(make_app(tmp_path, store, clock))
    user = d.user()
    client, secret = d.client()
    d.login()
    first = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    for _ in range(ROUNDS):
        d.code(client.client_id, prompt="none")
    last = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    assert notes(store, user.id, client.client_id) == 1, "one grant note, however many times"
    for token in (first, last):
        info = d.http.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert info.status_code == 200
    markers = sum(1 for _ in store.scan(REVOKED))
    with d.app.app_context():
        end_all(get_state(), user.id)
    assert sum(1 for _ in store.scan(REVOKED)) - markers == 1, "logout revokes one grant"
    info = d.http.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert info.status_code == 401


def test_refresh_grants_per_client_are_capped_oldest_first(tmp_path: Path,
                                                           clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    d = Driver.of(make_app(tmp_path, store, clock))
    user = d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    d.login()
    oldest = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    for _ in range(MAX_GRANTS_PER_CLIENT + 10):
        clock.advance(1)
        d.code(client.client_id, prompt="none")
    families = sum(1 for kind, _, record in store.grant_records(apps_group(user.id))
                   if kind == APP_GRANT and record.get("offline"))
    assert families == 1, "codes never redeemed start no family"
    refresh = {"grant_type": "refresh_token"}
    alive = d.http.post("/token", data={**refresh, "refresh_token": oldest["refresh_token"]},
                        auth=(client.client_id, secret))
    assert alive.status_code == 200, "silent authorizations evict no one's refresh tokens"
    oldest = json_of(alive)
    for _ in range(MAX_GRANTS_PER_CLIENT):
        clock.advance(1)
        json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    audited = {key for key, _ in store.scan(AUDIT_EVENT)}
    newest = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    evictions = [(record["reason"], "records" in record) for key, record in store.scan(AUDIT_EVENT)
                 if key not in audited and record["event"] == "family.revoked"]
    assert evictions == [("grant cap", False)], (
        "an eviction is audited as the cap's, without the count its held delete cannot give")
    families = sum(1 for kind, _, record in store.grant_records(apps_group(user.id))
                   if kind == APP_GRANT and record.get("offline"))
    assert families <= MAX_GRANTS_PER_CLIENT
    gone = d.http.post("/token", data={**refresh, "refresh_token": oldest["refresh_token"]},
                       auth=(client.client_id, secret))
    assert gone.status_code == 400, "the oldest family was evicted and revoked"
    kept = d.http.post("/token", data={**refresh, "refresh_token": newest["refresh_token"]},
                       auth=(client.client_id, secret))
    assert kept.status_code == 200


def test_families_started_within_one_second_are_evicted_in_the_order_they_started(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """At the cap, the family evicted is the one that started first, even when every family
    started within the same second (whole seconds left them in the order storage lists them,
    so a family a moment old could be revoked before its first use)."""
    d = Driver.of(make_app(tmp_path, store, clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    d.login()
    clock.advance(0.5 - clock.now % 1)  # the middle of a second: all of it fits in this one
    issued = []
    for _ in range(MAX_GRANTS_PER_CLIENT + 3):
        clock.advance(0.001)
        issued.append(json_of(d.token(client.client_id, secret, code=d.code(client.client_id))))
    assert int(clock.now) == int(clock.now - 0.001 * (MAX_GRANTS_PER_CLIENT + 3))

    def alive(tokens: dict[str, str]) -> bool:
        info = d.http.get("/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"})
        return info.status_code == 200

    assert [alive(t) for t in issued] == [False] * 3 + [True] * MAX_GRANTS_PER_CLIENT


def grants_of(store: Store, user_id: str, client_id: str) -> list[str]:
    return sorted(str(record["grant_id"]) for kind, _, record
                  in store.grant_records(apps_group(user_id))
                  if kind == APP_GRANT and record["client_id"] == client_id)


def test_the_grant_read_with_the_session_is_reused_unless_it_was_revoked(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """``/authorize`` reads the grant a session holds for a client with the session (its note
    keyed by the cookie's ``sid``), and its deny-list entry after: a later sign-in reuses it, a
    grant denied meanwhile (its note left behind, as an interrupted revocation on a cluster
    would leave it) is not reused, and a cookie without the ``sid`` still reuses the grant."""
    d = Driver.of(make_app(tmp_path, store, clock))
    user = d.user()
    client, secret = d.client()
    d.login()
    first = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    [grant] = grants_of(store, user.id, client.client_id)
    store.save(REVOKED, f"grant:{grant}", {"at": clock()}, ttl=3600)
    third = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    grants = grants_of(store, user.id, client.client_id)
    assert len(grants) == 2 and grant in grants, "a new grant: the old one is denied"
    with d.http.session_transaction() as cookie:
        del cookie["uauth_sid"]  # a cookie from before the sid was kept in it
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    assert grants_of(store, user.id, client.client_id) == grants, "the new grant, reused"
    for token, status in ((first, 401), (third, 200)):
        info = d.http.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert info.status_code == status


def test_a_grant_read_ahead_answers_only_for_its_own_session_and_client(
        tmp_path: Path, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    d = Driver.of(make_app(tmp_path, store, clock))
    with d.app.app_context():
        state = get_state()
        remember_session_grant(state, "sid", "app", "stored", ttl=60)
        held = HeldGrant("sid", "app", None)
        assert session_grant(state, "sid", "app", held) is None, "what was read ahead answers"
        assert session_grant(state, "sid", "app", HeldGrant("other", "app", None)) == "stored"
        assert session_grant(state, "sid", "app", HeldGrant("sid", "web", None)) == "stored"


def test_a_familys_note_replaces_its_codes_and_an_offline_family_outlives_logout(
        tmp_path: Path, store: Store, clock: FakeClock) -> None:
    """When a code's refresh token starts a family, the code's note (revoked at logout, keyed by
    the grant) gives way to the family's (keyed by the client and its start, which the cap reads
    in order): one note per grant, so logout, which revokes the grants its notes name, leaves an
    ``offline_access`` family alone."""
    d = Driver.of(make_app(tmp_path, store, clock))
    user = d.user()
    client, secret = d.client()
    d.login()
    tokens = json_of(d.token(client.client_id, secret,
                             code=d.code(client.client_id, scope="openid offline_access")))
    assert "refresh_token" in tokens
    held = [(key, record) for kind, key, record in store.grant_records(apps_group(user.id))
            if kind == APP_GRANT]
    assert len(held) == 1, held
    key, note = held[0]
    assert key.startswith(family_prefix(user.id, client.client_id)) and note["offline"]
    assert not note["revoke_at_logout"]
    with d.app.app_context():
        end_all(get_state(), user.id)
    again = d.http.post("/token", data={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]},
                        auth=(client.client_id, secret))
    assert again.status_code == 200, "offline access outlives the login"


class DeviceAndCodes:
    """One person and one client that starts refresh-token families both ways: by the device
    flow and by the code flow, each family a second after the last."""

    def __init__(self, tmp_path: Path, store: Store, clock: FakeClock) -> None:
        from tests.app_driver import REDIRECT
        from tests.test_device import DEVICE

        self.clock = clock
        self.d = Driver.of(make_app(tmp_path, store, clock))
        self.d.user()
        client, self.secret = self.d.client(
            grant_types=[DEVICE, "refresh_token", "authorization_code"], redirect_uris=[REDIRECT])
        self.client_id = client.client_id
        self.d.login()

    def device_family(self) -> str:
        from tests.test_device import decide
        from tests.test_device import poll
        from tests.test_device import start

        self.clock.advance(1)
        started = json_of(start(self.d, self.client_id, self.secret))
        decide(self.d, started["user_code"])
        self.clock.advance(5)
        answer = json_of(poll(self.d, self.client_id, started["device_code"], self.secret))
        return str(answer["refresh_token"])

    def code_family(self) -> str:
        self.clock.advance(1)
        code = self.d.code(self.client_id, scope="openid offline_access")
        return str(json_of(self.d.token(self.client_id, self.secret, code=code))["refresh_token"])

    def refresh(self, token: str) -> str | None:
        """The rotated token, or None when the family was revoked."""
        answer = self.d.http.post("/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": token},
                                  auth=(self.client_id, self.secret))
        return str(json_of(answer)["refresh_token"]) if answer.status_code == 200 else None


def test_a_device_flows_family_counts_against_the_cap(tmp_path: Path, store: Store,
                                                      clock: FakeClock) -> None:
    """A family begun by the device flow is noted as a code's is, so the cap counts it and
    evicts it in its turn (the oldest here)."""
    person = DeviceAndCodes(tmp_path, store, clock)
    first = person.device_family()
    codes = [person.code_family() for _ in range(MAX_GRANTS_PER_CLIENT - 1)]
    kept = person.refresh(first)
    assert kept is not None, "fifty families: none evicted yet"
    person.code_family()
    assert person.refresh(kept) is None, "the device's family was the oldest"
    assert person.refresh(codes[0]) is not None


def test_a_device_flows_family_evicts_the_oldest_past_the_cap(tmp_path: Path, store: Store,
                                                              clock: FakeClock) -> None:
    """The cap bounds every way a family starts: the device flow's fifty-first family evicts
    the person's oldest, as a code's does, and keeps itself and the forty-nine newest."""
    person = DeviceAndCodes(tmp_path, store, clock)
    codes = [person.code_family() for _ in range(MAX_GRANTS_PER_CLIENT)]
    audited = {key for key, _ in store.scan(AUDIT_EVENT)}
    device = person.device_family()
    evictions = [record["reason"] for key, record in store.scan(AUDIT_EVENT)
                 if key not in audited and record["event"] == "family.revoked"]
    assert evictions == ["grant cap"]
    assert person.refresh(codes[0]) is None, "the oldest family was evicted and revoked"
    assert person.refresh(codes[1]) is not None
    assert person.refresh(device) is not None
