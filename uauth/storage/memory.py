"""In-process storage: tests, development, and a single-process provider that may forget.

Not shared between gunicorn workers, so ``uauth serve`` refuses it with more than one worker.

Records are indexed by grant and by kind, as the other backends index them, so listing or
revoking a grant reads only that grant's records: without the index every new refresh-token
family (the grant cap lists the person's notes and revokes the oldest) walked every record the
store held: in-process, a flow cost 5.4 ms over its first thousand and 24.7 ms over its tenth
(``python -m bench.profile --store memory --op flow --repeat 10 --each``).
"""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from . import keyorder
from .base import PURGE_EVERY
from .base import Clock
from .base import Consumed
from .base import Entry
from .base import Kind
from .base import Mark
from .base import Record
from .base import system_clock
from .listed import PLAIN


def _copy(value: Any) -> Any:
    """A copy that shares nothing mutable with ``value``, as ``copy.deepcopy`` makes one, for
    the JSON-shaped values records hold (the other backends store JSON) at a fraction of its
    cost: ``deepcopy`` keeps a memo and looks up a copier for every value, and it was most of
    what the grant cap's listing of fifty notes cost. Anything else is left to ``deepcopy``."""
    kind = type(value)
    if kind is dict:
        copied = dict(value)
        for key, item in copied.items():  # values replaced in place: the keys stay the same
            if type(item) not in PLAIN:
                copied[key] = _copy(item)
        return copied
    if kind is list:
        return [item if type(item) in PLAIN else _copy(item) for item in value]
    if kind in PLAIN:
        return value
    return copy.deepcopy(value)


@dataclass
class _Entry:
    record: Record
    expires_at: float | None
    grant_id: str | None
    consumed: bool = False


