"""The SQLite store's batches (``Store.batch``): held writes are committed in one transaction
with the next statement that answers, so other workers see all of them or none, and nothing is
lost or reordered on the way."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.app_driver import PASSWORD
from tests.app_driver import REDIRECT
from tests.app_driver import Driver
from tests.app_driver import basic_auth
from tests.app_driver import json_of
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.soft_authenticator import SoftAuthenticator
from tests.test_device import device_client
from tests.test_device import poll
from tests.test_device import start
from tests.test_mfa import at_second_step
from tests.test_passkeys import ISSUER as PASSKEY_ISSUER
from tests.test_passkeys import options
from tests.test_passkeys import page_csrf
from tests.test_passkeys import register
from uauth.core.grantlimits import MAX_GRANTS_PER_CLIENT
from uauth.core.records import AUDIT_EVENT
from uauth.storage import StorageUnavailable
from uauth.storage.base import system_clock
from uauth.storage.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "batches.sqlite3", busy_timeout=0.3)
    yield store
    store.close()


@pytest.fixture
def other(store: SQLiteStore) -> Iterator[SQLiteStore]:
    """Another connection to the same file: what other workers see."""
    other = SQLiteStore(store.path)
    yield other
    other.close()


def transactions(store: SQLiteStore, texts: list[str] | None = None) -> list[list[str]]:
    """The statements of this thread's connection from now on, grouped as SQLite commits them
    (a statement outside ``BEGIN … COMMIT`` is a transaction of its own); their whole text
    goes to ``texts`` too, when given."""
    grouped: list[list[str]] = []
    open_: list[str] | None = None

    def seen(sql: str) -> None:
        nonlocal open_
        if texts is not None:
            texts.append(sql)
        word = sql.split(None, 1)[0].upper()
        if word == "BEGIN":
            open_ = []
        elif word in ("COMMIT", "ROLLBACK"):
            grouped.append([*(open_ or []), word])
            open_ = None
        elif open_ is not None:
            open_.append(word)
        else:
            grouped.append([word])

    store._conn().set_trace_callback(seen)
    return grouped


def test_held_writes_are_committed_once_with_the_next_statement(store: SQLiteStore,
                                                                other: SQLiteStore) -> None:
    store.ping()
    seen = transactions(store)
    with store.batch():
        store.save("code", "a", {"n": 1}, ttl=60)
        store.save("code", "b", {"n": 2}, ttl=60)
        store.delete("code", "gone")
        assert seen == [], "nothing is sent while writes are held"
        assert other.find("code", "a") is None, "another worker sees nothing yet"
        assert store.find("code", "b") == {"n": 2}
        store.save("code", "c", {"n": 3}, ttl=60)
        assert store.find("code", "c") == {"n": 3}, "the open transaction reads its own writes"
        assert other.find_many("code", ["a", "b", "c"]) == [None, None, None], (
            "the transaction stays open until the block ends")
        hasty = SQLiteStore(store.path, busy_timeout=0.05)
        with pytest.raises(StorageUnavailable, match="locked"):
            hasty.save("code", "elsewhere", {"n": 0}, ttl=60)  # another worker's write waits
        hasty.close()
    assert seen == [["INSERT", "INSERT", "DELETE", "SELECT", "INSERT", "SELECT", "COMMIT"]]
    assert other.find_many("code", ["a", "b", "c"]) == [{"n": 1}, {"n": 2}, {"n": 3}]
    del seen[:]
    with store.batch():
        assert store.find("code", "a") == {"n": 1}
        store.save("code", "d", {"n": 4}, ttl=60)
    assert seen == [["SELECT"], ["INSERT"]], (
        "a read with nothing held opens no transaction; one write left at the end needs none")
    assert other.find("code", "d") == {"n": 4}


def test_a_block_that_raises_after_a_statement_still_commits_what_it_wrote(
        store: SQLiteStore, other: SQLiteStore) -> None:
    """As held writes are sent when a block raises, so the transaction a statement left open
    is committed: the block's error is not the database's."""
    store.ping()
    with pytest.raises(ZeroDivisionError), store.batch():
        store.save("code", "a", {"n": 1}, ttl=60)
        assert store.find("code", "a") == {"n": 1}
        store.save("code", "b", {"n": 2}, ttl=60)
        _ = 1 / 0
    assert other.find_many("code", ["a", "b"]) == [{"n": 1}, {"n": 2}]
    with pytest.raises(ZeroDivisionError), store.batch():
        store.save("code", "c", {"n": 3}, ttl=60)
        assert store.find("code", "c") == {"n": 3}  # nothing is held after it
        _ = 1 / 0
    assert other.find("code", "c") == {"n": 3}, "committed by the block's end alone"
    store.save("code", "after", {"n": 4}, ttl=60)
    assert other.find("code", "after") == {"n": 4}, "no transaction was left open"


def test_a_failing_statement_undoes_the_writes_held_before_it(store: SQLiteStore,
                                                             other: SQLiteStore) -> None:
    # A counter whose stored value is not JSON: incrementing it fails inside SQLite.
    with sqlite3.connect(store.path) as raw:
        store.ping()  # the table exists
        raw.execute("INSERT INTO records (kind, key, value, consumed) "
                    "VALUES ('counter', 'broken', 'not json', 0)")
    seen = transactions(store)
    with pytest.raises(StorageUnavailable), store.batch():
        store.save("code", "held", {"n": 1}, ttl=60)
        store.incr("counter", "broken", ttl=60)
    assert seen == [["INSERT", "INSERT", "ROLLBACK"]], "the save, the increment that failed"
    assert other.find("code", "held") is None, "rolled back with the statement that failed"
    store.save("code", "after", {"n": 2}, ttl=60)
    assert other.find("code", "after") == {"n": 2}, "the connection still works"
    del seen[:]
    with pytest.raises(StorageUnavailable), store.batch():
        store.save("code", "first", {"n": 1}, ttl=60)
        assert store.find("code", "first") == {"n": 1}  # leaves the transaction open
        store.save("code", "second", {"n": 2}, ttl=60)
        store.incr("counter", "broken", ttl=60)
    assert seen == [["INSERT", "SELECT", "INSERT", "INSERT", "ROLLBACK"]], (
        "a failure in the open transaction undoes all of it, and the block's end commits nothing")
    assert other.find_many("code", ["first", "second"]) == [None, None]


def test_a_busy_database_fails_the_batch_as_an_outage_and_loses_nothing_after(
        store: SQLiteStore, other: SQLiteStore) -> None:
    store.ping()
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
    try:
        with pytest.raises(StorageUnavailable, match="locked"), store.batch():
            store.save("code", "a", {"n": 1}, ttl=60)
            store.save("code", "b", {"n": 2}, ttl=60)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert other.find("code", "a") is None, "all of the batch or none of it"
    with store.batch():
        store.save("code", "a", {"n": 1}, ttl=60)
        store.save("code", "b", {"n": 2}, ttl=60)
    assert other.find_many("code", ["a", "b"]) == [{"n": 1}, {"n": 2}]


def test_the_authorization_and_token_endpoints_commit_their_writes_together(
        store: SQLiteStore, tmp_path: Path) -> None:
    """What Store.batch is for on SQLite: the code and its grant's note in one commit, and at
    /token the access token, the new family's refresh token and its note (the code's deleted
    first) with the cap's read of the families beyond it; at the cap, the oldest family's
    eviction in the same commit (the test client serves requests on this thread, so on its
    connection). The code's user is read in its spend's statement."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True, access_token_format="opaque")
    d.login()
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))  # warm
    seen = transactions(store)
    code = d.code(client.client_id)
    assert ["INSERT", "INSERT", "COMMIT"] in seen, f"the grant note and the code ({seen})"
    del seen[:]
    tokens = json_of(d.token(client.client_id, secret, code=code))
    assert "refresh_token" in tokens and "." not in tokens["access_token"]
    listing = ["INSERT", "INSERT", "DELETE", "INSERT", "SELECT", "COMMIT"]
    assert listing in seen, (
        f"access and refresh token, the code's note deleted, the family's note and the cap's "
        f"read: one commit ({seen})")
    for _ in range(MAX_GRANTS_PER_CLIENT - 1):
        json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    code = d.code(client.client_id)
    del seen[:]
    json_of(d.token(client.client_id, secret, code=code))
    assert [t for t in seen if len(t) > 1] == [[*listing[:-1],
                                                "INSERT", "DELETE", "INSERT", "DELETE", "COMMIT"]], (
        f"at the cap, the same commit: the oldest family's deny marker, its records, the audit "
        f"event kept and its note after the read that chose it ({seen})")
    assert seen.count(["UPDATE"]) == 1, f"the code spent on its own, before ({seen})"
    texts: list[str] = []
    transactions(store, texts)
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    spend = [sql for sql in texts if sql.startswith("UPDATE")]
    assert len(spend) == 1 and "kind = 'user'" in spend[0], (
        f"the code's user read in the spend's statement ({texts})")
    assert not [sql for sql in texts if sql.startswith("SELECT value") and "'user'" in sql], (
        f"and not read again ({texts})")


