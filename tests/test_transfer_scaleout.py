"""``uauth migrate`` with PostgreSQL and Redis Cluster: a SQLite or Redis deployment moves over
and back with every record, TTL, grant and consumed state; ``uauth migrate`` without ``--to``
brings the PostgreSQL schema up to date, idempotently, also when hosts run it together."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.app_driver import json_of
from tests.conftest import FakeClock
from tests.conftest import run_in_processes
from tests.conftest import unique_prefix
from tests.postgres_server import SessionDatabase
from tests.test_transfer import populated
from tests.test_transfer import uauth
from tests.test_transfer import use_old_tokens
from uauth.ops.transfer import compare
from uauth.ops.transfer import migrate
from uauth.storage import Store
from uauth.storage.postgres import LATEST
from uauth.storage.postgres import PostgresStore
from uauth.storage.postgres import schema_version
from uauth.storage.redis import RedisStore
from uauth.storage.redis_cluster import RedisClusterStore
from uauth.storage.sqlite import SQLiteStore


def entries(store: Store) -> list[tuple[object, ...]]:
    return sorted((e.kind, e.key, str(e.record), e.grant_id, bool(e.consumed),
                   None if e.expires_at is None else round(e.expires_at))
                  for e in store.dump())


def test_sqlite_to_postgres_to_cluster_to_redis_and_back_keeps_everything(
        tmp_path: Path, clock: FakeClock, postgres_url: str, redis_cluster_url: str,
        redis_url: str) -> None:
    _, source, tokens = populated(tmp_path, clock)
    expected = entries(source)
    chain: list[Store] = [
        source,
        PostgresStore(postgres_url, clock=clock),
        RedisClusterStore(redis_cluster_url, prefix=unique_prefix(), clock=clock),
        RedisStore(redis_url, prefix=unique_prefix(), clock=clock),
        SQLiteStore(tmp_path / "back.sqlite3", clock=clock),
    ]
    for before, after in zip(chain, chain[1:], strict=False):
        counts = migrate(before, after, now=clock())
        assert sum(counts.values()) == len(expected)
        assert compare(before, after) == []
        assert entries(after) == expected, f"{type(after).__name__} holds the same records"

    on_postgres = chain[1]
    replayed = on_postgres.consume("refresh_token", "rotated-digest")
    assert replayed is not None and not replayed.first, "a rotated one is still a replay"
    _, again = use_old_tokens(tmp_path, on_postgres, clock, tokens)
    assert json_of(again)["error"] == "invalid_grant", "spent exactly once on PostgreSQL too"
    for store in chain:
        store.close()


def test_cli_moves_sqlite_to_postgres_and_migrates_the_schema(
        tmp_path: Path, postgres_database: SessionDatabase) -> None:
    instance = tmp_path / "instance"
    assert uauth(instance, "init").exit_code == 0
    added = uauth(instance, "user", "add", "dora", "--password-stdin", stdin="password123\n")
    assert added.exit_code == 0, added.output
    not_postgres = uauth(instance, "migrate")
    assert not_postgres.exit_code == 1 and "only PostgreSQL" in not_postgres.stderr

    fresh = postgres_database.schema_url()
    with psycopg.connect(fresh) as conn:
        assert schema_version(conn) == 0, "a new database has no schema yet"
    first = uauth(instance, "migrate", env={"UAUTH_STORAGE": fresh})
    assert first.exit_code == 0, first.output
    schema = PostgresStore(fresh)
    assert schema.version() == LATEST
    again = uauth(instance, "migrate", env={"UAUTH_STORAGE": fresh})
    assert again.exit_code == 0 and "up to date" in again.stdout, again.output

    url = postgres_database.schema_url()
    moved = uauth(instance, "migrate", "--to", url)
    assert moved.exit_code == 0, moved.output
    assert "verified" in moved.stdout and "REDIS_PREFIX" not in moved.stdout
    assert "dora" in uauth(instance, "user", "list", env={"UAUTH_STORAGE": url}).stdout
    back = tmp_path / "back.db"
    returned = uauth(instance, "migrate", "--to", f"sqlite:///{back}",
                     env={"UAUTH_STORAGE": url})
    assert returned.exit_code == 0, returned.output
    assert "dora" in uauth(instance, "user", "list",
                           env={"UAUTH_STORAGE": f"sqlite:///{back}"}).stdout
    schema.close()


def _migrate(url: str) -> None:
    PostgresStore(url).migrate()


def test_hosts_migrating_together_apply_each_version_once(
        postgres_database: SessionDatabase) -> None:
    url = postgres_database.schema_url()
    run_in_processes(_migrate, url, n=6)
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM uauth_schema ORDER BY version").fetchall()
    assert [v for (v,) in versions] == list(range(1, LATEST + 1))
    assert PostgresStore(url).migrate() == [], "idempotent"


@pytest.mark.parametrize("kind", ["postgres", "redis-cluster"])
def test_a_target_holding_records_is_refused(kind: str, request: pytest.FixtureRequest,
                                             tmp_path: Path, clock: FakeClock) -> None:
    from uauth.ops.transfer import TransferError

    _, source, _ = populated(tmp_path, clock)
    target: Store = (PostgresStore(request.getfixturevalue("postgres_url"), clock=clock)
                     if kind == "postgres" else
                     RedisClusterStore(request.getfixturevalue("redis_cluster_url"),
                                       prefix=unique_prefix(), clock=clock))
    migrate(source, target, now=clock())
    with pytest.raises(TransferError, match="already holds"):
        migrate(source, target, now=clock())
    target.close()
