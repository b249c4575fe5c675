"""Pushed authorization requests (RFC 9126): the records behind ``request_uri`` values.

A client POSTs its authorization request to ``/par`` and gets a ``request_uri``
(``urn:ietf:params:oauth:request_uri:<random>``) that stands for it at ``/authorize``. Only its
digest is stored. The URI must be used within ``UAUTH_PAR_TTL`` seconds; from its first use
it lives for the interaction (:data:`INTERACTION_TTL`: the person may have to sign in), and it
is consumed, atomically, when the authorization response is issued: one response per pushed
request, whoever holds the URI.

The protocol rules (errors, who must push) are :mod:`uauth.oauth.par`; the endpoint is
:mod:`uauth.web.views.par`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from uauth.core.records import PUSHED
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


def open_pushed(store: Store, request_uri: str, client_id: str | None
                ) -> list[tuple[str, str]] | None:
    """The parameters pushed as ``request_uri`` by ``client_id`` (RFC 9126 §4); its first use
    at /authorize extends its life to the interaction's. None: unknown, expired, already
    answered, or another client's."""
    key = hash_key(request_uri)
    record = store.find(PUSHED, key) if len(request_uri) <= MAX_REQUEST_URI else None
    if record is None or record["client_id"] != client_id:
        return None
    if not record["started"]:
        store.save(PUSHED, key, {**record, "started": True}, ttl=INTERACTION_TTL)
    return [(str(k), str(v)) for k, v in record["params"]]


def finish_pushed(store: Store, request_uri: str) -> bool:
    """Spend the request_uri as its response is issued; False when it was answered already
    (or has expired meanwhile): only the first caller may answer."""
    key = hash_key(request_uri)
    outcome = store.consume(PUSHED, key)
    if outcome is None or not outcome.first:
        return False
    store.delete(PUSHED, key)  # nothing to detect a replay for: it is simply unknown now
    return True
