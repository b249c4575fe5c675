"""PostgreSQL storage: several hosts on the database the team already runs, with its durability.

``UAUTH_STORAGE=postgresql://user:pass@host:5432/db`` (or ``postgres://``; libpq's query
parameters such as ``sslmode`` or ``options=-csearch_path%3Duauth`` pass through). One table,
``uauth_records``, laid out as the SQLite one; every operation is a single statement in
autocommit, so each is atomic and costs one round trip. Consume-once is
``UPDATE … SET consumed = consumed + 1 … RETURNING``: PostgreSQL locks the row, so the caller that
sees 1 was first, across threads, processes and hosts.

Connections come from a psycopg pool per process, opened on first use so nothing crosses a
gunicorn ``fork``; it opens connections as threads need them (one for a sync worker, at most
``max_connections``). The schema is versioned (``uauth_schema``): the first connection of each
process applies missing versions under an advisory lock, as ``uauth migrate`` does, so hosts
starting together agree. Expired rows are never returned (``expires_at`` is checked in every
query) and are purged through the ``expires_at`` index every :data:`~.base.PURGE_EVERY` writes
of a process, by whichever worker takes the purge's advisory lock first, in bounded batches.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import LiteralString
from typing import TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from .base import PURGE_EVERY
from .base import Clock
from .base import Consumed
from .base import Entry
from .base import Kind
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import system_clock

SCHEMES = ("postgresql", "postgres")

TABLE = "uauth_records"

#: Advisory lock keys (any 64-bit numbers; these spell "uauth" and a purpose).
SCHEMA_LOCK = 0x7561757468_01
PURGE_LOCK = 0x7561757468_02

#: Rows one purge deletes at most, so a backlog never stalls the request that triggers it.
PURGE_BATCH = 5000

#: Schema versions, applied in order, each once, in one transaction with its bookkeeping.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        " kind text NOT NULL, key text NOT NULL, value text NOT NULL, grant_id text,"
        " expires_at double precision, consumed integer NOT NULL DEFAULT 0,"
        " PRIMARY KEY (kind, key))",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_grant ON {TABLE} (grant_id)"
        " WHERE grant_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_expiry ON {TABLE} (expires_at)"
        " WHERE expires_at IS NOT NULL",
    )),
)
LATEST = MIGRATIONS[-1][0]

T = TypeVar("T")


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0] in SCHEMES


def migrate_schema(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the schema versions ``conn``'s database lacks; returns those applied (none when it
    is current). Idempotent; concurrent callers queue on an advisory lock."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS uauth_schema (version integer PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM uauth_schema").fetchone()
        current = int(row[0]) if row else 0
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement.encode("utf-8"))
            conn.execute("INSERT INTO uauth_schema (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of ``conn``'s database, 0 before the first migration."""
    row = conn.execute("SELECT to_regclass('uauth_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM uauth_schema").fetchone()
    return int(row[0]) if row else 0