@pytest.mark.parametrize("access_token_format", ["opaque", "jwt"])
def test_a_refresh_commits_the_rotation_and_the_new_tokens_with_its_consume(
        store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        access_token_format: str) -> None:
    """A rotation: the presented token consumed and its marker saved (the marker first, only
    while the token is unspent), the family's deny-list entry and the token's user read in the
    spend's statement, and the response's writes (the successor, an opaque access token), all
    one commit (two before); the tokens are signed after it, never while other workers' writes
    wait."""
    from uauth.core import tokens

    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True,
                              access_token_format=access_token_format)
    d.login()
    assert secret is not None
    refresh = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))[
        "refresh_token"]
    sign = tokens._sign
    signed_in_transaction: list[bool] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        signed_in_transaction.append(store._conn().in_transaction)
        return sign(*args, **kwargs)

    monkeypatch.setattr(tokens, "_sign", watched)
    texts: list[str] = []
    seen = transactions(store, texts)
    rotated = json_of(d.http.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic_auth(client.client_id, secret)))
    assert rotated["refresh_token"] != refresh and "id_token" in rotated
    writes = ["INSERT", "INSERT"] if access_token_format == "opaque" else ["INSERT"]
    assert seen == [["SELECT"], ["INSERT", "UPDATE", *writes, "COMMIT"]], (
        f"the token; the consume with its marker, and the response's tokens ({seen})")
    spend = [sql for sql in texts if sql.startswith("UPDATE")]
    assert len(spend) == 1 and all(part in spend[0] for part in ("kind = 'revoked'",
                                                                  "kind = 'user'")), (
        f"its grant's deny-list entry and its user read in the spend's statement ({texts})")
    assert signed_in_transaction == [False] * (1 if access_token_format == "opaque" else 2)


