"""The records of listings, decoded once per worker while their stored text stays the same.

A listing (:meth:`~uauth.storage.base.Store.grant_records`) is read again and again, and little
of it changes between reads: the grant cap lists a person's app grants at every new
refresh-token family, fifty notes at its steady state, and decoding their JSON was about half of
what that listing cost (the listing 8.1% of a served flow's CPU, ``python -m bench.spy``; the
rest is its statement, which also commits the writes held before it).

A decoded record is kept under its exact stored text, so it can never be stale, and only when
all its values are plain (strings, numbers, booleans, None): each caller gets a copy of its own,
and a shallow copy of such a record shares nothing that the caller could change. Only short
texts are kept, so the kept records stay a few megabytes whatever a listing holds.
"""

from __future__ import annotations

import json

from .base import Record

#: Records kept per process; one more and the kept ones are dropped.
KEPT = 1024
#: The longest stored text kept, in characters (bytes from Redis); an app grant's note is ~300.
KEPT_LENGTH = 2048
#: The types of a JSON value that hold nothing a caller could change in place.
PLAIN = frozenset({str, int, float, bool, type(None)})


class ListedRecords:
    """Decodes the stored text of listed records, keeping the plain ones by their text."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._known: dict[str | bytes, Record] = {}

    def __len__(self) -> int:
        return len(self._known)

    def decode(self, text: str | bytes) -> Record:
        known = self._known.get(text)
        if known is None:
            known = dict(json.loads(text))
            if len(text) > KEPT_LENGTH or not all(type(v) in PLAIN for v in known.values()):
                return known  # long, or nested values a copy would share: not kept
            if len(self._known) >= self._kept:
                self._known.clear()
            self._known[text] = known
        return dict(known)


#: The process's kept records, shared by its stores (a text decodes the same in any of them).
listed = ListedRecords()
