"""Pushed authorization requests (RFC 9126): the records behind ``request_uri`` values.

A client POSTs its authorization request to ``/par`` and gets a ``request_uri``
(``urn:ietf:params:oauth:request_uri:<random>``) that stands for it at ``/authorize``. Only its
digest is stored. The URI must be used within ``UAUTH_PAR_TTL`` seconds; from its first use
it lives for the interaction (:data:`INTERACTION_TTL`: the person may have to sign in), and it
is consumed, atomically, when the authorization response is issued: one response per pushed
request, whoever holds the URI.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from werkzeug.datastructures import MultiDict

from .models import Client
from .storage import Store
from .storage import hash_key

PUSHED = "pushed_request"
URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
#: Seconds a request_uri stays usable once the person reached /authorize with it.
INTERACTION_TTL = 1800
#: Longest request_uri worth a storage lookup.
MAX_REQUEST_URI = 200


class InvalidRequestUriError(OAuth2Error):  # type: ignore[misc]
    """RFC 9101 §7: the request_uri is unknown, expired, used or another client's."""

    error = "invalid_request_uri"


@dataclass(frozen=True)
class Pushed:
    """An authorization request as pushed, found by its request_uri."""

    request_uri: str
    params: MultiDict[str, str]


def push(store: Store, client_id: str, params: MultiDict[str, str], ttl: int) -> str:
    """Store a validated authorization request; returns its request_uri."""
    request_uri = URN_PREFIX + secrets.token_urlsafe(32)
    store.save(PUSHED, hash_key(request_uri), {
        "client_id": client_id, "params": list(params.items(multi=True)), "started": False,
    }, ttl=ttl)
    return request_uri


def is_pushed_uri(value: str | None) -> bool:
    return bool(value) and str(value).startswith(URN_PREFIX)


def open_pushed(store: Store, request_uri: str, client_id: str | None) -> Pushed:
    """The request behind ``request_uri`` for ``client_id`` (RFC 9126 §4); its first use at
    /authorize extends its life to the interaction's.

    :raises InvalidRequestUriError: unknown, expired, already answered, or another client's.
    """
    key = hash_key(request_uri)
    record = store.find(PUSHED, key) if len(request_uri) <= MAX_REQUEST_URI else None
    if record is None or record["client_id"] != client_id:
        raise InvalidRequestUriError("The request_uri is unknown, expired or already used.")
    if not record["started"]:
        store.save(PUSHED, key, {**record, "started": True}, ttl=INTERACTION_TTL)
    return Pushed(request_uri, MultiDict([(str(k), str(v)) for k, v in record["params"]]))


def finish_pushed(store: Store, request_uri: str) -> None:
    """Spend the request_uri as its response is issued; only the first caller may answer.

    :raises InvalidRequestUriError: it was answered already (or has expired meanwhile).
    """
    key = hash_key(request_uri)
    outcome = store.consume(PUSHED, key)
    if outcome is None or not outcome.first:
        raise InvalidRequestUriError("The request_uri was already used.")
    store.delete(PUSHED, key)  # nothing to detect a replay for: it is simply unknown now


def resolve_pushed(store: Store, sent: MultiDict[str, str]
                   ) -> tuple[MultiDict[str, str], str | None]:
    """The authorization request /authorize should answer: the pushed one when ``sent``
    names a pushed request_uri (its other parameters are ignored, RFC 9126 §4), else ``sent``.

    :returns: the parameters, and the request_uri to spend, or None.
    """
    request_uri = sent.get("request_uri")
    if request_uri is None or not is_pushed_uri(request_uri):
        return sent, None
    return open_pushed(store, request_uri, sent.get("client_id")).params, request_uri


def check_pushed_required(config: Mapping[str, Any], client: Client, pushed: str | None,
                          redirect_uri: str) -> None:
    """Refuse a request sent in the query from a client that must push (RFC 9126 §6), or
    anyone under ``UAUTH_REQUIRE_PAR``."""
    if pushed is None and (config["UAUTH_REQUIRE_PAR"]
                           or client.require_pushed_authorization_requests):
        raise InvalidRequestError("This client must push its authorization requests to the "
                                  "par endpoint (RFC 9126).", redirect_uri=redirect_uri)