def test_a_refresh_whose_writes_fail_leaves_its_token_unspent(store: SQLiteStore,
                                                              tmp_path: Path) -> None:
    """The spend and the new tokens are one transaction: when saving the successor fails, the
    spend rolls back with it, and the client's retry (no grace window) gets new tokens instead
    of a family revoked as a replay."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(always_issue_refresh_token=True)
    d.login()
    assert secret is not None
    refresh = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))[
        "refresh_token"]
    conn = store._conn()
    conn.execute("CREATE TEMP TRIGGER full BEFORE INSERT ON records "
                 "WHEN NEW.kind = 'refresh_token' BEGIN SELECT RAISE(FAIL, 'disk full'); END")

    def rotate() -> Any:
        return d.http.post("/token", data={"grant_type": "refresh_token",
                                           "refresh_token": refresh},
                           headers=basic_auth(client.client_id, secret))

    failed = rotate()
    assert failed.status_code >= 500 and "error" in json_of(failed), failed.text
    assert "Traceback" not in failed.text and "disk full" not in failed.text
    conn.execute("DROP TRIGGER full")
    retried = rotate()
    assert retried.status_code == 200, retried.text
    assert json_of(retried)["refresh_token"] != refresh


def test_a_self_registered_clients_last_use_is_written_with_its_tokens(
        store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`uauth client prune` needs a dynamic client's last use: it is held with the token
    response's other writes (on a refresh, committed with the spend), not written on its own
    after the signatures."""
    from uauth.core import tokens
    from uauth.core.records import CLIENT_USED

    d = Driver.of(make_app(tmp_path, store, system_clock, UAUTH_REGISTRATION="open"))
    registered = d.http.post("/register", json={
        "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access"})
    assert registered.status_code == 201, registered.text
    body = json_of(registered)
    client_id, secret = body["client_id"], body["client_secret"]
    d.user()
    d.login()
    first = json_of(d.token(client_id, secret, code=d.code(client_id, scope="openid offline_access",
                                                           prompt="consent")))
    assert "refresh_token" in first, first
    store.delete(CLIENT_USED, client_id)
    sign = tokens._sign
    used_when_signed: list[bool] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        used_when_signed.append(store.find(CLIENT_USED, client_id) is not None)
        return sign(*args, **kwargs)

    monkeypatch.setattr(tokens, "_sign", watched)
    seen = transactions(store)
    rotated = d.http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]},
                          headers=basic_auth(client_id, secret))
    assert rotated.status_code == 200, rotated.text
    assert used_when_signed == [True, True], "written before the access and ID tokens' signatures"
    spend = [t for t in seen if "UPDATE" in t]
    assert len(spend) == 1 and spend[0].count("INSERT") == 3 and spend[0][-1] == "COMMIT", (
        f"the marker, the successor and the last use in the spend's commit ({seen})")


