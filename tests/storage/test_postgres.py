"""What the contract cannot say about PostgreSQL: the schema, expiry through an index and a purge
one worker runs at a time, connections opened after fork, typed errors without secrets, held
writes and reads ahead riding one pipeline."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import psycopg
import pytest

from tests.conftest import FakeClock
from tests.conftest import ask_forked_child
from uauth.core.settings import ConfigError
from uauth.core.settings import validate_storage_url
from uauth.storage import Mark
from uauth.storage import StorageError
from uauth.storage import StorageUnavailable
from uauth.storage import open_store
from uauth.storage.base import PURGE_EVERY
from uauth.storage.postgres import PURGE_LOCK
from uauth.storage.postgres import PostgresStore


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM uauth_records").fetchone()
        assert row is not None
        return int(row[0])


def test_records_and_consumption_survive_reopening(postgres_url: str, clock: FakeClock) -> None:
    first = PostgresStore(postgres_url, clock=clock)
    first.save("client", "c", {"name": "kept"}, ttl=None)
    first.save("authorization_code", "k", {"n": 1}, ttl=60)
    first.consume("authorization_code", "k")
    first.close()
    second = PostgresStore(postgres_url, clock=clock)
    assert second.find("client", "c") == {"name": "kept"}
    outcome = second.consume("authorization_code", "k")
    assert outcome is not None and not outcome.first, "consumption survives a restart too"
    second.close()


def test_purge_deletes_only_expired_rows_and_yields_to_another_purger(
        postgres_url: str, clock: FakeClock) -> None:
    store = PostgresStore(postgres_url, clock=clock)
    for i in range(20):
        store.save("authorization_code", f"spent{i}", {"i": i}, ttl=60)
    store.save("client", "forever", {"n": 1}, ttl=None)
    store.save("session", "later", {"n": 2}, ttl=3600)
    clock.advance(61)
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (PURGE_LOCK,))
        assert store.purge() == 0, "another worker is purging: this one skips"
        other.execute("SELECT pg_advisory_unlock(%s)", (PURGE_LOCK,))
    assert rows(postgres_url) == 22
    assert store.purge() == 20
    assert rows(postgres_url) == 2
    assert store.find("client", "forever") == {"n": 1}
    assert store.find("session", "later") == {"n": 2}
    store.close()


def test_every_purge_every_writes_a_purge_runs(postgres_url: str, clock: FakeClock) -> None:
    store = PostgresStore(postgres_url, clock=clock)
    store.save("authorization_code", "spent", {"n": 1}, ttl=5)
    clock.advance(6)
    store._writes = PURGE_EVERY - 2  # as if this worker had written that much meanwhile
    store.save("client", "c", {"n": 1}, ttl=None)
    assert rows(postgres_url) == 2, "not yet"
    store.save("client", "d", {"n": 1}, ttl=None)
    assert rows(postgres_url) == 2, "the expired code went, the new client came"
    store.close()


def test_the_purge_and_the_lookups_use_indexes(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.ping()  # creates the schema
    store.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: ask what the plan could use
        purge = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT ctid FROM uauth_records WHERE expires_at <= 1 LIMIT 10"))
        find = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT value FROM uauth_records WHERE kind = 'a' AND key = 'b'"))
        grant = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN DELETE FROM uauth_records WHERE grant_id = 'g'"))
    assert "uauth_records_expiry" in purge, purge
    assert "uauth_records_pkey" in find, find
    assert "uauth_records_grant" in grant, grant


def _child_pool_is_its_own(store: PostgresStore, results: object) -> None:
    inherited = store._pool
    store.save("client", "child", {"n": 2}, ttl=None)
    results.put(inherited is not None and store._pool is not inherited)  # type: ignore[attr-defined]


def test_children_never_use_a_pool_inherited_through_fork(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.save("client", "parent", {"n": 1}, ttl=None)  # the parent holds a connection now
    assert ask_forked_child(_child_pool_is_its_own, store) is True
    assert store.find("client", "child") == {"n": 2}
    assert store.find("client", "parent") == {"n": 1}, "the parent's connection still works"
    store.close()


def test_find_many_quotes_every_key_of_the_array(postgres_url: str) -> None:
    """find_many sends its keys as one text[] literal: no key may end or split it."""
    keys = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "ünï", ""]
    store = PostgresStore(postgres_url)
    for i, key in enumerate(keys):
        store.save("client", key, {"i": i}, ttl=None)
    assert store.find_many("client", [*keys, "absent"]) == [{"i": i} for i in range(len(keys))] + [None]
    store.close()


def test_a_dropped_connection_is_replaced_and_the_statement_retried(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.save("client", "c", {"n": 1}, ttl=None)  # this thread keeps its connection now
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert store.find("client", "c") == {"n": 1}
    store.close()


def test_threads_beyond_the_kept_connections_share_the_rest(postgres_url: str) -> None:
    """Threads keep a connection only up to half the pool: more threads than connections never
    wait behind idle holders, and a connection goes back to the pool when its thread ends."""
    store = PostgresStore(postgres_url, max_connections=2, timeout=5)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(30):
                store.incr("throttle", "threads", ttl=600)
                store.find("client", f"c{i}")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert store.incr("throttle", "threads", ttl=600) == 8 * 30 + 1
    del pool
    gc.collect()
    assert len(store._held) <= 1, "only this thread's, the ended threads' went back"
    store.close()


def test_wrong_port_raises_the_typed_error_without_secrets() -> None:
    store = PostgresStore("postgresql://uauth:s3cret-pw@127.0.0.1:1/uauth", timeout=0.5)
    for call in (lambda: store.find("client", "c"), store.ping,
                 lambda: store.save("client", "c", {}, ttl=None),
                 lambda: store.consume("code", "k"), lambda: store.revoke_grant("g")):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert "s3cret-pw" not in str(caught.value) and "127.0.0.1:1/uauth" in str(caught.value)
    store.close()


def test_urls(tmp_path: Path) -> None:
    for url in ("postgresql://u:p@db:5432/uauth", "postgres://db/uauth?sslmode=require"):
        assert validate_storage_url(url, str(tmp_path)) == url
        assert isinstance(open_store(url), PostgresStore)
    with pytest.raises(ConfigError, match="must name a database"):
        validate_storage_url("postgresql://db:5432", str(tmp_path))


def test_held_writes_go_with_the_next_statement_in_one_pipeline(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PostgresStore(postgres_url)
    store.find("client", "warm")  # a connection kept, as in a running worker
    waits: list[int] = []
    send = PostgresStore._send_pipeline

    def counted(self: PostgresStore, pgconn: object, statements: list[object]) -> object:
        waits.append(len(statements))
        return send(self, pgconn, statements)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresStore, "_send_pipeline", counted)
    with store.batch():
        store.save("code", "a", {"n": 1}, ttl=60, grant_id="g")
        store.save("code", "b", {"n": 2}, ttl=60)
        store.delete("code", "b")
        assert rows(postgres_url) == 0, "nothing sent yet"
        assert store.grant_records("g") == [("code", "a", {"n": 1})]
        assert waits == [4, 4], "three writes and the read in one pipeline (prepared first)"
        store.save("code", "c", {"n": 3}, ttl=60)
    assert waits == [4, 4], "one write left at the end: a statement of its own"
    assert store.find_many("code", ["a", "b", "c"]) == [{"n": 1}, None, {"n": 3}]
    with store.batch():
        store.save("code", "d", {"n": 4}, ttl=60)
        store.save("code", "e", {"n": 5}, ttl=60)
    assert waits == [4, 4, 2], "prepared on this connection now: sent once"
    assert rows(postgres_url) == 4
    store.close()


def test_a_pipeline_is_one_transaction_and_leaves_its_connection_usable(
        postgres_url: str) -> None:
    from uauth.storage.postgres import SAVE
    from uauth.storage.postgres import _Statement

    store = PostgresStore(postgres_url)
    store.save("client", "c", {"n": 1}, ttl=None)
    failing = _Statement("fails", "SELECT 1 / (random() * 0)::int")
    with pytest.raises(StorageError):
        store._run_all([(SAVE, [b"code", b"undone", b'{"n": 1}', None, None]), (failing, [])])
    assert store.find("code", "undone") is None, "the statement before the failure is undone"
    assert store.find("client", "c") == {"n": 1}, "and the connection still answers"
    with store.batch():
        store.save("code", "held", {"n": 2}, ttl=60)
        store.save("code", "held too", {"n": 3}, ttl=60)
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # a restart, meanwhile
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert store.find_many("code", ["held", "held too"]) == [{"n": 2}, {"n": 3}], (
        "sent again on a new connection")
    store.close()


def test_a_record_and_a_listing_read_ahead_ride_the_next_statement(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Store.prefetch and Store.prefetch_grant on PostgreSQL (what /authorize asks for): the
    user and the person's factors go in the pipeline of the session's statement, and their
    reads are answered from it, one wait for the three."""
    store = PostgresStore(postgres_url)
    store.save("session", "s", {"v": 1}, ttl=60)
    store.save("user", "u", {"v": 2}, ttl=None)
    store.save("factor", "f", {"n": 1}, ttl=None, grant_id="factors-of:u")
    assert store.grant_records("factors-of:u") == [("factor", "f", {"n": 1})]  # prepared
    waits: list[int] = []
    run_all = PostgresStore._run_all

    def counted(self: PostgresStore, statements: list[object]) -> object:
        waits.append(len(statements))
        return run_all(self, statements)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresStore, "_run_all", counted)
    with store.batch():
        store.prefetch("user", "u")
        store.prefetch_grant("factors-of:u")
        assert store.find("session", "s") == {"v": 1}
        assert store.find("user", "u") == {"v": 2}
        assert store.grant_records("factors-of:u") == [("factor", "f", {"n": 1})]
    assert waits == [3], f"the session's statement carried the user and the listing ({waits})"
    store.close()


