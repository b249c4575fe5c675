"""Opaque access tokens: a random reference whose claims live in storage.

One storage write instead of an RS256 signature per token, for clients whose resource servers
introspect (RFC 7662) or are the embedding host itself: only the provider can read the token.
The record holds exactly the claims the RFC 9068 JWT would carry, under ``hash_key(token)``
(the raw token is never stored) and in the token's grant, so revoking the grant deletes it.
The claims never change while the token lives, so a worker reads them once and keeps them
(:mod:`uauth.core.verified`), as it keeps a JWT's after checking its signature. What ends a
token early puts it on the deny list that every use reads (its ``jti`` on revocation, its grant
otherwise) and deletes its record, so it is refused everywhere at once all the same.
"""

from __future__ import annotations

import secrets
from typing import Any

from uauth.core.records import ACCESS
from uauth.storage import Store
from uauth.storage import hash_key

#: The two values of a client's ``access_token_format`` (``settings.ACCESS_TOKEN_FORMATS``).
JWT = "jwt"
OPAQUE = "opaque"
#: Ours are 43 characters; anything much longer is not worth a storage lookup.
MAX_LENGTH = 512
#: Seconds a record outlives its token, so a late use is told "expired" rather than "unknown".
EXPIRED_NOTICE = 60


def looks_opaque(token: str) -> bool:
    """A token without the JWT shape (``a.b.c``); ours are base64url, which has no dot."""
    return "." not in token


def mint(store: Store, claims: dict[str, Any], *, now: int) -> str:
    """A new opaque token for ``claims`` (saved in their grant ``gid``, if any)."""
    token = secrets.token_urlsafe(32)
    ttl = max(int(claims["exp"]) - now, 1) + EXPIRED_NOTICE
    grant_id = claims.get("gid")
    store.save(ACCESS, hash_key(token), claims, ttl=ttl,
               grant_id=None if grant_id is None else str(grant_id))
    return token


def find(store: Store, token: str) -> dict[str, Any] | None:
    """The claims stored for ``token``, expired or not; None for a token we never issued or
    one revoked (its record deleted)."""
    if not token or len(token) > MAX_LENGTH or not looks_opaque(token):
        return None
    record = store.find(ACCESS, hash_key(token))
    return None if record is None else dict(record)


def delete(store: Store, token: str) -> None:
    """Delete ``token``'s claims (RFC 7009 revocation, which also denies its ``jti``)."""
    store.delete(ACCESS, hash_key(token))
