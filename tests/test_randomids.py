"""Request ids from a pool of random bytes: never repeated, across refills, threads and forks."""

from __future__ import annotations

import os
import re
import threading
from multiprocessing.queues import Queue
from typing import Any

import pytest

from tests.conftest import ask_forked_child
from uauth.core import randomids
from uauth.core.randomids import RandomIds


def test_ids_are_hex_of_their_size_and_never_repeat_across_refills(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    urandom = os.urandom

    def counted(size: int) -> bytes:
        reads.append(size)
        return urandom(size)

    monkeypatch.setattr(os, "urandom", counted)
    ids = RandomIds(8)
    made = [ids.next() for _ in range(1100)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", one) for one in made)
    assert len(set(made)) == len(made)
    assert reads == [randomids.POOL_BYTES] * 3, "one system call for 512 ids"


def test_threads_never_get_the_same_id() -> None:
    ids = RandomIds(8)
    made: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def take(mine: list[str]) -> None:
        start.wait()
        mine.extend(ids.next() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [one for mine in made for one in mine]
    assert len(every) == 24000 and len(set(every)) == 24000


def _next_in_child(ids: RandomIds, results: Queue[Any]) -> None:
    results.put(ids.next())


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    """The child inherits the pool; were it kept, its next id would be the parent's next."""
    ids = RandomIds(8)
    ids.next()  # the pool holds 511 ids not yet handed out
    child = ask_forked_child(_next_in_child, ids)
    assert child != ids.next()
