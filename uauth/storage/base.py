"""The storage protocol every backend implements, and the values it speaks in.

In the spirit of node-oidc-provider's adapter: one small contract for every kind of record
(clients, users, consents, codes, refresh tokens, revocation markers, sessions), so a new backend
is a few hundred lines and passes ``tests/storage/test_contract.py`` or is not a backend.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from typing import Protocol
from typing import runtime_checkable

#: Backends drop expired records once every this many writes (cheap, bounded work): spent
#: codes, revocation markers and counters are never read again, so nothing else would.
PURGE_EVERY = 500

#: A record is a JSON object: backends serialise it, nothing else may be stored.
Record = dict[str, Any]

#: The family a record belongs to, e.g. ``"authorization_code"``; part of its key.
Kind = str

#: Seconds since the epoch; injected so tests can move time without sleeping.
Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def hash_key(raw: str) -> str:
    """Digest under which a secret value (code, refresh token) is stored.

    Codes and refresh tokens carry at least 256 bits of randomness, so a plain SHA-256 is
    enough to make a stolen database useless and costs microseconds, not a password hash's
    100 ms per token request.
    """
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class StorageError(Exception):
    """A backend failed; the message is safe to log and carries no secret."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached right now (stopped Redis, locked or unwritable SQLite).

    Views answer 503 ``temporarily_unavailable``; nothing was half-written.
    """


@dataclass(frozen=True)
class Consumed:
    """Outcome of :meth:`Store.consume`."""

    record: Record
    #: False means someone redeemed it before: the caller must treat this as a replay.
    first: bool


@dataclass(frozen=True)
class Mark:
    """A record :meth:`Store.consume` saves with the first consumption, in the same step: a
    refresh token's rotation marker, which must exist whenever the token is spent."""

    kind: Kind
    key: str
    record: Record
    ttl: int
    grant_id: str | None = None


@dataclass(frozen=True)
class Entry:
    """A stored record with its bookkeeping, as :meth:`Store.dump` yields it (migrations)."""

    kind: Kind
    key: str
    record: Record
    #: Unix seconds; None for records that never expire.
    expires_at: float | None
    grant_id: str | None
    #: Times consumed; a copy must keep a consumed record consumed (replay detection).
    consumed: int


class Store(Protocol):
    """Persistence for every record uauth keeps.

    ``ttl`` is in seconds; ``None`` means the record never expires (clients, users).
    Expired records are never returned, whether or not the backend has purged them.
    Records saved with a ``grant_id`` can all be removed at once by :meth:`revoke_grant`.
    """

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        """Create or replace a record (a replaced record is no longer consumed)."""

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        """Create a record only if no live one exists under that key; False if one does."""

    def find(self, kind: Kind, key: str) -> Record | None:
        """The live record, consumed or not; None if missing or expired."""

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        """:meth:`find` for several keys of one kind, in one query or round trip (hot paths
        that must check more than one record, such as the revocation deny list)."""

    def consume(self, kind: Kind, key: str, *, mark: Mark | None = None) -> Consumed | None:
        """Mark a record as redeemed, atomically.

        Exactly one caller, across threads, processes and hosts, ever sees ``first=True``
        (RFC 6749 §4.1.2: codes are single-use). Consumed records stay until their TTL ends
        so a replay is recognised. None if the record is missing or expired.

        ``mark`` is saved (as :meth:`save` would) by the caller that sees ``first=True`` and by
        no other, in the same transaction or round trip where the backend can (on Redis
        Cluster the two records live on different primaries, so it is saved just after).
        """

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        """Add one to a counter record ``{"count": n}`` atomically and return the new count.

        A missing or expired counter starts at 1 and lives ``ttl`` seconds from then; later
        increments never extend it, so a window counted from its first event always ends.
        Exactly one caller, across threads, processes and hosts, sees each value (throttling,
        :mod:`uauth.core.throttle`). Counters are records like any other (``find``, ``delete``).
        """

    def delete(self, kind: Kind, key: str) -> None:
        """Remove a record; missing records are fine."""

    def revoke_grant(self, grant_id: str) -> int:
        """Delete every record saved under ``grant_id``; returns how many there were."""

    def drop_grant(self, grant_id: str) -> None:
        """:meth:`revoke_grant` for a caller that needs no count: inside :meth:`batch` a
        backend may hold it with the other writes (the grant cap's eviction rides in the token
        response's one commit or round trip instead of taking its own)."""

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        """Every live record saved under ``grant_id``, as ``(kind, key, record)``.

        A grant id groups records so they can be listed and removed together: a token family,
        or a user's login sessions (:mod:`uauth.core.sessions`). Kinds never contain ``:``.
        """

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        """The live records of ``kind`` under ``grant_id`` whose keys begin with ``prefix``, but
        for the ``newest`` last in key order; first in key order first, as ``(key, record)``.

        A cap on records whose keys sort by age (the grant cap's refresh-token families) reads
        only what it must remove, where the grant's listing decodes every record: SQLite and
        PostgreSQL read it from an index in key order; Redis, Redis Cluster and memory filter
        the grant's names by ``prefix`` and decode or copy only the records they return. Like a
        listing, it sends the writes held before it (:meth:`batch`). ``prefix`` is not empty.
        """

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        """Every live record of one kind, in no particular order (admin listings only)."""

    def dump(self) -> Iterator[Entry]:
        """Every live record of every kind with its expiry, grant and consumed count
        (``uauth migrate``). Kinds never contain ``:``."""

    def batch(self) -> AbstractContextManager[None]:
        """A block whose saves and deletes the backend may hold back and send together with
        the next operation that answers, or at the block's end: one round trip for several
        writes (a token response's), where each costs one (on SQLite: one commit). Order is
        kept: every operation, in this thread, sees the writes made before it. A held write
        that fails raises where it is sent, at the latest when the block ends; nested blocks
        are one block. SQLite keeps the transaction that sent held writes open to the block's
        end (what follows joins that commit), so other workers' writes wait for it: nothing slow
        belongs after a read in a batch. Memory has nothing to save and holds nothing back."""

    def prefetch(self, kind: Kind, key: str) -> None:
        """A hint, inside :meth:`batch`, that :meth:`find` of this record follows: a backend
        with round trips may read it with the next operation that goes to the server and
        answer that ``find`` from the reply, one round trip fewer for a read that depends on
        nothing the operation in between answers. ``find`` still sees every write this
        thread made to the record since. SQLite reads it in the statement of the next ``find``
        or :meth:`consume` (one statement and read lock fewer). Outside a batch, and in
        memory, nothing happens."""

    def prefetch_grant(self, grant_id: str) -> None:
        """:meth:`prefetch` for :meth:`grant_records` of ``grant_id`` (a person's second
        factors, read with their session). Any write this thread makes before the listing is
        asked for, to any record, makes the listing read again (a write may add a record to
        the grant)."""

    def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the backend answers."""

    def close(self) -> None:
        """Release connections (they reopen on next use)."""


@runtime_checkable
class VersionedSchema(Protocol):
    """A store whose schema uauth migrates in place (PostgreSQL): ``uauth migrate`` checks for
    this rather than importing a database driver the deployment may not use."""

    where: str

    def migrate(self) -> list[int]:
        """Apply the schema versions not applied yet; the ones applied now."""

    def version(self) -> int:
        """The schema version the database is at."""
