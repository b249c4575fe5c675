"""The storage contract: every backend passes every test here, or it is not a backend."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.conftest import ask_forked_child
from tests.conftest import run_in_threads
from tests.conftest import unique_prefix
from tests.redis_server import RedisServer
from uauth.storage import Mark
from uauth.storage import Record
from uauth.storage import StorageUnavailable
from uauth.storage import Store
from uauth.storage import hash_key
from uauth.storage import keyorder
from uauth.storage import open_store
from uauth.storage.memory import MemoryStore
from uauth.storage.memory import _Entry
from uauth.storage.postgres import PostgresStore
from uauth.storage.redis import RedisStore
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.sqlite import SQLiteStore

# mypy checks that each backend meets the protocol.
_memory: Store = MemoryStore()
_sqlite: Store = SQLiteStore("/nonexistent/never-opened.db")
_redis: Store = RedisStore("redis://127.0.0.1:1/0")
_postgres: Store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
_cluster: Store = RedisClusterStore("redis+cluster://127.0.0.1:1")

ROUNDS = 200


def test_round_trip(store: Store) -> None:
    record = {"client_id": "c1", "scope": "openid profile", "n": 3, "nested": {"a": [1, 2]}}
    store.save("authorization_code", "k1", record, ttl=60)
    assert store.find("authorization_code", "k1") == record
    assert store.find("authorization_code", "missing") is None
    assert store.find("refresh_token", "k1") is None, "kinds are separate namespaces"


def test_save_replaces_and_resets_consumed(store: Store) -> None:
    store.save("code", "k", {"v": 1}, ttl=60)
    assert store.consume("code", "k") is not None
    store.save("code", "k", {"v": 2}, ttl=60)
    assert store.find("code", "k") == {"v": 2}
    outcome = store.consume("code", "k")
    assert outcome is not None and outcome.first and outcome.record == {"v": 2}


def test_add_only_creates(store: Store, clock: FakeClock) -> None:
    assert store.add("user_name", "alice", {"id": "u1"}, ttl=None)
    assert not store.add("user_name", "alice", {"id": "u2"}, ttl=None)
    assert store.find("user_name", "alice") == {"id": "u1"}
    assert store.add("throttle", "x", {"n": 1}, ttl=10)
    clock.advance(11)
    assert store.add("throttle", "x", {"n": 2}, ttl=10), "an expired record does not block add"
    assert store.find("throttle", "x") == {"n": 2}


def test_expired_records_are_never_returned(store: Store, clock: FakeClock) -> None:
    store.save("authorization_code", "short", {"v": 1}, ttl=60)
    store.save("client", "forever", {"v": 2}, ttl=None)
    clock.advance(59)
    assert store.find("authorization_code", "short") == {"v": 1}
    clock.advance(1)
    assert store.find("authorization_code", "short") is None
    assert store.consume("authorization_code", "short") is None
    assert [key for key, _ in store.scan("authorization_code")] == []
    clock.advance(10 * 365 * 24 * 3600)
    assert store.find("client", "forever") == {"v": 2}


def test_consume_once(store: Store) -> None:
    store.save("authorization_code", "k", {"client_id": "c"}, ttl=60)
    first = store.consume("authorization_code", "k")
    again = store.consume("authorization_code", "k")
    assert first is not None and first.first and first.record == {"client_id": "c"}
    assert again is not None and not again.first and again.record == {"client_id": "c"}
    assert store.find("authorization_code", "k") == {"client_id": "c"}, (
        "consumed records stay until their TTL so replays are recognised"
    )
    assert store.consume("authorization_code", "nope") is None


def test_consume_saves_its_mark_for_the_first_caller_only(store: Store,
                                                           clock: FakeClock) -> None:
    store.save("refresh_token", "k", {"u": 1}, ttl=600, grant_id="g")
    first = store.consume("refresh_token", "k", mark=Mark("rotated", "k", {"n": "a"}, ttl=60,
                                                          grant_id="g"))
    again = store.consume("refresh_token", "k", mark=Mark("rotated", "k", {"n": "b"}, ttl=60,
                                                          grant_id="g"))
    assert first is not None and first.first and first.record == {"u": 1}
    assert again is not None and not again.first
    assert store.find("rotated", "k") == {"n": "a"}, "a later consume never replaces the mark"
    assert store.consume("refresh_token", "nope", mark=Mark("rotated", "nope", {}, ttl=60)) is None
    assert store.find("rotated", "nope") is None, "nothing consumed, nothing marked"
    store.save("refresh_token", "old", {"u": 2}, ttl=5)
    clock.advance(10)
    assert store.consume("refresh_token", "old", mark=Mark("rotated", "old", {}, ttl=60)) is None
    assert store.find("rotated", "old") is None, "an expired record is not consumed or marked"
    assert sorted(kind for kind, _, _ in store.grant_records("g")) == ["refresh_token", "rotated"]
    clock.advance(60)
    assert store.find("rotated", "k") is None, "the mark lives for its own TTL"
    assert store.find("refresh_token", "k") == {"u": 1}
    store.consume("refresh_token", "k", mark=Mark("rotated", "k", {"n": "c"}, ttl=60))
    assert store.find("rotated", "k") is None, "only the first consume ever marks"


def test_a_consume_in_a_batch_goes_after_the_writes_held_before_it(store: Store) -> None:
    with store.batch():
        store.save("refresh_token", "k", {"u": 1}, ttl=600)
        store.save("rotated", "k", {"n": "stale"}, ttl=600)
        outcome = store.consume("refresh_token", "k", mark=Mark("rotated", "k", {"n": "a"},
                                                                 ttl=60))
        assert outcome is not None and outcome.first
        assert store.find("rotated", "k") == {"n": "a"}
    assert store.find("rotated", "k") == {"n": "a"}


def test_delete(store: Store) -> None:
    store.save("consent", "k", {"v": 1}, ttl=None)
    store.delete("consent", "k")
    store.delete("consent", "never-there")
    assert store.find("consent", "k") is None


def test_revoke_grant_removes_exactly_that_family(store: Store) -> None:
    store.save("refresh_token", "r1", {"n": 1}, ttl=3600, grant_id="g1")
    store.save("refresh_token", "r2", {"n": 2}, ttl=3600, grant_id="g1")
    store.save("authorization_code", "c1", {"n": 3}, ttl=60, grant_id="g1")
    store.save("refresh_token", "other", {"n": 4}, ttl=3600, grant_id="g2")
    store.save("client", "c", {"n": 5}, ttl=None)
    assert store.revoke_grant("g1") == 3
    assert store.find("refresh_token", "r1") is None
    assert store.find("refresh_token", "r2") is None
    assert store.find("authorization_code", "c1") is None
    assert store.find("refresh_token", "other") == {"n": 4}
    assert store.find("client", "c") == {"n": 5}
    assert store.revoke_grant("g1") == 0
    assert store.revoke_grant("unknown") == 0


def test_revoke_grant_spares_a_key_resaved_under_another_grant(store: Store) -> None:
    store.save("session", "s", {"n": 1}, ttl=3600, grant_id="g1")
    store.save("session", "s", {"n": 2}, ttl=3600, grant_id="g2")
    assert store.revoke_grant("g1") == 0
    assert store.find("session", "s") == {"n": 2}


def test_drop_grant_removes_that_family_in_order_with_the_writes_around_it(store: Store) -> None:
    """revoke_grant without the count: a backend may hold it inside a batch, in its place."""
    store.save("refresh_token", "r1", {"n": 1}, ttl=3600, grant_id="g1")
    store.save("refresh_token", "other", {"n": 2}, ttl=3600, grant_id="g2")
    with store.batch():
        store.save("code", "before", {"n": 3}, ttl=60, grant_id="g1")
        store.drop_grant("g1")
        store.save("code", "after", {"n": 4}, ttl=60, grant_id="g1")
        assert store.find("refresh_token", "r1") is None
    assert store.find_many("code", ["before", "after"]) == [None, {"n": 4}]
    assert store.find("refresh_token", "r1") is None
    assert store.find("refresh_token", "other") == {"n": 2}
    store.drop_grant("g2")
    store.drop_grant("unknown")
    assert store.find("refresh_token", "other") is None


def test_grant_records_lists_the_live_records_of_one_grant(store: Store,
                                                          clock: FakeClock) -> None:
    store.save("session", "s1", {"n": 1}, ttl=3600, grant_id="sessions-of:u1")
    store.save("session_grant", "sid:g:1", {"n": 2}, ttl=3600, grant_id="sessions-of:u1")
    store.save("session", "short", {"n": 3}, ttl=5, grant_id="sessions-of:u1")
    store.save("session", "moved", {"n": 4}, ttl=3600, grant_id="sessions-of:u1")
    store.save("session", "moved", {"n": 5}, ttl=3600, grant_id="sessions-of:u2")
    store.save("session", "other", {"n": 6}, ttl=3600, grant_id="sessions-of:u2")
    clock.advance(6)
    assert sorted(store.grant_records("sessions-of:u1")) == [
        ("session", "s1", {"n": 1}), ("session_grant", "sid:g:1", {"n": 2})]
    assert sorted(store.grant_records("sessions-of:u2")) == [
        ("session", "moved", {"n": 5}), ("session", "other", {"n": 6})]
    store.delete("session", "s1")
    assert store.grant_records("sessions-of:u1") == [("session_grant", "sid:g:1", {"n": 2})]
    store.revoke_grant("sessions-of:u1")
    assert store.grant_records("sessions-of:u1") == []
    assert store.grant_records("nothing") == []


def test_all_but_newest_reads_one_prefix_of_one_grant_in_key_order(store: Store,
                                                                   clock: FakeClock) -> None:
    """What the grant cap reads at every new family: the records of a key prefix under a grant,
    but the newest in key order, oldest first; the prefix's other kinds, other grants, expired
    records and keys beside the prefix are not among them."""
    for n in (3, 1, 2):
        store.save("app_grant", f"u/c/{n:04d}", {"n": n}, ttl=3600, grant_id="apps-of:u")
    store.save("app_grant", "u/c/0000", {"n": 0}, ttl=10, grant_id="apps-of:u")
    store.save("app_grant", "u/c/0009", {"n": 9}, ttl=3600, grant_id="apps-of:v")
    store.save("app_grant", "u/d/0000", {"n": -1}, ttl=3600, grant_id="apps-of:u")
    store.save("app_grant", "u:c:0000", {"n": -2}, ttl=3600, grant_id="apps-of:u")
    store.save("consent", "u/c/0000", {"n": -3}, ttl=3600, grant_id="apps-of:u")
    store.save("consent", "u/c/0002", {"n": -4}, ttl=3600, grant_id="apps-of:u")  # a family's key
    clock.advance(11)
    assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 1) == [
        ("u/c/0001", {"n": 1}), ("u/c/0002", {"n": 2})]
    assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 0) == [
        ("u/c/0001", {"n": 1}), ("u/c/0002", {"n": 2}), ("u/c/0003", {"n": 3})]
    assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 3) == []
    assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 5) == [], "fewer than newest"
    assert store.all_but_newest("apps-of:u", "app_grant", "u/e/", 0) == []
    for newest in (0, 1, 5):  # the recipe docs/storage.md gives a store of one's own
        assert keyorder.all_but_newest(store.grant_records("apps-of:u"), "app_grant", "u/c/",
                                       newest) == store.all_but_newest(
            "apps-of:u", "app_grant", "u/c/", newest)
    for _, record in store.all_but_newest("apps-of:u", "app_grant", "u/c/", 0):
        record["n"] = "changed"
    with store.batch():
        store.save("app_grant", "u/c/0004", {"n": 4}, ttl=3600, grant_id="apps-of:u")
        store.delete("app_grant", "u/c/0001")
        assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 2) == [
            ("u/c/0002", {"n": 2})], "the writes held before it are sent first"
    assert keyorder.after("u/c/") == "u/c0"
    with pytest.raises(ValueError, match="not empty"):
        keyorder.after("")


def test_all_but_newest_orders_keys_bytewise_and_leaves_out_a_record_that_moved(
        store: Store) -> None:
    """A key that begins another sorts before it (a backend that names records with something
    after the key must not sort by the name), and a record saved again under another grant is
    no longer this grant's, even where its old grant's index still names it."""
    for key in ("u/c/00051", "u/c/0005", "u/c/0004", "u/c/0006"):
        store.save("app_grant", key, {"key": key}, ttl=3600, grant_id="apps-of:u")
    store.save("app_grant", "u/c/0004", {"key": "moved"}, ttl=3600, grant_id="apps-of:v")
    assert store.all_but_newest("apps-of:u", "app_grant", "u/c/", 1) == [
        ("u/c/0005", {"key": "u/c/0005"}), ("u/c/00051", {"key": "u/c/00051"})]
    assert store.all_but_newest("apps-of:v", "app_grant", "u/c/", 0) == [
        ("u/c/0004", {"key": "moved"})]


def test_a_listed_record_is_the_callers_own(store: Store) -> None:
    """A listing read again is as stored, whatever a caller did to the records it was given
    (a backend may keep decoded records between listings)."""
    store.save("app_grant", "u:c:1", {"client_id": "c", "offline": True, "started": 1.5},
               ttl=3600, grant_id="apps-of:u")
    store.save("consent", "u:c", {"scopes": ["openid"]}, ttl=3600, grant_id="apps-of:u")
    for _ in range(2):
        for _, _, record in store.grant_records("apps-of:u"):
            record["client_id"] = "changed"
            record.get("scopes", []).append("email")
    assert sorted(store.grant_records("apps-of:u")) == [
        ("app_grant", "u:c:1", {"client_id": "c", "offline": True, "started": 1.5}),
        ("consent", "u:c", {"scopes": ["openid"]})]
    store.save("app_grant", "u:c:1", {"client_id": "c", "offline": False, "started": 1.5},
               ttl=3600, grant_id="apps-of:u")
    assert ("app_grant", "u:c:1", {"client_id": "c", "offline": False, "started": 1.5}) in (
        store.grant_records("apps-of:u")), "a changed record is listed as it is now"


def test_a_saved_or_found_record_is_the_callers_own(store: Store) -> None:
    """Changing a record after saving it, or one that was read, at any depth, never changes
    what is stored (the memory store keeps objects, not text, so it must copy them)."""
    record: dict[str, Any] = {"amr": ["pwd"], "claims": {"email": {"essential": True}}, "n": 1}
    store.save("authorization_code", "k", record, ttl=60, grant_id="g")
    record["amr"].append("otp")
    record["claims"]["email"]["essential"] = False
    record["n"] = 2
    stored = {"amr": ["pwd"], "claims": {"email": {"essential": True}}, "n": 1}
    reads = [store.find("authorization_code", "k"),
             store.find_many("authorization_code", ["k"])[0],
             dict(store.scan("authorization_code"))["k"],
             next(entry.record for entry in store.dump() if entry.key == "k"),
             store.grant_records("g")[0][2]]
    outcome = store.consume("authorization_code", "k")
    assert outcome is not None
    reads.append(outcome.record)
    for found in reads:
        assert found is not None
        assert found == stored
        found["amr"].append("hwk")
        found["claims"]["email"]["essential"] = None
    assert store.find("authorization_code", "k") == stored


def test_scan_lists_live_records_of_one_kind(store: Store, clock: FakeClock) -> None:
    store.save("client", "b", {"n": 2}, ttl=None)
    store.save("client", "a", {"n": 1}, ttl=None)
    store.save("client", "gone", {"n": 0}, ttl=5)
    store.save("user", "a", {"n": 9}, ttl=None)
    clock.advance(6)
    assert sorted(store.scan("client")) == [("a", {"n": 1}), ("b", {"n": 2})]


def test_unicode_and_large_payloads(store: Store) -> None:
    text = "Zoë Ångström 名前 🔑 \u202e" * 10
    big = "x" * (64 * 1024)
    store.save("user", "ünïcødé-ключ", {"name": text, "blob": big}, ttl=None)
    assert store.find("user", "ünïcødé-ключ") == {"name": text, "blob": big}
    assert [k for k, _ in store.scan("user")] == ["ünïcødé-ключ"]


def test_hash_key_is_a_stable_digest() -> None:
    assert hash_key("abc") == hash_key("abc") != hash_key("abd")
    assert len(hash_key("abc")) == 64 and "abc" not in hash_key("abc")


def test_incr_counts_within_a_window_that_never_extends(store: Store, clock: FakeClock) -> None:
    assert [store.incr("throttle", "k", ttl=10) for _ in range(3)] == [1, 2, 3]
    assert store.incr("throttle", "other", ttl=10) == 1, "each key counts on its own"
    assert store.find("throttle", "k") == {"count": 3}
    clock.advance(9)
    assert store.incr("throttle", "k", ttl=10) == 4, "incrementing does not restart the window"
    clock.advance(1)
    assert store.find("throttle", "k") is None, "the window ends ttl seconds after the first"
    assert store.incr("throttle", "k", ttl=10) == 1, "an expired counter starts again"
    store.delete("throttle", "k")
    assert store.incr("throttle", "k", ttl=10) == 1
    assert [e.record for e in store.dump() if e.kind == "throttle" and e.key == "k"] == [
        {"count": 1}]


def test_incr_thread_race_loses_no_count(store: Store) -> None:
    threads, each = 8, 50

    def bump() -> list[int]:
        return [store.incr("throttle", "race", ttl=600) for _ in range(each)]

    seen = [n for mine in run_in_threads(bump, threads) for n in mine]
    assert sorted(seen) == list(range(1, threads * each + 1)), "every value seen exactly once"


def _process_incr(store: Store, results: object, n: int) -> None:
    results.put([store.incr("throttle", "prace", ttl=600) for _ in range(n)])  # type: ignore[attr-defined]


def shared_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store that forked processes share: a file, or a server."""
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "shared.sqlite3")
    if backend == "postgres":
        return PostgresStore(request.getfixturevalue("postgres_url"))
    if backend == "redis-cluster":
        return RedisClusterStore(request.getfixturevalue("redis_cluster_url"),
                                 prefix=unique_prefix())
    return RedisStore(request.getfixturevalue("redis_url"), prefix=unique_prefix())


