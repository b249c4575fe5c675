"""Recent audit events kept in storage, for the admin console's searchable audit view.

Each event :func:`uauth.core.audit.audit` logs within an app is also saved as an ``audit_event``
record for ``UAUTH_AUDIT_RETENTION`` seconds (token issuance excepted: one per token request is
for the log lines only). Keys sort by time, so the newest come first without an index. The
fields are the log line's: names of who and what, never a secret. No Flask here.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from uauth.core.records import AUDIT_EVENT
from uauth.storage import Clock
from uauth.storage import StorageError
from uauth.storage import Store

#: Most events one search shows.
LIMIT = 200


def keeper(store: Store, clock: Clock, retention: int) -> Callable[[dict[str, Any]], None] | None:
    """The function :mod:`uauth.audit` calls with each event's fields (None: keep nothing)."""
    if retention <= 0:
        return None

    def keep(fields: dict[str, Any]) -> None:
        now = clock()
        key = f"{int(now * 1000):015d}-{secrets.token_hex(4)}"
        # the log line is written; an outage must not fail the action it records
        with contextlib.suppress(StorageError):
            store.save(AUDIT_EVENT, key, {**fields, "at": int(now)}, ttl=retention)

    return keep


@dataclass(frozen=True)
class Query:
    """What the audit view filters on; empty fields match everything."""

    text: str = ""
    event: str = ""
    user_id: str = ""
    client_id: str = ""

    def matches(self, record: dict[str, Any]) -> bool:
        if self.event and not str(record.get("event", "")).startswith(self.event):
            return False
        if self.user_id and record.get("user_id") != self.user_id:
            return False
        if self.client_id and record.get("client_id") != self.client_id:
            return False
        if self.text:
            needle = self.text.casefold()
            return any(needle in str(value).casefold() for value in record.values())
        return True


def search(store: Store, query: Query, *, limit: int = LIMIT) -> list[dict[str, Any]]:
    """The newest events that match, newest first."""
    found = [(key, record) for key, record in store.scan(AUDIT_EVENT) if query.matches(record)]
    found.sort(key=lambda item: item[0], reverse=True)
    return [record for _, record in found[:limit]]


def event_names(store: Store) -> list[str]:
    """The kinds of event kept right now, for the view's filter."""
    return sorted({str(record.get("event", "")) for _, record in store.scan(AUDIT_EVENT)})


def forget(store: Store, *, user_id: str | None = None, client_id: str | None = None,
           grants: Iterable[str] = ()) -> int:
    """Delete the kept events naming a user, a client or one of some grants (``uauth check``'s
    throwaway ones, which leave nothing behind); returns how many.

    :param grants: grant ids; events name them shortened, as the logs do.
    """
    short = {grant[:8] for grant in grants}
    doomed = [key for key, record in store.scan(AUDIT_EVENT)
              if (user_id and record.get("user_id") == user_id)
              or (client_id and record.get("client_id") == client_id)
              or record.get("grant") in short]
    for key in doomed:
        store.delete(AUDIT_EVENT, key)
    return len(doomed)