def test_userinfo_reads_the_deny_list_and_the_user_in_one_statement(
        store: SQLiteStore, tmp_path: Path) -> None:
    """Store.prefetch on SQLite: the user expected after the token is read in the deny list's
    statement (one statement and read lock instead of two). The token's claims are read once
    per worker: another app on the same file (another worker) reads them on its first use."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(access_token_format="opaque")
    d.login()
    token = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))[
        "access_token"]
    seen = transactions(store)
    answer = d.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json is not None and answer.json["sub"]
    assert seen == [["SELECT"]], f"its deny list with its user; its claims kept ({seen})"
    worker = make_app(tmp_path, store, system_clock).test_client()
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    for reads_of_the_token in (1, 0, 0):
        del statements[:]
        answer = worker.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json is not None and answer.json["sub"]
        assert sum("'access_token'" in sql for sql in statements) == reads_of_the_token, (
            f"another worker reads the token's claims once ({statements})")
    assert len(statements) == 1, f"then its deny list with its user ({statements})"


def test_authorize_reads_the_session_its_user_and_their_factors_in_one_statement(
        store: SQLiteStore, tmp_path: Path) -> None:
    """Store.prefetch_grant on SQLite: the second-factor step's listing of the person's
    factors rides the session's statement, with the user (one statement and read lock instead
    of two); the step still sees a factor added since."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    user = d.user()
    client, _ = d.client(first_party=True)
    d.login()
    d.code(client.client_id)  # warm
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    d.code(client.client_id)
    reads = [sql for sql in statements if sql.startswith("SELECT") and any(
        part in sql for part in ("kind = 'session'", "kind = 'user'", "'factors-of:"))]
    assert len(reads) == 1 and all(part in reads[0] for part in (
        "kind = 'session'", "kind = 'user'", "grant_id = 'factors-of:")), (
        f"the session, its user and their factors in one read ({reads})")
    store.save("factor", "f", {"id": "f", "user_id": user.id, "type": "totp", "name": "App",
                               "created_at": 0, "active": True}, ttl=None,
               grant_id=f"factors-of:{user.id}")
    asked = d.authorize(response_type="code", client_id=client.client_id,
                        redirect_uri=REDIRECT, scope="openid")
    assert asked.status_code == 302 and "/login/second-factor" in asked.headers["Location"], (
        "the listing read with the session sees the factor")


