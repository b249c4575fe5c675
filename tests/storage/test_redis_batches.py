"""The Redis store's batches (``Store.batch``): held writes travel with the next command that
answers, in one pipeline, and nothing is lost or reordered on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import redis

from tests.app_driver import PASSWORD
from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.conftest import unique_prefix
from tests.logout_receiver import receiver
from tests.redis_server import RedisServer
from tests.soft_authenticator import SoftAuthenticator
from tests.test_device import device_client
from tests.test_device import poll
from tests.test_device import start
from tests.test_mfa import at_second_step
from tests.test_passkeys import ISSUER as PASSKEY_ISSUER
from tests.test_passkeys import options
from tests.test_passkeys import page_csrf
from tests.test_passkeys import passkey_login
from tests.test_passkeys import register
from uauth.core.grantlimits import MAX_GRANTS_PER_CLIENT
from uauth.core.records import CODE
from uauth.core.records import ROTATED
from uauth.core.sessions import end
from uauth.core.sessions import of_user
from uauth.extension import get_state
from uauth.storage import StorageUnavailable
from uauth.storage import hash_key
from uauth.storage.base import system_clock
from uauth.storage.redis import RedisStore


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """Another connection: what other workers see."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def written(raw: redis.Redis, name: str) -> Any:
    """The record ``name``'s JSON as another connection reads it."""
    return raw.hget(name, "v")