def test_reads_ahead_ride_a_consume_that_marks(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a refresh asks for: the family's deny-list entry and the token's user go in the
    pipeline of the spend with its marker, and their reads are answered from it."""
    store = PostgresStore(postgres_url)
    store.save("refresh", "t", {"v": 1}, ttl=60, grant_id="g")
    store.save("user", "u", {"v": 2}, ttl=None)
    store.find("revoked", "grant:g")  # prepared
    waits: list[int] = []
    run_all = PostgresStore._run_all

    def counted(self: PostgresStore, statements: list[object]) -> object:
        waits.append(len(statements))
        return run_all(self, statements)  # type: ignore[arg-type]

    with store.batch():  # every statement prepared on the connection
        store.prefetch("user", "u")
        store.consume("refresh", "x", mark=Mark("rotated", "x", {"n": 0}, ttl=60))
    monkeypatch.setattr(PostgresStore, "_run_all", counted)
    with store.batch():
        store.prefetch("revoked", "grant:g")
        store.prefetch("user", "u")
        spent = store.consume("refresh", "t", mark=Mark("rotated", "t", {"n": 1}, ttl=60,
                                                        grant_id="g"))
        assert spent is not None and spent.first
        assert store.find("revoked", "grant:g") is None
        assert store.find("user", "u") == {"v": 2}
    assert waits == [3], f"the spend's statement carried the deny list and the user ({waits})"
    assert store.find("rotated", "t") == {"n": 1}
    store.close()