def test_authorize_reads_consent_with_the_session_for_a_client_that_asks_for_it(
        store: SQLiteStore, tmp_path: Path) -> None:
    """Store.prefetch on SQLite: for a client that is not first party, the person's consent
    rides the session's statement too; what it read decides the consent step (a scope not
    allowed yet is asked for), and for a first-party client nothing is read."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, _ = d.client(scope="openid profile")
    first, _ = d.client(first_party=True)
    d.login()
    d.code(client.client_id)  # consent given to openid, and the client cached
    d.code(first.client_id)
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)

    def reads() -> list[str]:
        return [sql for sql in statements if sql.startswith("SELECT") and any(
            part in sql for part in ("kind = 'session'", "kind = 'consent'"))]

    d.code(client.client_id)
    assert len(reads()) == 1 and all(part in reads()[0] for part in (
        "kind = 'session'", "kind = 'user'", "kind = 'consent'")), (
        f"the session, its user and their consent in one read ({reads()})")
    del statements[:]
    asked = d.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid profile"})
    assert asked.status_code == 200 and 'name="consent"' in asked.text, (
        "consent read with the session covers openid, not profile: the page asks")
    assert len(reads()) == 1, f"and nothing read it again ({reads()})"
    del statements[:]
    d.code(first.client_id)
    assert reads() and not any("kind = 'consent'" in sql for sql in statements), (
        f"a first-party client's consent is not read ({statements})")
    del statements[:]
    asked = d.http.get("/authorize", query_string={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "prompt": "consent"})
    assert asked.status_code == 200 and 'name="consent"' in asked.text, (
        "prompt=consent asks, though openid was allowed")
    assert not any("kind = 'consent'" in sql for sql in statements), (
        f"and reads no consent for it ({statements})")


def test_introspection_reads_the_deny_list_and_the_user_in_one_statement(
        store: SQLiteStore, tmp_path: Path) -> None:
    """An opaque access token this worker minted: its claims are kept, so introspecting it
    reads its deny-list entries with its user, one statement (three before: the claims, the
    deny list, the user)."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(access_token_format="opaque")
    d.login()
    assert secret is not None
    token = json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))[
        "access_token"]
    headers = basic_auth(client.client_id, secret)
    seen = transactions(store)
    answer = json_of(d.http.post("/introspect", data={"token": token}, headers=headers))
    assert answer["active"] is True and answer["sub"] and answer["client_id"] == client.client_id
    assert seen == [["SELECT"]], f"its deny list with its user; its claims kept ({seen})"