SHARED = ["sqlite", "redis", "postgres", "redis-cluster"]


@pytest.mark.parametrize("backend", SHARED)
def test_incr_process_race_loses_no_count(backend: str, request: pytest.FixtureRequest,
                                          tmp_path: Path) -> None:
    store = shared_store(backend, request, tmp_path)
    store.ping()  # the parent's connection stays open: children must not use it after fork
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    processes, each = 4, 100
    workers = [ctx.Process(target=_process_incr, args=(store, results, each))
               for _ in range(processes)]
    for w in workers:
        w.start()
    seen = [n for _ in range(processes) for n in results.get(timeout=60)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert sorted(seen) == list(range(1, processes * each + 1))


def test_thread_race_has_exactly_one_winner_per_round(store: Store) -> None:
    threads = 16
    # PostgreSQL commits (and fsyncs) each of the 16 contenders' UPDATEs in turn on the row
    # lock: ~3 ms a round on this machine, so it races fewer rounds.
    rounds = ROUNDS // 4 if isinstance(store, PostgresStore) else ROUNDS
    for i in range(rounds):
        store.save("authorization_code", f"race{i}", {"i": i}, ttl=600)
    barrier = threading.Barrier(threads)
    wins: Counter[int] = Counter()
    replays: Counter[int] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            for i in range(rounds):
                barrier.wait()
                outcome = store.consume("authorization_code", f"race{i}")
                assert outcome is not None
                with lock:
                    (wins if outcome.first else replays)[i] += 1
        except BaseException as exc:  # surfaced below; a dead thread would hang the barrier
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=contender) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert all(wins[i] == 1 for i in range(rounds)), "every round has exactly one winner"
    assert all(replays[i] == threads - 1 for i in range(rounds))


