"""Authorization codes in storage: saved under their digest, redeemed once (RFC 6749 §4.1.2).

A code's record (:class:`~uauth.core.models.AuthorizationCode`) carries its PKCE challenge and
lives ``UAUTH_CODE_TTL`` seconds in its grant's group. Redeeming consumes it atomically: exactly
one caller sees ``first``; the record stays until it expires, so a second use is recognised as
a replay.
"""

from __future__ import annotations

from uauth.core.records import CODE
from uauth.storage import Consumed
from uauth.storage import Store
from uauth.storage import hash_key

from .models import AuthorizationCode


def save_code(store: Store, code: str, record: AuthorizationCode, *, ttl: int) -> None:
    """Store what ``code`` stands for, under its digest, in its grant."""
    store.save(CODE, hash_key(code), record.to_record(), ttl=ttl, grant_id=record.grant_id)


def consume_code(store: Store, code: str, client_id: str) -> Consumed | None:
    """Redeem ``code`` once, atomically, for ``client_id``; None for an unknown or expired
    code, and for a code issued to another client, which is left as it was: a foreign client
    burns nothing and revokes nothing (issue 17)."""
    key = hash_key(code)
    found = store.find(CODE, key)
    if found is None or found.get("client_id") != client_id:
        return None
    return store.consume(CODE, key)
