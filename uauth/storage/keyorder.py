"""Records whose keys sort by age, capped: :meth:`~uauth.storage.base.Store.all_but_newest`
for a store of one's own, by filtering a grant's listing (docs/storage.md); uauth's backends
each read it their own way, without copying or decoding the records they leave out."""

from __future__ import annotations

from operator import itemgetter
from typing import TypeVar

from .base import Kind
from .base import Record

T = TypeVar("T")


def oldest(ordered: list[T], newest: int) -> list[T]:
    """``ordered`` (oldest first) less its ``newest`` last items; empty when it holds no more
    than those. Every backend's ``all_but_newest`` cuts its sorted records with it."""
    return ordered[:max(0, len(ordered) - newest)]


def all_but_newest(listing: list[tuple[Kind, str, Record]], kind: Kind, prefix: str,
                   newest: int) -> list[tuple[str, Record]]:
    """What ``all_but_newest`` answers, from the grant's listing."""
    found = sorted(((key, record) for of, key, record in listing
                    if of == kind and key.startswith(prefix)), key=itemgetter(0))
    return oldest(found, newest)


def after(prefix: str) -> str:
    """The least string above every string that begins with ``prefix``, in code-point order
    (which is the byte order of UTF-8): a key range's end."""
    if not prefix:
        raise ValueError("a key prefix is not empty")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