def test_a_pushed_request_is_read_with_the_session_and_spent_with_the_code(
        store: SQLiteStore, tmp_path: Path) -> None:
    """RFC 9126 at /authorize for someone signed in: the pushed request rides the session's
    statement, nothing is written before it is spent, and its delete commits with the code."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(first_party=True, always_issue_refresh_token=True)
    d.login()
    d.code(client.client_id)  # warm
    request_uri = json_of(d.http.post("/par", data={
        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid"},
        headers=basic_auth(client.client_id, secret)))["request_uri"]
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    answered = d.http.get("/authorize", query_string={"client_id": client.client_id,
                                                      "request_uri": request_uri})
    assert answered.status_code == 302 and "code=" in answered.headers["Location"]
    reads = [sql for sql in statements if sql.startswith("SELECT")]
    assert len(reads) == 1 and all(part in reads[0] for part in (
        "kind = 'pushed_request'", "kind = 'session'", "kind = 'user'")), (
        f"the pushed request, the session and its user in one read ({reads})")
    words = [sql.split(None, 1)[0].upper() for sql in statements]
    assert words == ["SELECT", "UPDATE", "BEGIN", "DELETE", "INSERT", "INSERT", "COMMIT"], (
        f"read; spent; its delete committed with the code and the grant's note ({words})")
    again = d.http.get("/authorize", query_string={"client_id": client.client_id,
                                                   "request_uri": request_uri})
    assert again.status_code == 400 and "invalid_request_uri" in again.text


def test_a_login_commits_the_session_and_its_audit_event_once(
        store: SQLiteStore, tmp_path: Path) -> None:
    """A password login on a fresh browser: the name's index is read with the throttle's
    blocks, and the new session and the audit event go in one transaction with the second
    factors' listing, where each was a commit of its own."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    page = d.http.get("/login")
    seen = transactions(store)
    signed_in = d.http.post("/login", data={"csrf_token": csrf_token(page.text),
                                            "username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302 and "/login/second-factor" not in signed_in.headers[
        "Location"]
    assert seen == [["SELECT"], ["SELECT"], ["INSERT", "INSERT", "SELECT", "COMMIT"]], (
        f"the throttle's blocks with the name's index; the user; the session and the audit "
        f"event, committed with the factors' listing ({seen})")


def test_a_passkey_login_reads_its_index_with_the_addresss_blocks(
        store: SQLiteStore, tmp_path: Path) -> None:
    """A passkey sign-in reads the passkey's index in the address's throttle statement and its
    record in the account's (was a statement each)."""
    d = Driver.of(make_app(tmp_path, store, system_clock, UAUTH_ISSUER=PASSKEY_ISSUER))
    d.user()
    d.login()
    authenticator = SoftAuthenticator(PASSKEY_ISSUER, "localhost")
    assert register(d, authenticator).status_code == 200
    d.http = d.app.test_client()
    csrf = page_csrf(d, "/login")
    assertion = authenticator.get(options(d, "login", csrf))
    seen = transactions(store)
    signed_in = d.http.post("/passkeys/login", headers={"X-CSRFToken": csrf},
                            data=json.dumps(assertion), content_type="application/json")
    assert signed_in.status_code == 200, signed_in.text
    assert seen[:3] == [["SELECT"], ["UPDATE"], ["SELECT"]] and seen[3][0] == "INSERT", (
        f"the address's blocks with the index; the challenge's spend; the account's blocks "
        f"with the record; then the sign count's and the session's writes ({seen})")


def test_a_logout_commits_the_sessions_end_and_its_revocations_once(
        store: SQLiteStore, tmp_path: Path) -> None:
    """The session's end, its audit event and the revocation of each of its grants: one
    transaction with the listing of the grants (was a commit each); each revocation is audited
    as the logout's. The logout tokens' user is the one read with the session."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    d.login()
    apps = [d.client(first_party=True, always_issue_refresh_token=True) for _ in range(2)]
    issued = [json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
              for client, secret in apps]
    seen = transactions(store)
    d.http.get("/logout", query_string={"id_token_hint": issued[0]["id_token"]})
    writes = [group for group in seen if {"INSERT", "DELETE", "UPDATE"} & set(group)]
    assert len(writes) == 1 and writes[0][-1] == "COMMIT" and writes[0].count("DELETE") == 3, (
        f"the session's end and both grants' revocations in one transaction ({seen})")
    assert seen[-1] == writes[0], f"no read after it: the request holds the user ({seen})"
    reasons = [record.get("reason") for _, record in store.scan(AUDIT_EVENT)
               if record["event"] == "family.revoked"]
    assert reasons == ["logout", "logout"]



def test_a_device_flow_reads_ahead_and_commits_its_decision_with_its_audit_event(
        store: SQLiteStore, tmp_path: Path) -> None:
    """RFC 8628: a poll reads the request and its last poll in one statement; the person's
    page reads the session with its user and factors, then the throttle's blocks with the typed
    code's pointer, then the request (was six statements); the decision spends the user code,
    then commits the request's new state with the audit event (was a commit each)."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    d.login()
    client_id, _ = device_client(d)
    body = json_of(start(d, client_id))
    seen = transactions(store)
    assert json_of(poll(d, client_id, body["device_code"]))["error"] == "authorization_pending"
    assert seen == [["SELECT"], ["INSERT"]], f"the request and its last poll; the note ({seen})"
    del seen[:]
    page = d.http.get("/device", query_string={"user_code": body["user_code"]})
    assert seen == [["SELECT"]] * 3, (
        f"the session, user and factors; the blocks and the pointer; the request ({seen})")
    del seen[:]
    done = d.http.post("/device", data={"csrf_token": csrf_token(page.text),
                                        "user_code": body["user_code"], "decision": "allow"})
    assert 'data-device-result="approved"' in done.text
    assert seen == [["SELECT"]] * 3 + [["UPDATE"], ["INSERT", "INSERT", "COMMIT"]], (
        f"the page's reads; the spend; the request's state and the audit event ({seen})")


def test_a_sign_in_reads_the_grant_its_session_holds_in_the_sessions_statement(
        store: SQLiteStore, tmp_path: Path) -> None:
    """A plain sign-in's reused grant: its note is read in the statement that reads the
    session, its user and their factors; its deny-list entry in the next (was a statement
    each)."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    client, secret = d.client(first_party=True)
    d.login()
    json_of(d.token(client.client_id, secret, code=d.code(client.client_id)))
    seen = transactions(store)
    d.code(client.client_id)
    reads = [group for group in seen if group == ["SELECT"]]
    assert len(reads) == 2, f"the session with the note; the deny-list entry ({seen})"


def test_the_account_pages_read_in_one_statement(store: SQLiteStore, tmp_path: Path) -> None:
    """``/account``: the session, its user, the person's factors and their apps' listing in
    one statement (was five); ``/account/sessions`` with their sessions too (was four)."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    d.login()
    assert d.http.get("/account").status_code == 200
    seen = transactions(store)
    assert d.http.get("/account").status_code == 200
    assert seen == [["SELECT"]], f"one read ({seen})"
    del seen[:]
    assert d.http.get("/account/sessions").status_code == 200
    assert seen == [["SELECT"]], f"one read ({seen})"


def test_consent_is_committed_with_the_code(store: SQLiteStore, tmp_path: Path) -> None:
    """The consent page's allow: one read, then the consent, its audit event, the grant's
    note and the code in one transaction (was a commit each for the first two)."""
    d = Driver.of(make_app(tmp_path, store, system_clock))
    d.user()
    d.login()
    client, _ = d.client()
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
             "scope": "openid profile"}
    page = d.http.get("/authorize", query_string=query)
    seen = transactions(store)
    allowed = d.http.post("/authorize", query_string=query,
                          data={"csrf_token": csrf_token(page.text), "consent": "allow"})
    assert allowed.status_code == 302 and "code=" in allowed.headers["Location"]
    assert len(seen) == 2 and seen[0] == ["SELECT"] and seen[1][-1] == "COMMIT", (
        f"one read; the consent, its audit event, the note and the code, committed ({seen})")


