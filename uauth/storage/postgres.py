"""PostgreSQL storage: several hosts on the database the team already runs, with its durability.

``UAUTH_STORAGE=postgresql://user:pass@host:5432/db`` (or ``postgres://``; libpq's query
parameters such as ``sslmode`` or ``options=-csearch_path%3Duauth`` pass through). One table,
``uauth_records``, laid out as the SQLite one; every operation is a single statement in
autocommit, so each is atomic and costs one round trip, and writes held back (:meth:`batch`)
go with the next statement in libpq's pipeline mode, one round trip. Consume-once is
``UPDATE … SET consumed = consumed + 1 … RETURNING``: PostgreSQL locks the row, so the caller that
sees 1 was first, across threads, processes and hosts.

Connections come from a psycopg pool per process, opened on first use so nothing crosses a
gunicorn ``fork``; a thread keeps the one it got (up to half the pool's), and statements go to
libpq as prepared statements with text parameters and rows: a pool checkout and psycopg's cursor
machinery per statement cost more client CPU than the round trip itself. The schema is versioned
(``uauth_schema``): the first connection of each process applies missing versions under an
advisory lock, as ``uauth migrate`` does, so hosts starting together agree. Expired rows are
never returned (``expires_at`` is checked in every query) and are purged through the
``expires_at`` index every :data:`~.base.PURGE_EVERY` writes of a process, by whichever worker
takes the purge's advisory lock first, in bounded batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import weakref
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any
from typing import TypeVar
from typing import cast
from urllib.parse import urlsplit

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from .base import PURGE_EVERY
from .base import Clock
from .base import Consumed
from .base import Entry
from .base import Kind
from .base import Mark
from .base import Record
from .base import StorageError
from .base import StorageUnavailable
from .base import system_clock
from .held import HeldWrites
from .held import listing
from .listed import listed
from .process import current_pid

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


class _Statement:
    """A statement of the hot path, prepared on a connection the first time it runs there."""

    __slots__ = ("name", "sql")

    def __init__(self, name: str, sql: str) -> None:
        self.name = f"uauth_{name}".encode()
        self.sql = sql.encode()


FIND = _Statement(
    "find", "SELECT value FROM uauth_records WHERE kind = $1 AND key = $2 "
    "AND (expires_at IS NULL OR expires_at > $3)")
FIND_MANY = _Statement(
    "find_many", "SELECT key, value FROM uauth_records WHERE kind = $1 AND key = ANY($2::text[]) "
    "AND (expires_at IS NULL OR expires_at > $3)")
#: What a save does to a record already under its name: replace it, unconsumed.
_UPSERT = ("ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
           "grant_id = excluded.grant_id, expires_at = excluded.expires_at, consumed = 0")
SAVE = _Statement(
    "save", "INSERT INTO uauth_records (kind, key, value, grant_id, expires_at, consumed) "
    "VALUES ($1, $2, $3, $4, $5, 0) " + _UPSERT)
ADD = _Statement(
    "add", "INSERT INTO uauth_records AS r (kind, key, value, grant_id, expires_at, consumed) "
    "VALUES ($1, $2, $3, $4, $5, 0) " + _UPSERT +
    " WHERE r.expires_at IS NOT NULL AND r.expires_at <= $6")
CONSUME = _Statement(
    "consume", "UPDATE uauth_records SET consumed = consumed + 1 WHERE kind = $1 AND key = $2 "
    "AND (expires_at IS NULL OR expires_at > $3) RETURNING value, consumed")
# A consume and its mark (:class:`~uauth.storage.base.Mark`) in one statement: the mark is
# written from the consume's own row, so only the first consume writes it (a concurrent one
# waits on the row lock and then sees it consumed).
CONSUME_MARKING = _Statement(
    "consume_marking", "WITH spent AS (UPDATE uauth_records SET consumed = consumed + 1 "  # noqa: S608 - constants only
    "WHERE kind = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3) "
    "RETURNING value, consumed), marked AS ("
    "INSERT INTO uauth_records (kind, key, value, grant_id, expires_at, consumed) "
    "SELECT $4::text, $5::text, $6::text, $7::text, $8::double precision, 0 FROM spent "
    "WHERE spent.consumed = 1 " + _UPSERT + ") SELECT value, consumed FROM spent")
INCR = _Statement(
    "incr", "INSERT INTO uauth_records AS r (kind, key, value, grant_id, expires_at, consumed) "
    "VALUES ($1, $2, '{\"count\": 1}', NULL, $4, 0) "
    "ON CONFLICT (kind, key) DO UPDATE SET "
    "value = CASE WHEN r.expires_at IS NULL OR r.expires_at > $3 "
    "THEN json_build_object('count', "
    "coalesce((r.value::jsonb ->> 'count')::bigint, 0) + 1)::text "
    "ELSE excluded.value END, "
    "expires_at = CASE WHEN r.expires_at IS NULL OR r.expires_at > $3 "
    "THEN r.expires_at ELSE excluded.expires_at END, grant_id = NULL, consumed = 0 "
    "RETURNING (value::jsonb ->> 'count')::bigint")
DELETE = _Statement("delete", "DELETE FROM uauth_records WHERE kind = $1 AND key = $2")
REVOKE = _Statement("revoke", "DELETE FROM uauth_records WHERE grant_id = $1")
GRANT_RECORDS = _Statement(
    "grant_records", "SELECT kind, key, value FROM uauth_records WHERE grant_id = $1 "
    "AND (expires_at IS NULL OR expires_at > $2)")
# The grant cap's read: its keys compared byte by byte (as the other backends order them), not
# by the database's collation.
ALL_BUT_NEWEST = _Statement(
    "all_but_newest", "SELECT key, value FROM uauth_records WHERE grant_id = $1 AND kind = $2 "
    "AND starts_with(key, $3) AND (expires_at IS NULL OR expires_at > $4) "
    'ORDER BY key COLLATE "C" DESC OFFSET $5')
SCAN = _Statement(
    "scan", "SELECT key, value FROM uauth_records WHERE kind = $1 "
    "AND (expires_at IS NULL OR expires_at > $2) ORDER BY key")
DUMP = _Statement(
    "dump", "SELECT kind, key, value, expires_at, grant_id, consumed FROM uauth_records "
    "WHERE (expires_at IS NULL OR expires_at > $1) ORDER BY kind, key")
PURGE = _Statement(
    "purge", "WITH lock AS (SELECT pg_try_advisory_xact_lock($1) AS held) "
    "DELETE FROM uauth_records WHERE ctid = ANY(ARRAY(SELECT ctid FROM uauth_records "
    "WHERE (SELECT held FROM lock) AND expires_at <= $2 LIMIT $3))")
PING = _Statement("ping", "SELECT 1")

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_NOT_PREPARED = b"26000"
_ALREADY_PREPARED = b"42P05"


def _text(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _number(value: float | None) -> bytes | None:
    return None if value is None else repr(value).encode()


def _text_array(values: list[str]) -> bytes:
    """A ``text[]`` literal: every element quoted, so no key can end or split it."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return ("{" + ",".join(f'"{v}"' for v in quoted) + "}").encode()


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _found(result: pq.abc.PGresult) -> Record | None:
    """The record a FIND returned, if any."""
    return _record(result.get_value(0, 0)) if result.ntuples else None


