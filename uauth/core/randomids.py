"""Random ids from a pool of the system's random bytes: one system call for 512 ids.

Every request gets a random id (``X-Request-ID``). ``secrets.token_hex(8)`` asks the kernel for
8 bytes each time; served, that call cost about 3% of a userinfo request's CPU (``python -m
bench.spy``, performance-log.md's thirteenth part). The bytes here come from the same source
(``os.urandom``), 4 KiB at a time, and no two ids share any: a forked child drops the pool it
inherited, since its parent could hand out the same bytes, and threads take their slices under
a lock. Only for ids that must not repeat or be guessed, never for secrets: a secret's bytes
should not sit in memory before it is made.
"""

from __future__ import annotations

import os
import threading

#: Bytes read from the system per refill.
POOL_BYTES = 4096


class RandomIds:
    """Hex ids of ``size`` random bytes each, taken from a pool refilled by ``os.urandom``.

    The fork hook keeps every instance for the process's life: make one per kind of id, at
    import, as :mod:`uauth.web.requestlog` does."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # a lock held at the fork would never be released here
        self._pool, self._at = b"", 0

    def next(self) -> str:
        with self._lock:
            at = self._at
            if at + self._size > len(self._pool):
                self._pool, at = os.urandom(POOL_BYTES), 0
            self._at = at + self._size
            return self._pool[at:at + self._size].hex()