def test_the_second_factor_page_reads_in_one_statement_and_commits_once(
        store: SQLiteStore, tmp_path: Path, clock: FakeClock) -> None:
    """``/login/second-factor``: the session, its user and their factors in one statement
    (was three); a right code commits the factor's last use, the session's second factor and
    the audit event once, after the time step's spend (was a commit each)."""
    d = Driver.of(make_app(tmp_path, store, clock))
    secret, step = at_second_step(d, clock)
    seen = transactions(store)
    page = d.http.get(step)
    assert seen == [["SELECT"]], f"the session, its user, their factors ({seen})"
    del seen[:]
    done = d.http.post(page.request.full_path, data={
        "csrf_token": csrf_token(page.text), "otp": pyotp.TOTP(secret).at(int(clock()))})
    assert done.status_code == 302, done.text
    assert seen == [["SELECT"], ["SELECT"], ["INSERT"], ["INSERT", "INSERT", "INSERT", "COMMIT"]], (
        f"the session, its user, their factors; the blocks; the step's spend; the factor, the "
        f"session, the audit event ({seen})")


def test_a_registration_commits_the_client_once_with_its_audit_event(
        store: SQLiteStore, tmp_path: Path) -> None:
    """RFC 7591: after the address's count, the new client and its audit event in one
    transaction (it read the client's id and committed three times)."""
    d = Driver.of(make_app(tmp_path, store, system_clock, UAUTH_REGISTRATION="open"))
    seen = transactions(store)
    registered = d.http.post("/register", json={"redirect_uris": [REDIRECT],
                                                "client_name": "Agent"})
    assert registered.status_code == 201, registered.text
    assert seen == [["INSERT"], ["INSERT", "INSERT", "COMMIT"]], (
        f"the address's count; the client and its audit event ({seen})")


def test_a_device_grants_family_is_capped_in_its_token_responses_commit(
        tmp_path: Path, clock: FakeClock) -> None:
    """A device grant's new family past the cap: its note, the oldest family's eviction and the
    new tokens go to the file in one commit, as a code's do, so a failed write cannot revoke
    the oldest family and leave the device without its tokens."""
    from tests.test_grant_growth import DeviceAndCodes

    store = SQLiteStore(tmp_path / "device.sqlite3", clock=clock)
    person = DeviceAndCodes(tmp_path, store, clock)
    for _ in range(MAX_GRANTS_PER_CLIENT):
        person.code_family()
    seen = transactions(store)
    person.device_family()
    writes = [group for group in seen if "INSERT" in group or "DELETE" in group]
    response = [group for group in writes if "SELECT" in group and "DELETE" in group]
    assert len(response) == 1 and response[0][-1] == "COMMIT", (
        f"the family's note, the cap's read, the eviction and the tokens: one commit ({seen})")
    assert response[0].count("INSERT") >= 3, f"the note, the refresh token, the access token ({seen})"
    store.close()