def _stored(value: bytes | None) -> str:
    """A record's stored JSON, as text: a str skips json's encoding detection."""
    assert value is not None
    return value.decode()


def _record(value: bytes | None) -> Record:
    return dict(json.loads(_stored(value)))


class _Held:
    """The connection a thread keeps between statements (see :meth:`PostgresStore._acquire`)."""

    __slots__ = ("conn", "pid", "__weakref__")

    def __init__(self, conn: psycopg.Connection[Any], pid: int) -> None:
        self.conn = conn
        self.pid = pid


def _give_back(pool: ConnectionPool[Any], conn: psycopg.Connection[Any], pid: int,
               held: set[psycopg.Connection[Any]], lock: threading.Lock) -> None:
    """A holding thread ended (or dropped its connection): the pool gets the connection back."""
    if os.getpid() != pid:
        return
    with lock:
        held.discard(conn)
    with contextlib.suppress(Exception):  # a closed pool closes it instead
        pool.putconn(conn)


class PostgresStore:
    def __init__(self, url: str, *, clock: Clock = system_clock, timeout: float = 2.0,
                 max_connections: int = 10) -> None:
        self.url = url
        self._clock = clock
        self._timeout = timeout
        self._max = max_connections
        #: Threads that may keep a connection between statements; the rest of the pool
        #: circulates per statement, so threads beyond these never wait behind idle holders.
        self._hold_limit = max(1, max_connections // 2)
        parts = urlsplit(url)
        #: Where, for messages: never the password.
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = 0
        self._writes = 0
        self._local = threading.local()
        self._held: set[psycopg.Connection[Any]] = set()
        self._writes_held: HeldWrites[tuple[_Statement, list[bytes | None]]] = HeldWrites()

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
                self._held = set()
            return self._pool

    def _open_pool(self) -> ConnectionPool[Any]:
        conninfo = "postgresql" + self.url[self.url.index("://"):]
        pool: ConnectionPool[Any] = ConnectionPool(
            conninfo, min_size=1, max_size=self._max, open=False, timeout=self._timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout)),
                    "client_encoding": "utf8"},
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

    def _acquire(self) -> tuple[psycopg.Connection[Any], bool]:
        """A connection for one statement, and whether this thread keeps it afterwards.

        Checking a connection out of the pool and back costs more client CPU than the statement
        itself, so a thread keeps the one it got (a sync worker: always the same one) while fewer
        than :attr:`_hold_limit` threads do; it goes back to the pool when it breaks, when the
        thread ends, or on :meth:`close`."""
        pid = current_pid()
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            if held.pid == pid and not held.conn.closed:
                return held.conn, True
            self._local.held = None  # the parent's (fork), or closed: never used again
        pool = self._get_pool()
        conn = pool.getconn()
        with self._lock:
            keep = self._pool is pool and len(self._held) < self._hold_limit
            if keep:
                self._held.add(conn)
        if keep:
            held = self._local.held = _Held(conn, pid)
            weakref.finalize(held, _give_back, pool, conn, pid, self._held, self._lock
                             ).atexit = False
        return conn, keep

    def _release(self, conn: psycopg.Connection[Any], kept: bool, lost: bool) -> None:
        if lost:
            conn.close()  # the pool replaces it
            if kept:
                self._local.held = None  # its finalizer gives the closed connection back
                return
        if not kept:
            with contextlib.suppress(Exception):  # a pool closed meanwhile closes it instead
                self._get_pool().putconn(conn)

    def _run(self, statement: _Statement, params: list[bytes | None]) -> pq.abc.PGresult:
        """One statement, one round trip (two the first time it runs on a connection: it is
        prepared there), after the writes this thread holds back (:meth:`batch`) in the same
        round trip. A connection the server dropped (a restart) is replaced and the
        statement retried once, as the Redis client does; an outage raises
        :class:`StorageUnavailable` within the pool timeout. (Should a server die between
        committing a consume and answering it, the retry reports a replay: the safe side.)

        Statements go to libpq directly (``psycopg.pq``), parameters and rows as text: psycopg's
        cursors would cost more client CPU than the round trip itself."""
        held, reads = self._writes_held.take(), self._writes_held.take_reads()
        if not reads:
            return self._run_all([*held, (statement, params)])[-1]
        results = self._run_all([*held, *(read for _, read in reads), (statement, params)])
        for (name, _), result in zip(reads, results[len(held):], strict=False):
            self._writes_held.answered(name, result)  # decoded when asked for
        return results[-1]

    def _run_all(self, statements: list[tuple[_Statement, list[bytes | None]]]
                 ) -> list[pq.abc.PGresult]:
        for attempt in (1, 2):
            try:
                conn, kept = self._acquire()
            except PoolTimeout as exc:
                raise StorageUnavailable(f"postgresql unavailable at {self.where}") from exc
            lost = False
            try:
                if len(statements) == 1:
                    return [self._execute(conn.pgconn, *statements[0])]
                return self._pipeline(conn.pgconn, statements)
            except psycopg.OperationalError as exc:
                lost = self._connection_lost(exc) or conn.pgconn.status == pq.ConnStatus.BAD
                if attempt == 2 or not lost:
                    raise StorageUnavailable(
                        f"postgresql unavailable at {self.where}: {type(exc).__name__}") from exc
                self._get_pool().check()  # drop the other connections the restart broke
            except psycopg.Error as exc:
                lost = conn.pgconn.status == pq.ConnStatus.BAD
                raise StorageError(
                    f"postgresql at {self.where} failed: {type(exc).__name__}") from exc
            finally:
                self._release(conn, kept, lost)
        raise AssertionError("unreachable")

    @staticmethod
    def _execute(pgconn: pq.abc.PGconn, statement: _Statement, params: list[bytes | None]
                 ) -> pq.abc.PGresult:
        # (None is NULL: libpq's wrapper takes it, though its stub does not say so)
        result = pgconn.exec_prepared(statement.name, params)  # type: ignore[arg-type]
        if result.status in _OK:
            return result
        if result.error_field(_SQLSTATE) == _NOT_PREPARED:
            prepared = pgconn.prepare(statement.name, statement.sql)
            if prepared.status != pq.ExecStatus.COMMAND_OK:
                raise PostgresStore._error(pgconn, prepared)
            result = pgconn.exec_prepared(statement.name, params)  # type: ignore[arg-type]
            if result.status in _OK:
                return result
        raise PostgresStore._error(pgconn, result)

    def _pipeline(self, pgconn: pq.abc.PGconn,
                  statements: list[tuple[_Statement, list[bytes | None]]]
                  ) -> list[pq.abc.PGresult]:
        """Several statements in one round trip: libpq's pipeline mode, one sync at the end, so
        they are one implicit transaction (a statement that fails undoes the ones before it
        and skips the ones after). One not prepared on this connection yet fails the lot;
        they are prepared and the pipeline sent again."""
        results = self._send_pipeline(pgconn, statements)
        if any(r.error_field(_SQLSTATE) == _NOT_PREPARED for r in results):
            for statement in dict.fromkeys(st for st, _ in statements):
                prepared = pgconn.prepare(statement.name, statement.sql)
                if (prepared.status != pq.ExecStatus.COMMAND_OK
                        and prepared.error_field(_SQLSTATE) != _ALREADY_PREPARED):
                    raise PostgresStore._error(pgconn, prepared)
            results = self._send_pipeline(pgconn, statements)
        for result in results:
            if result.status not in _OK:  # the first that failed; the ones after were skipped
                raise PostgresStore._error(pgconn, result)
        return results

    def _send_pipeline(self, pgconn: pq.abc.PGconn,
                       statements: list[tuple[_Statement, list[bytes | None]]]
                       ) -> list[pq.abc.PGresult]:
        pgconn.enter_pipeline_mode()
        try:
            for statement, params in statements:
                pgconn.send_query_prepared(statement.name, params)
            pgconn.pipeline_sync()
            while pgconn.flush():  # psycopg's connections are non-blocking: wait to write
                select.select([], [pgconn.socket], [], self._timeout)
            results = []
            for _ in statements:
                result = pgconn.get_result()
                if result is None or pgconn.get_result() is not None:
                    raise psycopg.OperationalError("the pipeline's results are out of step")
                results.append(result)
            synced = pgconn.get_result()
            if synced is None or synced.status != pq.ExecStatus.PIPELINE_SYNC:
                raise psycopg.OperationalError("the pipeline did not end where it was synced")
            pgconn.exit_pipeline_mode()
            return results
        except BaseException:
            # Whatever was left unread makes the connection useless: closed, the pool or the
            # thread replaces it (a lost connection's usual path).
            pgconn.finish()
            raise

    @staticmethod
    def _error(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> psycopg.Error:
        if pgconn.status == pq.ConnStatus.BAD and result.error_field(_SQLSTATE) is None:
            # libpq's own report ("server closed the connection unexpectedly"): no SQLSTATE
            message = (result.error_message or b"connection lost").decode(errors="replace")
            return psycopg.OperationalError(message.strip())
        return psycopg.errors.error_from_result(result, encoding="utf-8")

    def _with_connection(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on a pooled connection through psycopg's own API (migrations, the schema
        version: nothing on the hot path); errors as :meth:`_run` reports them."""
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
                pool.check()
            except psycopg.Error as exc:
                raise StorageError(
                    f"postgresql at {self.where} failed: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _connection_lost(exc: psycopg.OperationalError) -> bool:
        return not isinstance(exc, psycopg.errors.CannotConnectNow) and (
            exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")))

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self.purge()

    def purge(self) -> int:
        """Delete up to :data:`PURGE_BATCH` expired rows through the expiry index, unless
        another worker is purging (advisory lock); returns how many went."""
        result = self._run(PURGE, [str(PURGE_LOCK).encode(), _number(self._clock()),
                                   str(PURGE_BATCH).encode()])
        return result.command_tuples or 0

    def migrate(self) -> list[int]:
        """Apply missing schema versions (``uauth migrate``); returns those applied."""
        return self._with_connection(migrate_schema)

    def version(self) -> int:
        return self._with_connection(schema_version)

    # -- the protocol ---------------------------------------------------------------------

    def _expiry(self, ttl: int | None) -> bytes | None:
        return None if ttl is None else _number(self._clock() + ttl)

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        self._writes_held.forget((kind, key))
        self._write(SAVE, [kind.encode(), key.encode(), json.dumps(record).encode(),
                           _text(grant_id), self._expiry(ttl)])
        self._after_write()

    def _write(self, statement: _Statement, params: list[bytes | None]) -> None:
        if not self._writes_held.hold((statement, params)):
            self._run(statement, params)

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        self._writes_held.forget((kind, key))
        result = self._run(ADD, [kind.encode(), key.encode(), json.dumps(record).encode(),
                                 _text(grant_id), self._expiry(ttl), _number(self._clock())])
        self._after_write()
        return result.command_tuples == 1

    def prefetch(self, kind: Kind, key: str) -> None:
        """Read the record with the next statement that answers, in its pipeline."""
        self._writes_held.expect((kind, key), (FIND, [kind.encode(), key.encode(),
                                                      _number(self._clock())]))

    def find(self, kind: Kind, key: str) -> Record | None:
        ready, found = self._writes_held.answer((kind, key))
        if ready:
            return _found(found)
        return _found(self._run(FIND, [kind.encode(), key.encode(), _number(self._clock())]))

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        if not keys:
            return []
        result = self._run(FIND_MANY, [kind.encode(), _text_array(keys), _number(self._clock())])
        found = {_decode(result.get_value(i, 0)): _record(result.get_value(i, 1))
                 for i in range(result.ntuples)}
        return [found.get(key) for key in keys]

    def consume(self, kind: Kind, key: str, *, mark: Mark | None = None) -> Consumed | None:
        self._writes_held.forget((kind, key))
        spent = [kind.encode(), key.encode(), _number(self._clock())]
        if mark is None:
            result = self._run(CONSUME, spent)
        else:
            self._writes_held.forget((mark.kind, mark.key))
            result = self._run(CONSUME_MARKING, [
                *spent, mark.kind.encode(), mark.key.encode(), json.dumps(mark.record).encode(),
                _text(mark.grant_id), self._expiry(mark.ttl)])
            self._after_write()
        if not result.ntuples:
            return None
        return Consumed(_record(result.get_value(0, 0)), first=result.get_value(0, 1) == b"1")

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        self._writes_held.forget((kind, key))
        now = self._clock()
        result = self._run(INCR, [kind.encode(), key.encode(), _number(now), _number(now + ttl)])
        self._after_write()
        count = result.get_value(0, 0)
        assert count is not None
        return int(count)

    def delete(self, kind: Kind, key: str) -> None:
        self._writes_held.forget((kind, key))
        self._write(DELETE, [kind.encode(), key.encode()])

    def revoke_grant(self, grant_id: str) -> int:
        self._writes_held.forget()  # it deletes records by their grant, whatever their names
        return self._run(REVOKE, [grant_id.encode()]).command_tuples or 0

    def drop_grant(self, grant_id: str) -> None:
        self._writes_held.forget()
        self._write(REVOKE, [grant_id.encode()])

    def prefetch_grant(self, grant_id: str) -> None:
        """List the grant with the next statement that answers, in its pipeline."""
        self._writes_held.expect(listing(grant_id), (GRANT_RECORDS, [
            grant_id.encode(), _number(self._clock())]))

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        ready, result = self._writes_held.answer(listing(grant_id))
        if not ready:
            result = self._run(GRANT_RECORDS, [grant_id.encode(), _number(self._clock())])
        return [(cast(Kind, _decode(result.get_value(i, 0))), str(_decode(result.get_value(i, 1))),
                 listed.decode(_stored(result.get_value(i, 2)))) for i in range(result.ntuples)]

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        result = self._run(ALL_BUT_NEWEST, [grant_id.encode(), kind.encode(), prefix.encode(),
                                            _number(self._clock()), str(newest).encode()])
        return [(str(_decode(result.get_value(i, 0))),
                 listed.decode(_stored(result.get_value(i, 1))))
                for i in reversed(range(result.ntuples))]

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        result = self._run(SCAN, [kind.encode(), _number(self._clock())])
        for i in range(result.ntuples):
            yield str(_decode(result.get_value(i, 0))), _record(result.get_value(i, 1))

    def dump(self) -> Iterator[Entry]:
        result = self._run(DUMP, [_number(self._clock())])
        for i in range(result.ntuples):
            kind, key, value, expires_at, grant_id, consumed = (
                result.get_value(i, c) for c in range(6))
            yield Entry(cast(Kind, _decode(kind)), str(_decode(key)), _record(value),
                        None if expires_at is None else float(expires_at), _decode(grant_id),
                        int(consumed or 0))

    def batch(self) -> AbstractContextManager[None]:
        """Hold this thread's saves and deletes back and send them in one pipeline with the
        next statement, or at the block's end (:meth:`_pipeline`): one round trip, where each
        costs one."""
        return self._writes_held.batch(self._run_all)

    def ping(self) -> None:
        self._run(PING, [])

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            held, self._held = self._held, set()
        if pool is not None and self._pid == os.getpid():
            for conn in held:  # threads that kept one find it closed and let it go
                conn.close()
            pool.close(timeout=1.0)
