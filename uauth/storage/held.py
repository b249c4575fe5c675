"""The writes a backend with round trips holds back inside :meth:`Store.batch`, and the reads
it was told to expect there (:meth:`Store.prefetch`), per thread.

Redis, Redis Cluster, PostgreSQL and SQLite share this bookkeeping and differ only in how they
send what is held: a pipeline of commands (on a cluster, one to each primary at once), a
pipeline of prepared statements, one transaction. SQLite has no round trips to save; it reads
the records expected ahead in the statement of the next ``find`` or spend, one statement and
read lock instead of one each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from typing import Generic
from typing import TypeVar

W = TypeVar("W")
#: A record's name as a backend knows it: ``(kind, key)``.
Name = tuple[str, str]
#: The kind under which a grant's listing (:meth:`Store.prefetch_grant`) is expected, by grant
#: id: kinds never contain ``:``, so no record's name is a listing's.
LISTING = ":grant"


def listing(grant_id: str) -> Name:
    """The name a grant's expected listing goes by."""
    return (LISTING, grant_id)


class HeldWrites(Generic[W]):
    """This thread's held writes while it is inside a batch; none outside one."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def batch(self, send: Callable[[list[W]], object]) -> Iterator[None]:
        """Hold writes for the block; ``send`` what is left when it ends, even when it raises
        (what came before the error would have been written one by one). Nested blocks are one
        block."""
        if self.holding():
            yield
            return
        self._local.writes = []
        self._local.reads, self._local.answers = {}, {}
        self._local.listings = False  # whether a grant's listing is expected (or answered)
        try:
            yield
        finally:
            left, self._local.writes = self._local.writes, None
            self._local.reads = self._local.answers = None  # reads not yet made: not needed
            if left:
                send(left)

    def holding(self) -> bool:
        """Whether this thread is inside a batch (its end sends what is held)."""
        return getattr(self._local, "writes", None) is not None

    def hold(self, write: W) -> bool:
        """Keep ``write`` for later; False outside a batch (send it now)."""
        writes: list[W] | None = getattr(self._local, "writes", None)
        if writes is None:
            return False
        writes.append(write)
        return True

    def take(self) -> list[W]:
        """What is held, to send now, ahead of the operation at hand (empty if nothing is)."""
        writes: list[W] | None = getattr(self._local, "writes", None)
        if not writes:
            return []
        self._local.writes = []
        return writes

    def expect(self, name: Name, read: W) -> None:
        """Make ``read`` (of the record ``name``) with the next round trip, and keep its reply
        for :meth:`answer`; nothing outside a batch, where there is no next trip to ride on."""
        reads: dict[Name, W] | None = getattr(self._local, "reads", None)
        if reads is not None and name not in self._local.answers:
            reads[name] = read
            if name[0] == LISTING:
                self._local.listings = True

    def take_reads(self) -> list[tuple[Name, W]]:
        """The expected reads to send now, after the held writes (so they see them)."""
        reads: dict[Name, W] | None = getattr(self._local, "reads", None)
        if not reads:
            return []
        self._local.reads = {}
        return list(reads.items())

    def answered(self, name: Name, reply: Any) -> None:
        """Keep the reply of an expected read for the operation that asks for it."""
        answers: dict[Name, Any] | None = getattr(self._local, "answers", None)
        if answers is not None:
            answers[name] = reply

    def answer(self, name: Name) -> tuple[bool, Any]:
        """``(True, reply)`` once for a read made ahead of this one (which no longer needs to
        be made), else ``(False, None)``; either way the read is no longer expected."""
        reads: dict[Name, W] | None = getattr(self._local, "reads", None)
        if reads is None:
            return False, None
        reads.pop(name, None)
        answers: dict[Name, Any] = self._local.answers
        if name in answers:
            return True, answers.pop(name)
        return False, None

    def forget(self, name: Name | None = None) -> None:
        """A write to ``name`` (None: to records of any name, such as a grant's revocation)
        makes what was read of it ahead stale, and so any grant's listing (the record may be,
        or now be, one of its records); the read is made again when asked for."""
        reads: dict[Name, W] | None = getattr(self._local, "reads", None)
        if reads is None:
            return
        answers: dict[Name, Any] = self._local.answers
        if name is None:
            reads.clear()
            answers.clear()
            return
        reads.pop(name, None)  # sent with the write, it could answer from before it
        answers.pop(name, None)
        if self._local.listings:
            for stale in [n for n in (*reads, *answers) if n[0] == LISTING]:
                reads.pop(stale, None)
                answers.pop(stale, None)
            self._local.listings = False