class PostgresStore:
    def __init__(self, url: str, *, clock: Clock = system_clock, timeout: float = 2.0,
                 max_connections: int = 10) -> None:
        self.url = url
        self._clock = clock
        self._timeout = timeout
        self._max = max_connections
        parts = urlsplit(url)
        #: Where, for messages: never the password.
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = 0
        self._writes = 0

    # -- connections ----------------------------------------------------------------------

    def _get_pool(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A pool inherited through fork is dropped, never used or closed: its sockets
                # belong to the parent (psycopg leaves them alone in a child).
                self._pool = self._open_pool()
                self._pid = os.getpid()
            return self._pool

    def _open_pool(self) -> ConnectionPool[Any]:
        conninfo = "postgresql" + self.url[self.url.index("://"):]
        pool: ConnectionPool[Any] = ConnectionPool(
            conninfo, min_size=1, max_size=self._max, open=False, timeout=self._timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout))},
            # After an outage, requests open new connections themselves; a background
            # reconnection that backs off for minutes would only hold a slot meanwhile.
            reconnect_timeout=10.0, name="uauth", configure=self._configure)
        pool.open(wait=False)
        return pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each new connection: bring the schema up to date once per process (one cheap query
        once it is)."""
        if getattr(self, "_schema_pid", None) == os.getpid():
            return
        if schema_version(conn) < LATEST:
            migrate_schema(conn)
        self._schema_pid = os.getpid()

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on a pooled connection. A connection the server dropped (a restart) is
        replaced and the work retried once, as the Redis client does; an outage raises
        :class:`StorageUnavailable` within the pool timeout. (Should a server die between
        committing a consume and answering it, the retry reports a replay: the safe side.)"""
        for attempt in (1, 2):
            pool = self._get_pool()
            try:
                with pool.connection() as conn:
                    return work(conn)
            except PoolTimeout as exc:
                raise StorageUnavailable(f"postgresql unavailable at {self.where}") from exc
            except psycopg.OperationalError as exc:
                if attempt == 2 or not self._connection_lost(exc):
                    raise StorageUnavailable(
                        f"postgresql unavailable at {self.where}: {type(exc).__name__}") from exc
                pool.check()  # drop the other connections the restart broke
            except psycopg.Error as exc:
                raise StorageError(
                    f"postgresql at {self.where} failed: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _connection_lost(exc: psycopg.OperationalError) -> bool:
        return not isinstance(exc, psycopg.errors.CannotConnectNow) and (
            exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")))

    def _one(self, sql: LiteralString, params: dict[str, Any]) -> tuple[Any, ...] | None:
        return self._run(lambda conn: conn.execute(sql, params).fetchone())

    def _all(self, sql: LiteralString, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def _count(self, sql: LiteralString, params: dict[str, Any]) -> int:
        return self._run(lambda conn: conn.execute(sql, params).rowcount)

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self.purge()

    def purge(self) -> int:
        """Delete up to :data:`PURGE_BATCH` expired rows through the expiry index, unless
        another worker is purging (advisory lock); returns how many went."""
        return self._count(
            "WITH lock AS (SELECT pg_try_advisory_xact_lock(%(lock)s) AS held) "
            "DELETE FROM uauth_records WHERE ctid = ANY(ARRAY(SELECT ctid FROM uauth_records "
            "WHERE (SELECT held FROM lock) AND expires_at <= %(now)s LIMIT %(batch)s))",
            {"now": self._clock(), "lock": PURGE_LOCK, "batch": PURGE_BATCH})

    def migrate(self) -> list[int]:
        """Apply missing schema versions (``uauth migrate``); returns those applied."""
        return self._run(migrate_schema)

    def version(self) -> int:
        return self._run(schema_version)

    # -- the protocol ---------------------------------------------------------------------

    def _expiry(self, ttl: int | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        self._count(
            "INSERT INTO uauth_records (kind, key, value, grant_id, expires_at, consumed) "
            "VALUES (%(kind)s, %(key)s, %(value)s, %(grant)s, %(expires)s, 0) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
            "grant_id = excluded.grant_id, expires_at = excluded.expires_at, consumed = 0",
            {"kind": kind, "key": key, "value": json.dumps(record), "grant": grant_id,
             "expires": self._expiry(ttl)})
        self._after_write()

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        count = self._count(
            "INSERT INTO uauth_records AS r (kind, key, value, grant_id, expires_at, consumed) "
            "VALUES (%(kind)s, %(key)s, %(value)s, %(grant)s, %(expires)s, 0) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
            "grant_id = excluded.grant_id, expires_at = excluded.expires_at, consumed = 0 "
            "WHERE r.expires_at IS NOT NULL AND r.expires_at <= %(now)s",
            {"kind": kind, "key": key, "value": json.dumps(record), "grant": grant_id,
             "expires": self._expiry(ttl), "now": self._clock()})
        self._after_write()
        return count == 1

    def find(self, kind: Kind, key: str) -> Record | None:
        row = self._one(
            "SELECT value FROM uauth_records WHERE kind = %(kind)s AND key = %(key)s "
            "AND (expires_at IS NULL OR expires_at > %(now)s)",
            {"kind": kind, "key": key, "now": self._clock()})
        return None if row is None else dict(json.loads(row[0]))

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        if not keys:
            return []
        rows = self._all(
            "SELECT key, value FROM uauth_records WHERE kind = %(kind)s AND key = ANY(%(keys)s) "
            "AND (expires_at IS NULL OR expires_at > %(now)s)",
            {"kind": kind, "keys": list(keys), "now": self._clock()})
        found = {key: dict(json.loads(value)) for key, value in rows}
        return [found.get(key) for key in keys]

    def consume(self, kind: Kind, key: str) -> Consumed | None:
        row = self._one(
            "UPDATE uauth_records SET consumed = consumed + 1 "
            "WHERE kind = %(kind)s AND key = %(key)s "
            "AND (expires_at IS NULL OR expires_at > %(now)s) RETURNING value, consumed",
            {"kind": kind, "key": key, "now": self._clock()})
        if row is None:
            return None
        return Consumed(dict(json.loads(row[0])), first=row[1] == 1)

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        now = self._clock()
        row = self._one(
            "INSERT INTO uauth_records AS r (kind, key, value, grant_id, expires_at, consumed) "
            "VALUES (%(kind)s, %(key)s, '{\"count\": 1}', NULL, %(expires)s, 0) "
            "ON CONFLICT (kind, key) DO UPDATE SET "
            "value = CASE WHEN r.expires_at IS NULL OR r.expires_at > %(now)s "
            "THEN json_build_object('count', "
            "coalesce((r.value::jsonb ->> 'count')::bigint, 0) + 1)::text "
            "ELSE excluded.value END, "
            "expires_at = CASE WHEN r.expires_at IS NULL OR r.expires_at > %(now)s "
            "THEN r.expires_at ELSE excluded.expires_at END, grant_id = NULL, consumed = 0 "
            "RETURNING (value::jsonb ->> 'count')::bigint",
            {"kind": kind, "key": key, "expires": now + ttl, "now": now})
        self._after_write()
        assert row is not None
        return int(row[0])

    def delete(self, kind: Kind, key: str) -> None:
        self._count("DELETE FROM uauth_records WHERE kind = %(kind)s AND key = %(key)s",
                    {"kind": kind, "key": key})

    def revoke_grant(self, grant_id: str) -> int:
        return self._count("DELETE FROM uauth_records WHERE grant_id = %(grant)s",
                           {"grant": grant_id})

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        rows = self._all(
            "SELECT kind, key, value FROM uauth_records WHERE grant_id = %(grant)s "
            "AND (expires_at IS NULL OR expires_at > %(now)s)",
            {"grant": grant_id, "now": self._clock()})
        return [(kind, key, dict(json.loads(value))) for kind, key, value in rows]

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        rows = self._all(
            "SELECT key, value FROM uauth_records WHERE kind = %(kind)s "
            "AND (expires_at IS NULL OR expires_at > %(now)s) ORDER BY key",
            {"kind": kind, "now": self._clock()})
        for key, value in rows:
            yield key, dict(json.loads(value))

    def dump(self) -> Iterator[Entry]:
        rows = self._all(
            "SELECT kind, key, value, expires_at, grant_id, consumed FROM uauth_records "
            "WHERE (expires_at IS NULL OR expires_at > %(now)s) ORDER BY kind, key",
            {"now": self._clock()})
        for kind, key, value, expires_at, grant_id, consumed in rows:
            yield Entry(kind, key, dict(json.loads(value)), expires_at, grant_id, consumed)

    def ping(self) -> None:
        self._one("SELECT 1", {})

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None and self._pid == os.getpid():
                pool.close(timeout=1.0)
