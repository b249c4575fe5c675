"""Links that work once: password reset, email verification, invitations, open sign-up.

The raw token (256 bits, URL-safe) only ever exists in the link; storage keeps the record under
its SHA-256 digest with a time-to-live. Redeeming is the store's atomic consume: of any number
of concurrent requests exactly one wins, and the record is then deleted so the link reads as
"expired or already used" from then on. No Flask here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from uauth.core.records import INVITE
from uauth.core.records import RESET
from uauth.core.records import SIGNUP
from uauth.core.records import VERIFY
from uauth.storage import Record
from uauth.storage import Store
from uauth.storage import hash_key

KINDS = (RESET, VERIFY, INVITE, SIGNUP)

#: What a raw token looks like: anything else is refused before storage is asked.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{40,64}$")


@dataclass(frozen=True)
class Issued:
    token: str
    #: The digest the record is stored under: an id to list and revoke by, never a way in.
    key: str


def issue(store: Store, kind: str, data: Record, *, ttl: int, now: int) -> Issued:
    """Store ``data`` under a new random token's digest for ``ttl`` seconds."""
    token = secrets.token_urlsafe(32)
    key = hash_key(token)
    store.save(kind, key, {**data, "created_at": now, "expires_at": now + ttl}, ttl=ttl)
    return Issued(token, key)


def well_formed(token: str) -> bool:
    return bool(_TOKEN.match(token or ""))


def peek(store: Store, kind: str, token: str) -> Record | None:
    """The record a link stands for, without using it up (to show its page); None when the
    token is forged, expired or used."""
    if not well_formed(token):
        return None
    return store.find(kind, hash_key(token))


def redeem(store: Store, kind: str, token: str) -> Record | None:
    """Use a link up: its record for exactly one caller, None for everyone else."""
    if not well_formed(token):
        return None
    key = hash_key(token)
    outcome = store.consume(kind, key)
    if outcome is None or not outcome.first:
        return None
    store.delete(kind, key)
    return outcome.record


def revoke(store: Store, kind: str, key: str) -> None:
    """Withdraw a link by its digest (an admin revoking an invitation)."""
    store.delete(kind, key)


def pending(store: Store, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every live link of a kind, newest first (the console's invitation list)."""
    return sorted(store.scan(kind), key=lambda item: -int(item[1].get("created_at", 0)))
