"""Pushed authorization requests (RFC 9126): the records behind ``request_uri`` values.

A client POSTs its authorization request to ``/par`` and gets a ``request_uri``
(``urn:ietf:params:oauth:request_uri:<random>``) that stands for it at ``/authorize``. Only its
digest is stored. The URI must be used within ``UAUTH_PAR_TTL`` seconds; once ``/authorize``
sends the person to a page (to sign in, a second factor, consent) it lives for the interaction
(:data:`INTERACTION_TTL`), and it is consumed, atomically, when the authorization response is
issued: one response per pushed request, whoever holds the URI.

The protocol rules (errors, who must push) are :mod:`uauth.oauth.par`; the endpoint is
:mod:`uauth.web.views.par`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from uauth.core.records import PUSHED
from uauth.storage import Record
from uauth.storage import Store
from uauth.storage import hash_key

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: Seconds a request_uri stays usable once the person reached /authorize with it.
INTERACTION_TTL = 1800
#: Longest request_uri worth a storage lookup.
MAX_REQUEST_URI = 200


def push(store: Store, client_id: str, params: Iterable[tuple[str, str]], ttl: int) -> str:
    """Store a validated authorization request; returns its request_uri."""
    request_uri = URN_PREFIX + secrets.token_urlsafe(32)
    store.save(PUSHED, hash_key(request_uri), {
        "client_id": client_id, "params": [list(pair) for pair in params], "started": False,
    }, ttl=ttl)
    return request_uri


def is_pushed_uri(value: str | None) -> bool:
    return bool(value) and str(value).startswith(URN_PREFIX)


@dataclass(frozen=True)
class Pushed:
    """A pushed request opened at /authorize, with its record as read."""

    request_uri: str
    record: Record

    @property
    def params(self) -> list[tuple[str, str]]:
        return [(str(k), str(v)) for k, v in self.record["params"]]


def expect_pushed(store: Store, request_uri: str) -> None:
    """Read the pushed request with the next read of the caller's batch
    (:meth:`~uauth.storage.base.Store.prefetch`): /authorize reads it with the session."""
    if len(request_uri) <= MAX_REQUEST_URI:
        store.prefetch(PUSHED, hash_key(request_uri))


def open_pushed(store: Store, request_uri: str, client_id: str | None) -> Pushed | None:
    """The request pushed as ``request_uri`` by ``client_id`` (RFC 9126 §4). None: unknown,
    expired, already answered, or another client's. It only reads: a request answered at once
    writes nothing before its spend (:func:`keep_pushed` is for one that shows a page)."""
    record = (store.find(PUSHED, hash_key(request_uri))
              if len(request_uri) <= MAX_REQUEST_URI else None)
    if record is None or record["client_id"] != client_id:
        return None
    return Pushed(request_uri, record)


def keep_pushed(store: Store, pushed: Pushed) -> None:
    """The person has a page to go through first (sign in, a second factor, consent): from
    then on the request_uri lives for the interaction, not only ``UAUTH_PAR_TTL``. Never after
    its response: the spent record is gone, and saving it again would make it usable again."""
    if not pushed.record["started"]:
        store.save(PUSHED, hash_key(pushed.request_uri), {**pushed.record, "started": True},
                   ttl=INTERACTION_TTL)


def finish_pushed(store: Store, request_uri: str) -> bool:
    """Spend the request_uri as its response is issued; False when it was answered already
    (or has expired meanwhile): only the first caller may answer. Inside a batch the spent
    record's delete is held and travels with the response's writes (the code's)."""
    key = hash_key(request_uri)
    outcome = store.consume(PUSHED, key)
    if outcome is None or not outcome.first:
        return False
    store.delete(PUSHED, key)  # nothing to detect a replay for: it is simply unknown now
    return True
