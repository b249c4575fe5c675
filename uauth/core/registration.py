"""Dynamic clients in storage (RFC 7591/7592): initial access tokens an operator hands out,
when a self-registered client last got a token, and pruning the ones nobody uses. The protocol
(the endpoints) is :mod:`uauth.oauth.registration`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from uauth.core.records import CLIENT_USED
from uauth.core.records import INITIAL_TOKEN
from uauth.core.records import INITIAL_TOKEN_USES
from uauth.storage import Store
from uauth.storage import hash_key

from .clients import list_clients
from .clients import remove_client
from .models import DYNAMIC
from .models import Client
from .settings import Settings

REGISTRATION_MODES = ("off", "token", "open")


def allowed_scopes(settings: Settings) -> list[str]:
    """Scopes a client may register for: in open registration ``UAUTH_REGISTRATION_SCOPES``
    plus every configured resource's scopes; with an initial access token every known scope."""
    if settings.registration == "token":
        return list(settings.known_scopes)
    resource_scopes = [s for spec in settings.resources.values() for s in spec["scopes"]]
    return list(dict.fromkeys([*settings.registration_scopes, *resource_scopes]))


# --- initial access tokens -------------------------------------------------------------------

def create_initial_token(store: Store, *, expires: int, uses: int, now: int) -> str:
    """A new initial access token (shown once, stored as a digest): ``uses`` registrations
    within ``expires`` seconds."""
    token = secrets.token_urlsafe(32)
    store.save(INITIAL_TOKEN, hash_key(token), {"uses": uses, "created_at": now,
                                                "expires_at": now + expires}, ttl=expires)
    return token


def spend_initial_token(store: Store, token: str) -> bool:
    """True when ``token`` is live and has a use left (atomically counted across workers)."""
    if not token or len(token) > 200:
        return False
    key = hash_key(token)
    record = store.find(INITIAL_TOKEN, key)
    if record is None:
        return False
    ttl = max(int(record["expires_at"]) - int(record["created_at"]), 1)
    return store.incr(INITIAL_TOKEN_USES, key, ttl) <= int(record["uses"])


@dataclass(frozen=True)
class InitialToken:
    """A live initial access token as an admin sees it: never the token itself."""

    #: The digest it is stored under: an id to list and revoke by, never a way in.
    key: str
    created_at: int
    expires_at: int
    uses: int
    uses_left: int


def initial_tokens(store: Store) -> list[InitialToken]:
    """Every unexpired initial access token, newest first (used-up ones have no use left)."""
    found = []
    for key, record in store.scan(INITIAL_TOKEN):
        counter = store.find(INITIAL_TOKEN_USES, key)
        used = int(counter["count"]) if counter else 0
        uses = int(record["uses"])
        found.append(InitialToken(key, int(record["created_at"]), int(record["expires_at"]),
                                  uses, max(uses - used, 0)))
    return sorted(found, key=lambda t: (-t.created_at, t.key))


def revoke_initial_token(store: Store, key: str) -> bool:
    """Withdraw an initial access token by its digest; False when there is no such token."""
    if not key or len(key) > 200 or store.find(INITIAL_TOKEN, key) is None:
        return False
    store.delete(INITIAL_TOKEN, key)
    store.delete(INITIAL_TOKEN_USES, key)
    return True


# --- pruning ---------------------------------------------------------------------------------

def mark_used(store: Store, client: Client, *, now: int) -> None:
    """Remember when a self-registered client last got a token (one write per token)."""
    if client.registration == DYNAMIC:
        store.save(CLIENT_USED, client.client_id, {"at": now}, ttl=None)


def forget_used(store: Store, client_id: str) -> None:
    store.delete(CLIENT_USED, client_id)


def unused_clients(store: Store, *, older_than: int, now: int) -> Iterator[Client]:
    """Dynamic clients neither registered nor used in the last ``older_than`` seconds."""
    for client in list_clients(store):
        if client.registration != DYNAMIC:
            continue
        used = store.find(CLIENT_USED, client.client_id)
        last = max(client.created_at, int(used["at"]) if used else 0)
        if now - last > older_than:
            yield client


def prune(store: Store, *, older_than: int, now: int) -> list[str]:
    """Remove the dynamic clients :func:`unused_clients` finds; returns their ids."""
    removed = []
    for client in list(unused_clients(store, older_than=older_than, now=now)):
        remove_client(store, client.client_id)
        forget_used(store, client.client_id)
        removed.append(client.client_id)
    return removed