def waits(redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many commands each of the store's waits for Redis sends, from now on (a command, or
    a pipeline of them, on the thread's kept connection)."""
    kept = redis_store._client.connection
    sizes: list[int] = []
    one, many = redis.connection.Connection.send_command, redis.connection.Connection.pack_commands

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is kept:
            sizes.append(1)
        return one(self, *args, **kwargs)  # type: ignore[no-untyped-call]

    def pack_commands(self: Any, commands: Any) -> Any:
        if self is kept:
            sizes.append(len(commands))
        return many(self, commands)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(redis.connection.Connection, "send_command", send_command)
    monkeypatch.setattr(redis.connection.Connection, "pack_commands", pack_commands)
    return sizes


def test_held_writes_travel_with_the_next_command_that_answers(
        redis_store: RedisStore, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_store.save(CODE, "warm", {"n": 0}, ttl=60)  # the scripts loaded, as in a running worker
    redis_store.grant_records("warm")
    seen = waits(redis_store, monkeypatch)
    with redis_store.batch():
        redis_store.save(CODE, "a", {"n": 1}, ttl=60, grant_id="g")
        redis_store.save(CODE, "b", {"n": 2}, ttl=60)
        redis_store.delete(CODE, "gone")
        assert seen == [], "nothing sent yet"
        assert written(raw, redis_store._key(CODE, "a")) is None, "other connections see nothing"
        assert redis_store.find(CODE, "b") == {"n": 2}
        assert seen == [4], "three writes and the read: one wait"
        redis_store.save(CODE, "c", {"n": 3}, ttl=60)
    assert seen == [4, 1], "the rest is sent when the block ends"
    assert written(raw, redis_store._key(CODE, "c")) == b'{"n": 3}'
    assert redis_store.grant_records("g") == [(CODE, "a", {"n": 1})], "the grant's index is written"
    redis_store.save(CODE, "d", {"n": 4}, ttl=60)
    redis_store.delete(CODE, "d")
    assert seen == [4, 1, 1, 1, 1], "outside a block each write is its own wait"
    assert redis_store._pool._created_connections == 1, "all of it on the thread's one connection"


def test_a_server_that_lost_its_scripts_still_gets_every_held_write(
        redis_store: RedisStore, raw: redis.Redis) -> None:
    """Held scripts are sent whole (EVAL): a NOSCRIPT for one would let the next ones run."""
    redis_store.save(CODE, "warm", {"n": 0}, ttl=60)  # the scripts are loaded and used by SHA
    raw.script_flush()  # as a restarted server would have it
    with redis_store.batch():
        redis_store.save(CODE, "x", {"n": 1}, ttl=60, grant_id="gx")
        redis_store.save(CODE, "y", {"n": 2}, ttl=60)
        assert redis_store.consume(CODE, "y") is not None
    assert redis_store.find(CODE, "x") == {"n": 1}
    assert redis_store.grant_records("gx") == [(CODE, "x", {"n": 1})]
    again = redis_store.consume(CODE, "y")
    assert again is not None and not again.first, "consumed once, inside the block"


def test_held_writes_that_cannot_be_sent_fail_where_the_block_ends(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Needs Redis like every Redis test (``redis_server``); stops a server of its own."""
    server = RedisServer(tmp_path / "r")
    server.start()
    store = RedisStore(server.url, prefix=unique_prefix(), timeout=0.5)
    try:
        store.ping()
        with pytest.raises(StorageUnavailable), store.batch():
            store.save(CODE, "held", {"n": 1}, ttl=60)
            server.stop()
        server.start()  # empty: nothing was written, and the store works again
        assert store.find(CODE, "held") is None
        with store.batch():
            store.save(CODE, "held", {"n": 2}, ttl=60)
        assert store.find(CODE, "held") == {"n": 2}
    finally:
        store.close()
        server.stop()


def test_a_flow_waits_once_for_what_it_can_send_together(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Store.batch and Store.prefetch are for: at /authorize the session travels with its
    user, their second factors and their consent to the client, and the code with its grant's
    note; at /token spending the code with its user, and the opaque access token with the new
    family's refresh token, its note, the code's note deleted and the cap's read; at /userinfo
    the deny list with the token's user, the token's own claims kept since it was minted (the
    test client serves requests on this thread, so on its connection)."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True, access_token_format="opaque")
    d.login()
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))  # warm
    seen = waits(redis_store, monkeypatch)
    code = d.code(client.client_id)
    assert seen == [4, 2], (f"the session, its user, the person's factors and their consent; "
                            f"the grant's note and the code ({seen})")
    del seen[:]
    tokens = json_of(d.token(client.client_id, secret, code=code))
    assert "refresh_token" in tokens and "." not in tokens["access_token"]
    assert seen == [1, 2, 5], (
        f"the code; spent, with its user; access + refresh token, the family's note, the code's "
        f"note deleted + listing ({seen})")
    del seen[:]
    answer = d.http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code == 200 and answer.json is not None and answer.json["sub"]
    assert seen == [3], (f"its deny-list entries with its user; the claims of a token this "
                         f"worker minted are kept ({seen})")
    for _ in range(MAX_GRANTS_PER_CLIENT - 1):
        json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    code = d.code(client.client_id)
    del seen[:]
    json_of(d.token(client.client_id, secret, code=code))
    assert seen == [1, 2, 5, 4], (
        f"at the cap, one wait more: the oldest family's deny marker, its revocation, the audit "
        f"event kept and its note, sent together when the response's batch ends ({seen})")


def test_a_refresh_waits_once_to_spend_the_token_and_mark_it_rotated(
        redis_store: RedisStore, raw: redis.Redis, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The consume and the rotation marker are one script (Store.consume's mark): a refresh
    waits for the token, for the spend with the token's deny-list entry and user read ahead,
    and for the response's tokens."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True, access_token_format="opaque")
    d.login()
    assert secret is not None

    def rotate(refresh: str) -> str:
        rotated = json_of(d.http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh},
            headers=basic_auth(client.client_id, secret)))
        assert rotated["refresh_token"] != refresh
        return str(rotated["refresh_token"])

    refresh = rotate(json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))[
        "refresh_token"])  # warm: the scripts loaded
    seen = waits(redis_store, monkeypatch)
    rotate(refresh)
    assert seen == [1, 3, 2], (
        f"the token; the deny list and its user with the spend and its marker; the access "
        f"token with the successor ({seen})")
    marker = written(raw, redis_store._key(ROTATED, hash_key(refresh)))
    assert marker is not None and b"nonce" in marker


def test_introspection_reads_the_deny_list_with_the_user(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resource server introspecting an opaque access token this worker minted waits once:
    its deny-list entries with its user (its claims kept since it was minted); a refresh token
    (hinted as one) waits for its record, then its deny-list entry, user and rotation marker
    together."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True, access_token_format="opaque")
    d.login()
    assert secret is not None
    tokens = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    headers = basic_auth(client.client_id, secret)

    def introspect(token: str, **hint: str) -> Any:
        return json_of(d.http.post("/introspect", data={"token": token, **hint},
                                   headers=headers))

    assert introspect(tokens["access_token"])["active"] is True  # warm: the scripts loaded
    seen = waits(redis_store, monkeypatch)
    assert introspect(tokens["access_token"])["active"] is True
    assert seen == [3], f"the token's deny-list entries (jti, grant) with its user ({seen})"
    del seen[:]
    assert introspect(tokens["refresh_token"], token_type_hint="refresh_token")["active"]
    assert seen == [1, 3], (
        f"the refresh token; its grant's deny-list entry, user and rotation marker ({seen})")
    del seen[:]
    d.http.post("/revoke", data={"token": tokens["access_token"]}, headers=headers)
    assert introspect(tokens["access_token"]) == {"active": False}, (
        "revoked: its kept claims are not enough, the deny list says so")


def test_a_pushed_request_is_read_with_the_session_and_spent_with_the_code(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9126 at /authorize for someone signed in: the pushed request travels with the
    session, its user and their factors; nothing is written before its spend, and the spent
    record's delete goes with the grant's note and the code."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(first_party=True, always_issue_refresh_token=True)
    d.login()
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))  # warm: scripts
    request_uri = json_of(d.http.post("/par", data={
        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid"},
        headers=basic_auth(client.client_id, secret)))["request_uri"]
    seen = waits(redis_store, monkeypatch)
    answered = d.http.get("/authorize", query_string={"client_id": client.client_id,
                                                      "request_uri": request_uri})
    assert answered.status_code == 302 and "code=" in answered.headers["Location"]
    assert seen == [4, 1, 3], (f"the pushed request with the session, its user and their "
                               f"factors; the spend; its delete, the note and the code ({seen})")


def test_a_login_sends_the_session_and_its_audit_event_with_the_pages_reads(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A password login on a fresh browser: the throttle's counters with the name's index,
    the user, then the new session and the audit event with the second factors' listing; a passkey
    login reads its index with the address's blocks and its record with the challenge's spend,
    holds its sign count for the user's read, and the session for the audit event."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock, UAUTH_ISSUER=PASSKEY_ISSUER))
    d.user()
    d.login()  # warm: the scripts loaded
    authenticator = SoftAuthenticator(PASSKEY_ISSUER, "localhost")
    assert register(d, authenticator).status_code == 200
    d.http = d.app.test_client()
    assert passkey_login(d, authenticator).status_code == 200  # warm
    d.http = d.app.test_client()  # a fresh browser, no session to retire
    page = d.http.get("/login")
    seen = waits(redis_store, monkeypatch)
    signed_in = d.http.post("/login", data={
        "csrf_token": csrf_token(page.text), "username": "alice", "password": PASSWORD})
    assert "/login/second-factor" in signed_in.headers["Location"], (
        "the listing read with the session's write sees the passkey")
    assert seen == [3, 1, 3], (f"the throttle's counters with the name's index; the user; "
                               f"the session, the audit event, the factors ({seen})")
    monkeypatch.undo()
    d.http = d.app.test_client()
    csrf = page_csrf(d, "/login")
    assertion = authenticator.get(options(d, "login", csrf))
    seen = waits(redis_store, monkeypatch)
    signed_in = d.http.post("/passkeys/login", headers={"X-CSRFToken": csrf},
                            data=json.dumps(assertion), content_type="application/json")
    assert signed_in.status_code == 200, signed_in.text
    assert seen == [2, 2, 2, 2, 2], (
        f"the address's blocks with the passkey's index; the challenge's spend with the "
        f"passkey's record; the account's blocks; its sign count with the user; the session "
        f"with the audit event ({seen})")
    assert d.http.get("/account").status_code == 200, "signed in"

def test_a_logout_revokes_the_sessions_grants_in_one_trip(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RP-initiated logout: the session's end and its audit event go with the listing of its
    grants, and every grant's revocation (deny marker, records, audit event) goes in one
    pipeline after it, however many grants; the logout tokens take the user the request read
    with the session. A session ended where no user is held, and no client has a back-channel
    URI, reads no user at all."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock,
                           UAUTH_FETCH_ALLOWED_HOSTS=["127.0.0.1"]))  # the test receiver
    alice = d.user()
    d.login()
    with receiver() as rp:
        apps = [d.client(first_party=True, always_issue_refresh_token=True,
                         access_token_format="opaque", backchannel_logout_uri=uri)
                for uri in (rp.url + "/ok", None, None)]
        issued = [json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
                  for client, secret in apps]
        seen = waits(redis_store, monkeypatch)
        out = d.http.get("/logout", query_string={"id_token_hint": issued[0]["id_token"]})
        assert out.status_code in (200, 302) and d.http.get("/account").status_code == 302
        assert seen == [2, 4, 9], (f"the session and its user; its end, audit event and "
                                   f"grants; three grants revoked ({seen})")
        assert rp.wait_for("/ok"), "the back-channel client was told, with the user held"
    monkeypatch.undo()
    for (client, secret), tokens in zip(apps, issued, strict=True):
        refused = d.http.post("/token", data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"]},
                              headers=basic_auth(client.client_id, secret))
        assert refused.status_code == 400, "every grant of the session was revoked"
    d.login()
    d.code(apps[1][0].client_id)  # a grant in the new session, for a client without the URI
    with d.app.app_context():
        state = get_state()
        login, = of_user(state, alice.id)
        seen = waits(redis_store, monkeypatch)
        end(state, login)
    assert seen == [4, 3], f"its end, audit event and grant; the grant revoked ({seen})"


def test_a_revocation_sends_its_writes_together(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7009: after the token's lookup, an access token's revocation (its audit event, its
    record's delete, its deny marker) is one wait; a refresh token's family goes with its deny
    marker and audit event, and the family's audit event (which counts what was deleted)
    follows."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True, access_token_format="opaque")
    d.login()
    headers = basic_auth(client.client_id, secret)
    d.http.post("/revoke", data={"token": json_of(d.token(client.client_id, secret, code=d.code(
        client.client_id)))["refresh_token"]}, headers=headers)  # warm: the scripts loaded
    tokens = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    seen = waits(redis_store, monkeypatch)
    assert d.http.post("/revoke", data={"token": tokens["access_token"]},
                       headers=headers).status_code == 200
    assert seen == [3, 3], f"the lookup; the audit event, the delete, the deny marker ({seen})"
    del seen[:]
    assert d.http.post("/revoke", data={"token": tokens["refresh_token"],
                                        "token_type_hint": "refresh_token"},
                       headers=headers).status_code == 200
    assert seen == [1, 3, 3, 1], (f"the token; its deny entry, user and marker; its audit "
                                  f"event, the family's deny marker and delete; the family's "
                                  f"audit event ({seen})")
    refused = d.http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": tokens["refresh_token"]},
                          headers=headers)
    assert refused.status_code == 400, "the family is revoked"


def test_a_device_flow_waits_once_for_each_read_it_cannot_make_ahead(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 8628: the device's request saves both codes in one trip; a poll reads the request
    with when the device last polled, and its note goes at the end; the person's page reads
    the session, its user and their factors together, then the typed code's pointer with the
    throttle's blocks, then the request; the decision's record goes with its audit event after
    the user code is spent; the approved poll spends the device code with its user."""
    clock = FakeClock()
    d = Driver.of(make_app(tmp_path, redis_store, clock))
    d.user()
    d.login()
    client_id, _ = device_client(d)

    def device_flow(seen: list[int]) -> dict[str, list[int]]:
        """The whole flow; the waits each step made, by name."""
        counted: dict[str, list[int]] = {}

        def step(name: str) -> None:
            counted[name] = list(seen)
            del seen[:]

        body = json_of(start(d, client_id))
        step("start")
        assert json_of(poll(d, client_id, body["device_code"]))["error"] == \
            "authorization_pending"
        step("pending")
        page = d.http.get("/device", query_string={"user_code": body["user_code"]})
        assert f'data-user-code="{body["user_code"]}"' in page.text
        step("page")
        done = d.http.post("/device", data={"csrf_token": csrf_token(page.text),
                                            "user_code": body["user_code"], "decision": "allow"})
        assert 'data-device-result="approved"' in done.text
        step("decision")
        clock.advance(10)
        assert "access_token" in json_of(poll(d, client_id, body["device_code"]))
        step("tokens")
        return counted

    device_flow([])  # warm: the scripts loaded (nothing counted yet)
    counted = device_flow(waits(redis_store, monkeypatch))
    assert counted["start"] == [2], f"the request's record with the user code's add ({counted})"
    assert counted["pending"] == [2, 1], f"the request and its last poll; the note ({counted})"
    assert counted["page"] == [3, 3, 1], (
        f"the session, its user and their factors; the throttle's blocks and the code's "
        f"pointer; the request ({counted})")
    assert counted["decision"] == [3, 3, 1, 1, 2], (
        f"the page's reads; the user code spent; the request's record and the audit event "
        f"({counted})")
    assert counted["tokens"][:2] == [2, 2], (
        f"the request and its last poll; the device code spent with its user ({counted})")


def test_a_sign_in_reads_the_grant_its_session_holds_with_the_session(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client without refresh tokens (a plain sign-in) reuses its session's grant: the note
    of it, keyed by the cookie's ``sid``, travels with the session, and its deny-list entry
    follows; a cookie without the ``sid`` reads the note on its own, as before."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client(first_party=True)
    d.login()
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))  # warm: scripts
    seen = waits(redis_store, monkeypatch)
    d.code(client.client_id)
    assert seen == [4, 1, 2], (f"the session, its user, their factors and the note; the "
                               f"grant's deny-list entry; the note's update and the code ({seen})")
    with d.http.session_transaction() as cookie:
        del cookie["uauth_sid"]
    del seen[:]
    d.code(client.client_id)
    assert seen == [3, 1, 1, 2], f"without the sid: the note on its own ({seen})"


def test_the_account_pages_read_the_session_the_factors_and_the_apps_in_one_trip(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/account``: the session and its user with the person's second factors and their
    apps' listing, one wait (was five: the factors were listed three times);
    ``/account/sessions`` the same with the person's sessions (was four)."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    client, secret = d.client()
    d.login()
    d.code(client.client_id)  # an app on the page: its consent and grant
    assert d.http.get("/account").status_code == 200  # warm: the scripts loaded
    seen = waits(redis_store, monkeypatch)
    page = d.http.get("/account")
    assert page.status_code == 200 and "App" in page.text
    assert seen == [4], f"the factors, the apps, the session and its user ({seen})"
    assert d.http.get("/account/sessions").status_code == 200  # warm
    del seen[:]
    page = d.http.get("/account/sessions")
    assert page.status_code == 200 and "App" in page.text, "the session's app is listed"
    assert seen == [5], f"the factors, sessions, apps, the session and its user ({seen})"


def test_consent_is_written_with_the_code(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The consent page's allow: the session, its user, their factors, their earlier consent
    and the session's grant in one wait; the consent, its audit event, the grant's note and
    the code in the next (was five waits: the consent read again, written, audited)."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock))
    d.user()
    d.login()
    query = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid profile"}

    def allow() -> None:
        """A new client's consent page, then its allow."""
        client, _ = d.client()
        page = d.http.get("/authorize", query_string={**query, "client_id": client.client_id})
        del seen[:]
        allowed = d.http.post("/authorize", query_string={**query, "client_id": client.client_id},
                              data={"csrf_token": csrf_token(page.text), "consent": "allow"})
        assert allowed.status_code == 302 and "code=" in allowed.headers["Location"]

    seen = waits(redis_store, monkeypatch)
    allow()  # warm: the scripts loaded
    allow()
    assert seen == [5, 5], (f"the session, user, factors, consent and grant; the consent, its "
                            f"audit event, the note and the code ({seen})")


def test_the_second_factor_page_reads_the_session_and_the_factors_in_one_trip(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        clock: FakeClock) -> None:
    """``/login/second-factor``: the session, its user and their factors in one trip (was
    three, the factors listed twice); a right code then waits for the throttle's blocks and
    the time step's spend, and sends the factor's last use, the session's second factor and
    the audit event together (was a wait each)."""
    d = Driver.of(make_app(tmp_path, redis_store, clock))
    secret, step = at_second_step(d, clock)
    seen = waits(redis_store, monkeypatch)
    page = d.http.get(step)
    assert page.status_code == 200
    assert seen == [3], f"the session, its user, their factors ({seen})"
    del seen[:]
    done = d.http.post(page.request.full_path, data={
        "csrf_token": csrf_token(page.text), "otp": pyotp.TOTP(secret).at(int(clock()))})
    assert done.status_code == 302, done.text
    assert seen == [3, 2, 1, 3], (f"the session, its user, their factors; the blocks; the "
                                  f"step's spend; the factor, the session, the audit event "
                                  f"({seen})")
    monkeypatch.undo()
    assert d.http.get("/account").status_code == 200, "the session has its second factor"


def test_a_registration_saves_the_client_once_with_its_audit_event(
        redis_store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7591: the address's count, then the new client (with its registration token's
    digest) and its audit event in one trip; it read the client's id and saved it twice."""
    d = Driver.of(make_app(tmp_path, redis_store, system_clock, UAUTH_REGISTRATION="open"))
    metadata = {"redirect_uris": [REDIRECT], "client_name": "Agent"}
    assert d.http.post("/register", json=metadata).status_code == 201  # warm: scripts loaded
    seen = waits(redis_store, monkeypatch)
    registered = d.http.post("/register", json=metadata)
    assert registered.status_code == 201, registered.text
    assert seen == [1, 2], f"the count; the client and the audit event ({seen})"
    monkeypatch.undo()
    answer = json_of(registered)
    read = d.http.get(urlsplit(answer["registration_client_uri"]).path,
                      headers={"Authorization": "Bearer " + answer["registration_access_token"]})
    assert read.status_code == 200 and json_of(read)["client_name"] == "Agent", (
        "the client was saved with its registration token's digest")