def test_thread_race_marks_with_the_winners_mark_only(store: Store) -> None:
    threads, rounds = 8, 40
    for i in range(rounds):
        store.save("refresh_token", f"mrace{i}", {"i": i}, ttl=600)
    barrier = threading.Barrier(threads)
    winners: dict[int, list[int]] = {i: [] for i in range(rounds)}
    errors: list[BaseException] = []

    def contender(me: int) -> None:
        try:
            for i in range(rounds):
                barrier.wait()
                outcome = store.consume("refresh_token", f"mrace{i}",
                                        mark=Mark("rotated", f"mrace{i}", {"by": me}, ttl=600))
                assert outcome is not None
                if outcome.first:
                    winners[i].append(me)
        except BaseException as exc:  # surfaced below; a dead thread would hang the barrier
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=contender, args=(me,)) for me in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    for i in range(rounds):
        assert len(winners[i]) == 1, "every round has exactly one winner"
        assert store.find("rotated", f"mrace{i}") == {"by": winners[i][0]}, (
            "the mark is the winner's, never overwritten by a loser")


def _process_contender(store: Store, barrier: object, results: object, rounds: int) -> None:
    for i in range(rounds):
        barrier.wait()  # type: ignore[attr-defined]
        outcome = store.consume("authorization_code", f"prace{i}")
        results.put((i, os.getpid(), outcome is not None and outcome.first))  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", SHARED)
