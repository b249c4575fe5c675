"""The writes a backend with round trips holds back inside :meth:`Store.batch`, per thread.

Redis and PostgreSQL share this bookkeeping and differ only in how they send what is held: a
pipeline of commands, a pipeline of prepared statements.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic
from typing import TypeVar

W = TypeVar("W")


class HeldWrites(Generic[W]):
    """This thread's held writes while it is inside a batch; none outside one."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def batch(self, send: Callable[[list[W]], object]) -> Iterator[None]:
        """Hold writes for the block; ``send`` what is left when it ends, even when it raises
        (what came before the error would have been written one by one). Nested blocks are one
        block."""
        if getattr(self._local, "writes", None) is not None:
            yield
            return
        self._local.writes = []
        try:
            yield
        finally:
            left, self._local.writes = self._local.writes, None
            if left:
                send(left)

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