class MemoryStore:
    """A dict behind one lock: consume-once is trivially atomic within the process."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[Kind, str], _Entry] = {}
        #: The keys of each grant's records, and of each kind's (in the order first written).
        self._by_grant: dict[str, dict[tuple[Kind, str], None]] = {}
        self._by_kind: dict[Kind, dict[str, None]] = {}
        #: (expires_at, kind, key) of every entry written with an expiry, soonest first, so the
        #: purge finds the expired ones without walking every entry. An entry rewritten or
        #: dropped since leaves its item behind; the purge skips it, and the heap is rebuilt
        #: from the entries when such items outnumber them.
        self._expiries: list[tuple[float, Kind, str]] = []
        self._writes = 0

    def _put(self, kind: Kind, key: str, entry: _Entry) -> None:
        """Store ``entry`` and index it; under the lock, like every change to the entries."""
        old = self._entries.get((kind, key))
        if old is not None and old.grant_id != entry.grant_id:
            self._unindex_grant(kind, key, old.grant_id)
        self._entries[(kind, key)] = entry
        self._by_kind.setdefault(kind, {})[key] = None
        if entry.expires_at is not None:
            heapq.heappush(self._expiries, (entry.expires_at, kind, key))
        if entry.grant_id is not None:
            self._by_grant.setdefault(entry.grant_id, {})[(kind, key)] = None

    def _drop(self, kind: Kind, key: str) -> None:
        entry = self._entries.pop((kind, key), None)
        if entry is not None:
            self._unindex_grant(kind, key, entry.grant_id)
            keys = self._by_kind[kind]
            del keys[key]
            if not keys:
                del self._by_kind[kind]

    def _unindex_grant(self, kind: Kind, key: str, grant_id: str | None) -> None:
        if grant_id is None:
            return
        keys = self._by_grant.get(grant_id)
        if keys is not None:
            keys.pop((kind, key), None)
            if not keys:
                del self._by_grant[grant_id]

    def _live(self, kind: Kind, key: str, now: float | None = None) -> _Entry | None:
        """The entry unless it is gone or expired by ``now`` (a listing reads the clock once
        for all its entries; None: read it)."""
        entry = self._entries.get((kind, key))
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= (
                self._clock() if now is None else now):
            self._drop(kind, key)
            return None
        return entry

    def _expiry(self, ttl: int | None) -> float | None:
        """The expiry of a record written now; every ``PURGE_EVERY`` writes also drops the
        expired ones (spent codes and markers are never read again). Called under the lock."""
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self._purge(self._clock())
        return None if ttl is None else self._clock() + ttl

    def _purge(self, now: float) -> None:
        """Drop the entries expired by ``now``: only as many steps as expiries have passed
        (a walk of every entry cost 0.8 ms at 30,000 of them, under the lock)."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, kind, key = heapq.heappop(expiries)
            entry = self._entries.get((kind, key))
            if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
                self._drop(kind, key)
        if len(expiries) > 2 * len(self._entries) + PURGE_EVERY:
            self._expiries = [(e.expires_at, kind, key) for (kind, key), e in
                              self._entries.items() if e.expires_at is not None]
            heapq.heapify(self._expiries)

    def save(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> None:
        with self._lock:
            self._put(kind, key, _Entry(_copy(record), self._expiry(ttl), grant_id))

    def add(
        self, kind: Kind, key: str, record: Record, ttl: int | None, *, grant_id: str | None = None
    ) -> bool:
        with self._lock:
            if self._live(kind, key) is not None:
                return False
            self._put(kind, key, _Entry(_copy(record), self._expiry(ttl), grant_id))
            return True

    def find(self, kind: Kind, key: str) -> Record | None:
        with self._lock:
            entry = self._live(kind, key)
            return None if entry is None else _copy(entry.record)

    def find_many(self, kind: Kind, keys: list[str]) -> list[Record | None]:
        return [self.find(kind, key) for key in keys]

    def consume(self, kind: Kind, key: str, *, mark: Mark | None = None) -> Consumed | None:
        with self._lock:
            entry = self._live(kind, key)
            if entry is None:
                return None
            first = not entry.consumed
            entry.consumed = True
            if first and mark is not None:
                self._put(mark.kind, mark.key,
                          _Entry(_copy(mark.record), self._expiry(mark.ttl), mark.grant_id))
            return Consumed(_copy(entry.record), first)

    def incr(self, kind: Kind, key: str, ttl: int) -> int:
        with self._lock:
            entry = self._live(kind, key)
            if entry is None:
                entry = _Entry({"count": 0}, self._expiry(ttl), None)
                self._put(kind, key, entry)
            count = int(entry.record.get("count", 0)) + 1
            entry.record = {"count": count}
            return count

    def delete(self, kind: Kind, key: str) -> None:
        with self._lock:
            self._drop(kind, key)

    def revoke_grant(self, grant_id: str) -> int:
        with self._lock:
            doomed = list(self._by_grant.get(grant_id, ()))
            for kind, key in doomed:
                self._drop(kind, key)
            return len(doomed)

    def drop_grant(self, grant_id: str) -> None:
        self.revoke_grant(grant_id)

    def grant_records(self, grant_id: str) -> list[tuple[Kind, str, Record]]:
        with self._lock:
            found = list(self._by_grant.get(grant_id, ()))
            now = self._clock()
            live = [(kind, key, self._live(kind, key, now)) for kind, key in found]
            return [(kind, key, _copy(e.record)) for kind, key, e in live if e is not None]

    def all_but_newest(self, grant_id: str, kind: Kind, prefix: str, newest: int
                       ) -> list[tuple[str, Record]]:
        """Filters the grant's names before reading any entry and copies only the records it
        returns: the grant cap's listing copied each of a person's fifty notes to evict one.
        Python orders strings by code point, which is UTF-8's byte order."""
        with self._lock:
            keys = sorted(key for of, key in self._by_grant.get(grant_id, ())
                          if of == kind and key.startswith(prefix))
            now = self._clock()
            live = [(key, entry) for key in keys
                    if (entry := self._live(kind, key, now)) is not None]
            return [(key, _copy(entry.record)) for key, entry in keyorder.oldest(live, newest)]

    def scan(self, kind: Kind) -> Iterator[tuple[str, Record]]:
        with self._lock:
            keys = list(self._by_kind.get(kind, ()))
            found = [(k, self._live(kind, k)) for k in keys]
            items = [(k, _copy(e.record)) for k, e in found if e is not None]
        yield from items

    def dump(self) -> Iterator[Entry]:
        with self._lock:
            found = [(kind, key, self._live(kind, key)) for kind, key in list(self._entries)]
            items = [Entry(kind, key, _copy(e.record), e.expires_at, e.grant_id,
                           int(e.consumed)) for kind, key, e in found if e is not None]
        yield from items

    def batch(self) -> AbstractContextManager[None]:
        """Nothing is held back (no round trips to save)."""
        return nullcontext()

    def prefetch(self, kind: Kind, key: str) -> None:
        """Nothing to read ahead (no round trips to save)."""

    def prefetch_grant(self, grant_id: str) -> None:
        """Nothing to read ahead (no round trips to save)."""

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
