"""SQLite storage: the default for one machine, safe across gunicorn workers.

One table, WAL journal, a busy timeout so concurrent workers queue instead of failing, and one
connection per process and thread, opened lazily so nothing crosses a ``fork``. Every operation
is a single SQL statement, so each is atomic without explicit transactions; consume-once is
``UPDATE … SET consumed = consumed + 1 … RETURNING``: the caller that sees 1 was first.

Inside :meth:`SQLiteStore.batch` saves and deletes are held back and sent in one transaction
with the next statement (:meth:`SQLiteStore._execute`), which then stays open for the rest of
the block. A commit is where SQLite's cost is: each writes every page it changed to the WAL (a
record touches four: the table and its three indexes) and takes and drops the WAL's locks,
about fifteen system calls, so four writes committed once cost far less than four commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import Protocol

import sqlite_utils

from . import keyorder
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
from .filemodes import create_private_file
from .held import LISTING
from .held import HeldWrites
from .held import Name
from .held import listing
from .listed import listed
from .process import current_pid

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_UPSERT = (" ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, "
           "grant_id = excluded.grant_id, expires_at = excluded.expires_at, consumed = 0")
_SAVE = ("INSERT INTO records (kind, key, value, grant_id, expires_at, consumed) "
         "VALUES (?, ?, ?, ?, ?, 0)" + _UPSERT)
# A consume's mark (:class:`~uauth.storage.base.Mark`), saved only while the record it marks is
# live and unconsumed (the ``WHERE`` also keeps SQLite from reading ``ON`` as a join's).
_SAVE_IF_UNSPENT = (
    "INSERT INTO records (kind, key, value, grant_id, expires_at, consumed) "  # noqa: S608
    "SELECT ?, ?, ?, ?, ?, 0 WHERE EXISTS (SELECT 1 FROM records WHERE kind = ? AND key = ? "
    f"AND consumed = 0 AND {_LIVE})" + _UPSERT)

# A live record by its name and the time; in a spend's RETURNING clause, a subquery (RETURNING
# may read other rows than the one it changes), as a read expected ahead.
_FIND = f"SELECT value FROM records WHERE kind = ? AND key = ? AND {_LIVE}"  # noqa: S608
_READ_AHEAD = f", ({_FIND})"

_Statement = tuple[str, tuple[object, ...]]


class _Rows(Protocol):
    """What a statement answers: a cursor, or the rows of one run in a transaction."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Fetched:
    """A statement's rows, read before its transaction committed."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rows = cursor.fetchall()
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def _contended(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock (worth a retry)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY,
                                                            sqlite3.SQLITE_LOCKED)


def _wrap(exc: sqlite3.Error, path: Path) -> StorageError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return StorageUnavailable(
            f"sqlite database {path} cannot be written: {exc}; make the file and its folder "
            "writable by the user uauth runs as (chown/chmod), or point UAUTH_STORAGE elsewhere")
    if isinstance(exc, sqlite3.OperationalError):
        return StorageUnavailable(f"sqlite database {path} unavailable: {exc}")
    return StorageError(f"sqlite database {path} failed: {exc}")


class SQLiteStore:
    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = system_clock,
                 busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._writes = 0
        self._held: HeldWrites[_Statement] = HeldWrites()

    def _connect(self) -> sqlite3.Connection:
        # Owner-only whatever the folder's mode: SQLite gives -wal and -shm the database's mode.
        if str(self.path) != ":memory:" and not self.path.exists() and self.path.parent.is_dir():
            create_private_file(self.path)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        # Several workers opening a new database at once: switching to WAL and creating the
        # schema can fail with "locked" at once (SQLite skips the busy timeout where waiting
        # could deadlock), so the setup is retried for as long as the busy timeout allows.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                self._set_up(conn)
                return conn
            except sqlite3.OperationalError as exc:
                # Only contention is worth waiting for; a read-only or missing file fails now.
                if not _contended(exc) or time.monotonic() >= deadline:
                    conn.close()
                    raise
                time.sleep(0.02)

    @staticmethod
    def _set_up(conn: sqlite3.Connection) -> None:
        db = sqlite_utils.Database(conn)
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        records = db.table("records")
        if not records.exists():
            records.create(
                {"kind": str, "key": str, "value": str, "grant_id": str,
                 "expires_at": float, "consumed": int},
                pk=("kind", "key"),
                not_null={"kind", "key", "value", "consumed"},
                defaults={"consumed": 0},
                if_not_exists=True,
            )
            records.create_index(["grant_id"], if_not_exists=True)
            records.create_index(["expires_at"], if_not_exists=True)

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != current_pid():
            # A connection inherited through fork must never be used by the child.
            local.pid, local.conn = current_pid(), None
        if local.conn is None:
            local.conn = self._connect()
        conn: sqlite3.Connection = local.conn
        return conn

    def _run(self, sql: str, params: tuple[object, ...]) -> _Rows:
        """One statement; after the writes this thread holds back (:meth:`batch`), in one
        transaction with them."""
        return self._execute([*self._held.take(), (sql, params)])

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """A write that answers nothing: held back inside a batch, run now outside one."""
        if not self._held.hold((sql, params)):
            self._run(sql, params)

    def _execute(self, statements: list[_Statement]) -> _Rows:
        """Each time uauth goes to the database: one statement in autocommit, or several in
        one transaction; the last one's rows. ``BEGIN IMMEDIATE`` takes the write lock first,
        waiting behind other writers for the busy timeout (a read-first transaction could not
        wait for it, and would fail as busy instead). Inside a batch that transaction stays
        open until the batch ends (:meth:`batch`). Any failure rolls back every statement."""
        try:
            conn = self._conn()  # opening it can fail too (an unwritable file)
            if not conn.in_transaction:
                if len(statements) == 1:
                    return conn.execute(*statements[0])
                conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements[:-1]:
                    conn.execute(sql, params)
                last = _Fetched(conn.execute(*statements[-1]))
                if not self._held.holding():
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc
        return last

    def _end_batch(self) -> None:
        """Commit the transaction a statement of the batch left open, if one did."""
        conn = getattr(self._local, "conn", None)
        if conn is None or not conn.in_transaction:
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _wrap(exc, self.path) from exc

    def _expiry(self, ttl: int | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self._write("DELETE FROM records WHERE expires_at <= ?", (self._clock(),))

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        self._held.forget((kind, key))
        self._write(_SAVE, (kind, key, json.dumps(record), grant_id, self._expiry(ttl)))
        self._after_write()

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        self._held.forget((kind, key))
        cursor = self._run(
            _SAVE + " WHERE records.expires_at IS NOT NULL AND records.expires_at <= ?",
            (kind, key, json.dumps(record), grant_id, self._expiry(ttl), self._clock()),
        )
        self._after_write()
        return cursor.rowcount == 1

    def find(self, kind: Kind, key: str) -> Record | None:
        ready, text = self._held.answer((kind, key))
        if not ready:
            ahead = self._held.take_reads()
            if ahead:
                text = self._read([(kind, key)], ahead).get((kind, key))
            else:
                row = self._run(_FIND, (kind, key, self._clock())).fetchone()
                text = None if row is None else row[0]
        return None if text is None else dict(json.loads(text))

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        ahead = self._held.take_reads()
        if ahead and keys:
            texts = self._read([(kind, key) for key in keys], ahead)
            return [None if (text := texts.get((kind, key))) is None else dict(json.loads(text))
                    for key in keys]
        marks = ", ".join("?" * len(keys))
        rows = self._run(
            f"SELECT key, value FROM records WHERE kind = ? AND key IN ({marks}) AND {_LIVE}",  # noqa: S608
            (kind, *keys, self._clock()),
        ).fetchall() if keys else []
        found = {key: dict(json.loads(value)) for key, value in rows}
        return [found.get(key) for key in keys]

    def _read(self, names: list[Name], ahead: list[tuple[Name, _Statement]]) -> dict[Name, str]:
        """The stored text of the live records ``names`` and of the reads expected ahead
        (:meth:`prefetch`, :meth:`prefetch_grant`), in one statement; the expected ones are
        kept for :meth:`find` and :meth:`grant_records`."""
        grants = [name[1] for name, _ in ahead if name[0] == LISTING]
        extra = [name for name, _ in ahead if name[0] != LISTING and name not in names]
        wanted = [*names, *extra]
        where = " OR ".join(["(kind = ? AND key = ?)"] * len(wanted)
                            + ["grant_id = ?"] * len(grants))
        rows = self._run(
            f"SELECT kind, key, value, grant_id FROM records WHERE ({where}) AND {_LIVE}",  # noqa: S608
            (*(part for name in wanted for part in name), *grants, self._clock()),
        ).fetchall()
        found: dict[Name, str] = {(kind, key): value for kind, key, value, _ in rows}
        for name in extra:
            self._held.answered(name, found.get(name))
        for grant_id in grants:
            self._held.answered(listing(grant_id), [
                (kind, key, value) for kind, key, value, grant in rows if grant == grant_id])
        return found

    def consume(self, kind: Kind, key: str, *, mark: Mark | None = None) -> Consumed | None:
        self._held.forget((kind, key))
        if mark is not None:
            self._held.forget((mark.kind, mark.key))
        now = self._clock()
        # The mark goes first in the consume's transaction, saved exactly when the record is
        # live and not yet consumed: when this consume is the first.
        marks: list[_Statement] = [] if mark is None else [(_SAVE_IF_UNSPENT, (
            mark.kind, mark.key, json.dumps(mark.record), mark.grant_id, self._expiry(mark.ttl),
            kind, key, now))]
        # The records expected ahead (the spender's user, its grant's deny list) are read in
        # the spend's statement, one statement fewer than with the next find. A grant's listing
        # cannot be one column; none is expected here anyway: the spend's write forgot them.
        ahead = [name for name, _ in self._held.take_reads() if name[0] != LISTING]
        row = self._execute([*self._held.take(), *marks, (
            f"UPDATE records SET consumed = consumed + 1 WHERE kind = ? AND key = ? AND {_LIVE} "  # noqa: S608
            "RETURNING value, consumed" + _READ_AHEAD * len(ahead),
            (kind, key, now, *(part for name in ahead for part in (*name, now))),
        )]).fetchone()
        if mark is not None:
            self._after_write()
        if row is None:
            return None
        for name, text in zip(ahead, row[2:], strict=True):
            self._held.answered(name, text)
        return Consumed(dict(json.loads(row[0])), first=row[1] == 1)

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        self._held.forget((kind, key))
        now = self._clock()
        row = self._run(
            "INSERT INTO records (kind, key, value, grant_id, expires_at, consumed) "
            "VALUES (?, ?, '{\"count\": 1}', NULL, ?, 0) ON CONFLICT (kind, key) DO UPDATE SET "
            "value = CASE WHEN records.expires_at IS NULL OR records.expires_at > ? "
            "THEN json_object('count', coalesce(json_extract(records.value, '$.count'), 0) + 1) "
            "ELSE excluded.value END, "
            "expires_at = CASE WHEN records.expires_at IS NULL OR records.expires_at > ? "
            "THEN records.expires_at ELSE excluded.expires_at END, grant_id = NULL, consumed = 0 "
            "RETURNING json_extract(value, '$.count')",
            (kind, key, now + ttl, now, now),
        ).fetchone()
        self._after_write()
        return int(row[0])

    def delete(self, kind: Kind, key: str) -> None:
        self._held.forget((kind, key))
        self._write("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def revoke_grant(self, grant_id: str) -> int:
        self._held.forget()  # it deletes records by their grant, whatever their names
        cursor = self._run("DELETE FROM records WHERE grant_id = ?", (grant_id,))
        return cursor.rowcount

    def drop_grant(self, grant_id: str) -> None:
        self._held.forget()
        self._write("DELETE FROM records WHERE grant_id = ?", (grant_id,))

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        ready, rows = self._held.answer(listing(grant_id))
        if not ready:
            rows = self._run(
                f"SELECT kind, key, value FROM records WHERE grant_id = ? AND {_LIVE}",  # noqa: S608
                (grant_id, self._clock()),
            ).fetchall()
        return [(kind, key, listed.decode(value)) for kind, key, value in rows]

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        rows = self._run(
            "SELECT key, value FROM records WHERE kind = ? AND key >= ? AND key < ? "  # noqa: S608
            f"AND grant_id = ? AND {_LIVE} ORDER BY key DESC LIMIT -1 OFFSET ?",
            (kind, prefix, keyorder.after(prefix), grant_id, self._clock(), newest),
        ).fetchall()
        return [(key, listed.decode(value)) for key, value in reversed(rows)]

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        rows = self._run(
            f"SELECT key, value FROM records WHERE kind = ? AND {_LIVE} ORDER BY key",  # noqa: S608
            (kind, self._clock()),
        ).fetchall()
        for key, value in rows:
            yield key, dict(json.loads(value))

    def dump(self) -> Iterator[Entry]:
        rows = self._run(
            "SELECT kind, key, value, expires_at, grant_id, consumed FROM records "  # noqa: S608
            f"WHERE {_LIVE} ORDER BY kind, key", (self._clock(),),
        ).fetchall()
        for kind, key, value, expires_at, grant_id, consumed in rows:
            yield Entry(kind, key, dict(json.loads(value)), expires_at, grant_id, consumed)

    def backup(self, target: sqlite3.Connection) -> None:
        """Copy the live database into ``target`` with SQLite's online backup API: one read
        transaction, so in WAL mode writers go on while it runs."""
        try:
            self._conn().backup(target)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold this thread's saves and deletes back and send them in one transaction with the
        next statement, or at the block's end: one commit where each write costs one.

        A statement that goes with held writes leaves their transaction open, and what the
        block does after it joins that transaction, committed when the block ends: the grant
        cap's read goes with the new family's writes, and the eviction it decides commits
        with them (one commit a flow fewer). Other workers' writes wait for the block's end,
        so nothing slow (a signature, a password hash) belongs after a read in a batch."""
        if self._held.holding():
            yield  # nested: the outer block commits
            return
        try:
            with self._held.batch(self._execute):
                yield
        finally:
            self._end_batch()

    def prefetch(self, kind: Kind, key: str) -> None:
        """Read the record with the next ``find``, ``find_many`` or ``consume``, in its
        statement: one statement, and one read lock, instead of two."""
        self._held.expect((kind, key), ("", ()))

    def prefetch_grant(self, grant_id: str) -> None:
        """List the grant in the next ``find`` or ``find_many``'s statement."""
        self._held.expect(listing(grant_id), ("", ()))

    def ping(self) -> None:
        self._run("SELECT 1 FROM records LIMIT 1", ())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == current_pid():
            conn.close()
        self._local.conn = None