def test_process_race_has_exactly_one_winner_per_round(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = shared_store(backend, request, tmp_path)
    for i in range(ROUNDS):
        store.save("authorization_code", f"prace{i}", {"i": i}, ttl=600)
    # The parent's connection stays open, as in a gunicorn master that touched storage before
    # forking: every child must open its own (the "connections opened after fork" rule).
    ctx = multiprocessing.get_context("fork")
    processes = 4
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [ctx.Process(target=_process_contender, args=(store, barrier, results, ROUNDS))
               for _ in range(processes)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=60) for _ in range(processes * ROUNDS)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    wins = Counter(i for i, _, first in outcomes if first)
    assert len({pid for _, pid, _ in outcomes}) == processes
    assert all(wins[i] == 1 for i in range(ROUNDS)), "every round has exactly one winner"


def test_sqlite_records_survive_reopening(tmp_path: Path, clock: FakeClock) -> None:
    first = SQLiteStore(tmp_path / "keep.sqlite3", clock=clock)
    first.save("client", "c", {"name": "kept"}, ttl=None)
    first.save("authorization_code", "k", {"n": 1}, ttl=60)
    first.consume("authorization_code", "k")
    first.close()
    second = SQLiteStore(tmp_path / "keep.sqlite3", clock=clock)
    assert second.find("client", "c") == {"name": "kept"}
    outcome = second.consume("authorization_code", "k")
    assert outcome is not None and not outcome.first, "consumption survives a restart too"


def test_redis_records_survive_reopening(redis_url: str, clock: FakeClock) -> None:
    prefix = unique_prefix()
    first = RedisStore(redis_url, prefix=prefix, clock=clock)
    first.save("client", "c", {"name": "kept"}, ttl=None)
    first.close()
    second = RedisStore(redis_url, prefix=prefix, clock=clock)
    assert second.find("client", "c") == {"name": "kept"}
    assert RedisStore(redis_url, prefix=unique_prefix()).find("client", "c") is None, (
        "prefixes isolate deployments sharing one Redis"
    )


def test_wrong_port_redis_raises_the_typed_error_without_secrets() -> None:
    store = RedisStore("redis://:s3cret-pw@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(StorageUnavailable) as caught:
        store.find("client", "c")
    assert "s3cret-pw" not in str(caught.value)
    for call in (lambda: store.save("client", "c", {}, ttl=None), store.ping,
                 lambda: store.consume("code", "k"), lambda: store.revoke_grant("g")):
        with pytest.raises(StorageUnavailable):
            call()


def test_stopped_redis_raises_then_recovers(tmp_path: Path, redis_server: RedisServer) -> None:
    """Needs Redis like every Redis test (``redis_server``); stops a server of its own."""
    server = RedisServer(tmp_path / "r")
    server.start()
    store = RedisStore(server.url, prefix=unique_prefix(), timeout=0.5)
    store.save("client", "c", {"n": 1}, ttl=None)
    server.stop()
    with pytest.raises(StorageUnavailable):
        store.find("client", "c")
    with pytest.raises(StorageUnavailable):
        store.save("client", "d", {"n": 2}, ttl=None)
    server.start()  # same port, empty memory: the server lost its data, the client recovers
    store.save("client", "d", {"n": 2}, ttl=None)
    assert store.find("client", "d") == {"n": 2}
    server.stop()


def test_unwritable_sqlite_path_raises_the_typed_error(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable):
        SQLiteStore("/proc/uauth-cannot-write-here/uauth.db").save("c", "k", {}, ttl=None)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    store = SQLiteStore(readonly / "u.db")
    store.save("client", "c", {"n": 1}, ttl=None)
    store.close()
    (readonly / "u.db").chmod(0o444)
    readonly.chmod(0o555)
    try:
        if os.geteuid() == 0:
            # root ignores file modes; a locked database is the outage root can still meet
            import sqlite3

            blocker = sqlite3.connect(readonly / "u.db", isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            locked = SQLiteStore(readonly / "u.db", busy_timeout=0.1)
            with pytest.raises(StorageUnavailable):
                locked.save("client", "d", {}, ttl=None)
            blocker.execute("ROLLBACK")
            blocker.close()
            locked.save("client", "d", {"n": 2}, ttl=None)
            assert locked.find("client", "d") == {"n": 2}, "recovers once the lock is gone"
        else:
            with pytest.raises(StorageUnavailable):
                SQLiteStore(readonly / "u.db").save("client", "d", {}, ttl=None)
    finally:
        readonly.chmod(0o755)


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite_store = open_store(f"sqlite:///{tmp_path}/x.db")  # four slashes: absolute
    assert isinstance(sqlite_store, SQLiteStore) and sqlite_store.path == tmp_path / "x.db"
    redis_store = open_store("redis://127.0.0.1:6379/0", redis_prefix="p:")
    assert isinstance(redis_store, RedisStore) and redis_store.prefix == "p:"


def test_find_many_answers_like_find_in_one_call(store: Store, clock: FakeClock) -> None:
    store.save("revoked", "a", {"n": 1}, ttl=60)
    store.save("revoked", "b", {"n": 2}, ttl=5)
    store.save("other", "c", {"n": 3}, ttl=60)
    clock.advance(6)
    assert store.find_many("revoked", ["a", "b", "c", "zz", "a"]) == [
        {"n": 1}, None, None, None, {"n": 1}], "expired, other kinds and missing are None"
    assert store.find_many("revoked", []) == []


def test_every_operation_in_a_batch_sees_the_writes_made_before_it(store: Store) -> None:
    """Store.batch may hold writes back; nothing in the block may notice."""
    with store.batch():
        store.save("code", "a", {"n": 1}, ttl=60)
        assert store.find("code", "a") == {"n": 1}
        store.save("code", "b", {"n": 2}, ttl=60)
        store.delete("code", "b")
        assert store.find_many("code", ["a", "b"]) == [{"n": 1}, None]
        store.save("code", "c", {"n": 3}, ttl=60, grant_id="g")
        store.save("code", "c", {"n": 4}, ttl=60, grant_id="g")
        assert store.grant_records("g") == [("code", "c", {"n": 4})], "the last save wins"
        store.save("code", "d", {"n": 5}, ttl=60)
        assert not store.add("code", "d", {"n": 6}, ttl=60), "add sees the held save"
        store.save("code", "e", {"n": 7}, ttl=60)
        outcome = store.consume("code", "e")
        assert outcome is not None and outcome.first and outcome.record == {"n": 7}
        store.save("counter", "x", {"count": 4}, ttl=60)
        assert store.incr("counter", "x", ttl=60) == 5
        store.save("code", "f", {"n": 8}, ttl=60, grant_id="h")
        assert store.revoke_grant("h") == 1
        store.save("scanned", "s", {"n": 9}, ttl=60)
        assert dict(store.scan("scanned")) == {"s": {"n": 9}}
        store.save("code", "z", {"n": 10}, ttl=60)
    assert store.find("code", "z") == {"n": 10}, "what the block held is written at its end"


def test_a_record_read_ahead_is_what_find_would_have_answered(store: Store) -> None:
    """Store.prefetch may read a record with the next round trip; find must answer as it
    would have without it: a write of this thread to the record since, a held one included, is
    seen, and so is a record that was missing."""
    store.save("user", "u", {"v": 1}, ttl=None)
    store.save("user", "w", {"v": 1}, ttl=None)
    store.save("code", "c", {"n": 1}, ttl=60, grant_id="g")
    store.save("user", "r", {"v": 1}, ttl=None, grant_id="g")
    store.save("user", "d", {"v": 1}, ttl=None, grant_id="h")
    store.prefetch("user", "outside")  # outside a batch: nothing to ride on, and no error
    with store.batch():
        for key in ("u", "w", "x", "y", "z", "missing"):
            store.prefetch("user", key)
        store.save("user", "x", {"v": 2}, ttl=None)  # held: before the reads, which see it
        assert store.find("code", "c") == {"n": 1}  # the round trip that reads them
        store.save("user", "w", {"v": 2}, ttl=None)  # after the read: it must not answer
        assert store.consume("user", "y") is None
        store.save("user", "y", {"v": 3}, ttl=None)
        store.delete("user", "x")
        assert store.find("user", "u") == {"v": 1}
        assert store.find("user", "w") == {"v": 2}, "a save after the read ahead"
        assert store.find("user", "x") is None, "a delete after the read ahead"
        assert store.find("user", "y") == {"v": 3}, "a save of a record read ahead as missing"
        assert store.find("user", "missing") is None
        assert store.find("user", "u") == {"v": 1}, "asked twice: read again"
        store.prefetch("user", "r")
        assert store.incr("counter", "n", ttl=60) == 1  # carries it
        assert store.revoke_grant("g") == 2
        assert store.find("user", "r") is None, "revoked with its grant after the read ahead"
        store.save("code", "d", {"n": 2}, ttl=60)
        store.prefetch("user", "m")
        assert store.find("user", "u") == {"v": 1}  # may read "m" ahead: missing
        assert store.consume("code", "d", mark=Mark("user", "m", {"v": 4}, ttl=60)) is not None
        assert store.find("user", "m") == {"v": 4}, "a consume's mark after the read ahead"
        store.prefetch("user", "u")
        assert store.find_many("user", ["w", "u"]) == [{"v": 2}, {"v": 1}], "asked for as well"
        assert store.find("user", "u") == {"v": 1}
        store.prefetch("user", "a")
        store.prefetch("user", "d")
        assert store.find("user", "u") == {"v": 1}  # may read "a" (missing) and "d" ahead
        assert store.add("user", "a", {"v": 5}, ttl=None)
        assert store.find("user", "a") == {"v": 5}, "an add after the read ahead"
        store.drop_grant("h")  # held inside the batch, like a save
        assert store.find("user", "d") is None, "dropped with its grant after the read ahead"
    assert store.find("user", "w") == {"v": 2} and store.find("user", "z") is None


def test_a_record_read_ahead_with_a_spend_is_what_find_would_have_answered(
        store: Store, clock: FakeClock) -> None:
    """A spend (Store.consume) may carry the reads expected ahead, as SQLite's carries them in
    its statement: find answers as it would have without them, expired and missing records
    included, and a write after the spend is seen; a spend that finds nothing loses none."""
    store.save("user", "u", {"v": 1}, ttl=None)
    store.save("user", "old", {"v": 1}, ttl=5)
    store.save("code", "c", {"n": 1}, ttl=60)
    store.save("code", "e", {"n": 2}, ttl=60)
    clock.advance(5)
    with store.batch():
        store.prefetch("user", "u")
        assert store.consume("code", "unknown") is None
        assert store.find("user", "u") == {"v": 1}, "a spend that found nothing"
        store.save("user", "k", {"v": 6}, ttl=None)  # held: before the spend, which sees it
        for key in ("u", "old", "missing", "k", "w"):
            store.prefetch("user", key)
        spent = store.consume("code", "c", mark=Mark("user", "m", {"v": 7}, ttl=60))
        assert spent is not None and spent.first and spent.record == {"n": 1}
        store.save("user", "w", {"v": 8}, ttl=None)  # after the spend: it must not answer
        assert store.find("user", "u") == {"v": 1}
        assert store.find("user", "old") is None, "expired before the spend"
        assert store.find("user", "missing") is None
        assert store.find("user", "k") == {"v": 6}, "a held write before the spend"
        assert store.find("user", "w") == {"v": 8}, "a save after the spend"
        store.prefetch("user", "m")
        again = store.consume("code", "c")
        assert again is not None and not again.first
        assert store.find("user", "m") == {"v": 7}, "the first spend's mark"
        store.prefetch("user", "u")
        assert store.consume("code", "e") is not None
        store.delete("user", "u")
        assert store.find("user", "u") is None, "a delete after the spend"
    assert store.find("user", "k") == {"v": 6} and store.find("user", "w") == {"v": 8}


def test_a_grant_listed_ahead_is_what_grant_records_would_have_answered(store: Store) -> None:
    """Store.prefetch_grant may list a grant with the next round trip; grant_records must
    answer as it would have without it: a held write before the listing is in it, and any
    write of this thread after it (to any record: it may join or leave the grant) makes the
    listing read again."""
    store.save("factor", "f1", {"n": 1}, ttl=None, grant_id="of:u")
    store.save("factor", "f2", {"n": 2}, ttl=None, grant_id="of:u")
    store.save("factor", "x", {"n": 9}, ttl=None, grant_id="of:v")
    store.save("session", "s", {"v": 1}, ttl=60)

    def listed(grant_id: str) -> list[tuple[str, str, Record]]:
        return sorted(store.grant_records(grant_id), key=lambda row: row[1])

    def f(key: str, n: int) -> tuple[str, str, Record]:
        return ("factor", key, {"n": n})

    store.prefetch_grant("of:outside")  # outside a batch: nothing to ride on, and no error
    with store.batch():
        store.prefetch_grant("of:u")
        store.prefetch_grant("of:none")
        store.prefetch("user", "missing")
        store.save("factor", "f3", {"n": 3}, ttl=None, grant_id="of:u")  # held: listed
        assert store.find("session", "s") == {"v": 1}  # the round trip that lists them
        assert listed("of:u") == [f("f1", 1), f("f2", 2), f("f3", 3)]
        assert listed("of:none") == []
        assert store.find("user", "missing") is None
        assert listed("of:u") == [f("f1", 1), f("f2", 2), f("f3", 3)], "asked twice: again"
        store.prefetch_grant("of:u")
        assert store.find("session", "s") == {"v": 1}
        store.save("factor", "f4", {"n": 4}, ttl=None, grant_id="of:u")  # after the listing
        assert listed("of:u") == [f("f1", 1), f("f2", 2), f("f3", 3), f("f4", 4)]
        store.prefetch_grant("of:u")
        assert store.find("session", "s") == {"v": 1}
        store.delete("factor", "f1")
        assert listed("of:u") == [f("f2", 2), f("f3", 3), f("f4", 4)], "a delete after it"
        store.prefetch_grant("of:u")
        assert store.find("session", "s") == {"v": 1}
        store.save("factor", "f2", {"n": 5}, ttl=None)  # saved again outside the grant
        assert listed("of:u") == [f("f3", 3), f("f4", 4)], "a record that left the grant"
        store.prefetch_grant("of:v")
        assert store.find("session", "s") == {"v": 1}
        store.save("session", "t", {"v": 2}, ttl=60, grant_id="of:v")  # a save that joins it
        assert listed("of:v") == [("session", "t", {"v": 2}), f("x", 9)]
        store.prefetch_grant("of:u")
        assert store.find_many("session", ["s"]) == [{"v": 1}]
        assert store.revoke_grant("of:u") == 2
        assert listed("of:u") == [], "revoked after the listing ahead"
        store.prefetch_grant("of:v")
        assert store.find("session", "s") == {"v": 1}
        assert store.consume("session", "t", mark=Mark("factor", "m", {"n": 6}, ttl=60,
                                                           grant_id="of:v")) is not None
        assert listed("of:v") == [("factor", "m", {"n": 6}), ("session", "t", {"v": 2}),
                                  f("x", 9)], "a consume's mark after it"
    assert listed("of:v") == [("factor", "m", {"n": 6}), ("session", "t", {"v": 2}), f("x", 9)]


def test_a_batch_is_written_for_every_thread_when_it_ends_even_when_it_raises(
        store: Store) -> None:
    def seen_elsewhere(key: str) -> object:
        return run_in_threads(lambda: store.find("code", key), 1)[0]

    with store.batch():
        store.save("code", "first", {"n": 1}, ttl=60)
        store.delete("code", "nothing-here")
        with store.batch():  # nested: one block
            store.save("code", "inner", {"n": 2}, ttl=60)
        store.save("code", "last", {"n": 3}, ttl=60)
    assert [seen_elsewhere(k) for k in ("first", "inner", "last")] == [
        {"n": 1}, {"n": 2}, {"n": 3}]
    with pytest.raises(ZeroDivisionError), store.batch():
        store.save("code", "before-the-error", {"n": 4}, ttl=60)
        store.delete("code", "first")
        _ = 1 / 0
    assert seen_elsewhere("before-the-error") == {"n": 4}, "written as it would have been"
    assert seen_elsewhere("first") is None


def test_memory_store_drops_expired_records_nobody_reads_again(clock: FakeClock) -> None:
    from uauth.storage.base import PURGE_EVERY

    store = MemoryStore(clock=clock)
    for i in range(PURGE_EVERY):
        store.save("authorization_code", f"spent{i}", {"i": i}, ttl=60)
        store.consume("authorization_code", f"spent{i}")
    clock.advance(61)
    for i in range(PURGE_EVERY):
        store.save("authorization_code", f"new{i}", {"i": i}, ttl=60)
    assert len(store._entries) <= PURGE_EVERY, "the spent, expired codes are gone"
    assert len(store._by_kind["authorization_code"]) == len(store._entries), "unindexed too"


def test_memory_store_purges_by_expiry_not_by_walking_every_record(clock: FakeClock) -> None:
    """The purge follows expiries, soonest first: a record rewritten with a later expiry
    outlives its first one, a record without expiry is never touched, and the items rewrites
    leave behind do not pile up."""
    from uauth.storage.base import PURGE_EVERY

    store = MemoryStore(clock=clock)
    store.save("user", "kept", {"n": 0}, ttl=None)
    store.save("session", "renewed", {"n": 1}, ttl=60)
    store.save("session", "renewed", {"n": 2}, ttl=600)  # its first expiry is still queued
    store.save("session", "dropped", {"n": 3}, ttl=60)
    store.delete("session", "dropped")
    clock.advance(61)
    for i in range(PURGE_EVERY):
        store.save("counter", "churn", {"i": i}, ttl=3600)  # one record, rewritten
    assert store.find("session", "renewed") == {"n": 2}, "its later expiry holds"
    assert ("session", "renewed") in store._entries, "not purged by its first expiry"
    assert store.find("user", "kept") == {"n": 0}
    assert len(store._entries) == 3, "kept, renewed, churn"
    for i in range(3 * PURGE_EVERY):
        store.save("counter", "churn", {"i": i}, ttl=3600)
    assert len(store._expiries) <= 2 * len(store._entries) + PURGE_EVERY, (
        "rebuilt once the items rewrites left behind outnumber the records")
    clock.advance(3601)
    for i in range(PURGE_EVERY):
        store.save("code", f"c{i}", {"i": i}, ttl=60)
    assert store.find("counter", "churn") is None and ("counter", "churn") not in store._entries
    assert ("session", "renewed") not in store._entries, "purged once its expiry passed"


def _child_connection_is_fresh(store: SQLiteStore, results: object) -> None:
    inherited = store._local.conn  # held, so a fresh connection cannot reuse its address
    fresh = store._conn()
    results.put(inherited is not None and fresh is not inherited)  # type: ignore[attr-defined]


def test_sqlite_children_never_use_a_connection_inherited_through_fork(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fork.sqlite3")
    store.save("client", "c", {"n": 1}, ttl=None)  # the parent has a live connection now
    assert ask_forked_child(_child_connection_is_fresh, store) is True


class _NoFullWalk(dict[tuple[str, str], _Entry]):
    """The memory store's entries, refusing to be walked whole (a listing must use its index)."""

    def _walked(self) -> Any:
        raise AssertionError("the whole store was walked")

    items = keys = values = __iter__ = _walked


def test_memory_store_lists_and_revokes_a_grant_through_its_index(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for i in range(50):  # other people's records, which a grant's listing must not read
        store.save("refresh_token", f"other{i}", {"i": i}, ttl=60, grant_id=f"g{i}")
    store.save("refresh_token", "a", {"n": 1}, ttl=60, grant_id="mine")
    store.save("access_token", "b", {"n": 2}, ttl=None, grant_id="mine")
    store.save("refresh_token", "moved", {"n": 3}, ttl=60, grant_id="mine")
    store.save("refresh_token", "moved", {"n": 3}, ttl=60, grant_id="g1")  # saved elsewhere now
    store.save("code", "short", {"n": 4}, ttl=5, grant_id="mine")
    clock.advance(6)
    entries = store._entries
    store._entries = _NoFullWalk(entries)
    try:
        assert sorted(store.grant_records("mine")) == [
            ("access_token", "b", {"n": 2}), ("refresh_token", "a", {"n": 1})]
        assert [key for key, _ in store.scan("access_token")] == ["b"]
        assert store.revoke_grant("mine") == 2
        assert store.grant_records("mine") == [] and store.revoke_grant("mine") == 0
    finally:
        store._entries = dict(dict.items(store._entries))  # dict's own items, not refused
    assert store.find("refresh_token", "moved") == {"n": 3}, "spared: another grant's now"
    assert len(store.grant_records("g1")) == 2
    store.delete("refresh_token", "moved")
    assert [key for _, key, _ in store.grant_records("g1")] == ["other1"]
    assert store._by_grant.keys() == {f"g{i}" for i in range(50)}, "no empty index left"
