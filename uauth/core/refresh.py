"""Refresh tokens: opaque, stored as digests, rotated on every use (RFC 9700 §4.14.2).

A token's record (:class:`~uauth.core.models.RefreshToken`) lives under ``hash_key(token)`` with its
grant id, so revoking the grant deletes the whole family. Using a token consumes it (exactly one
of any number of concurrent callers wins) and leaves a *rotation marker* under the same digest:
when it was rotated, and the nonce its successor was derived from. The marker lets a retry within
``UAUTH_REFRESH_REUSE_GRACE`` receive the very same successor, and tells introspection and reuse
detection that the token is spent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import urlsafe_b64encode
from typing import TYPE_CHECKING

from uauth.core.records import REFRESH
from uauth.core.records import ROTATED
from uauth.storage import Consumed
from uauth.storage import Mark
from uauth.storage import Store
from uauth.storage import hash_key

from .models import RefreshToken
from .tokens import expect_grant_revoked
from .users import expect_user

if TYPE_CHECKING:
    from uauth.core.state import State

#: Ours are 43 characters; anything much longer is not worth a storage lookup.
MAX_REFRESH_TOKEN_LENGTH = 512


def read_refresh_token(state: State, raw: str | None) -> RefreshToken | None:
    """The live record of a refresh token, whatever its family's deny list says: the caller
    asks :func:`~uauth.core.tokens.grant_revoked` next. Inside a batch the deny-list entry and
    the token's user are read ahead, with the next round trip (the deny list's own, or the
    rotation's spend)."""
    if not raw or len(raw) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    record = state.store.find(REFRESH, hash_key(raw))
    if record is None:
        return None
    token = RefreshToken.from_record(record)
    expect_grant_revoked(state.store, token.grant_id)
    expect_user(state.users, token.user_id)
    return token


def store_refresh_token(store: Store, raw: str, token: RefreshToken, *, ttl: int,
                        successor: bool) -> None:
    """Store a new token's record in its grant.

    A rotation's ``successor`` is added only when absent: a retried rotation hands out the same
    successor, which the first attempt may have saved and its holder used since (saving over it
    would reset that use). Any other token is random and cannot be there yet, so it is saved like
    any write: held with the response's other writes (``Store.batch``), one round trip fewer.
    """
    if successor:
        store.add(REFRESH, hash_key(raw), token.to_record(), ttl=ttl, grant_id=token.grant_id)
    else:
        store.save(REFRESH, hash_key(raw), token.to_record(), ttl=ttl, grant_id=token.grant_id)


def consume_refresh_token(state: State, raw: str, token: RefreshToken
                          ) -> tuple[Consumed | None, str]:
    """Spend a presented token, atomically: only one caller ever sees ``first``, and its
    rotation marker is saved in the same step (``Store.consume``'s ``mark``), so a spent
    token has its marker however storage fails after, and the rotation costs one commit or
    round trip. Returns the outcome and the successor that marker names: the caller's to hand
    out only when ``first``."""
    now = state.now()
    nonce = secrets.token_urlsafe(32)
    digest = hash_key(raw)
    marker = Mark(ROTATED, digest, {"at": now, "nonce": nonce},
                  ttl=max(token.expires_at - now, 1), grant_id=token.grant_id)
    return state.store.consume(REFRESH, digest, mark=marker), successor(raw, nonce)


def is_rotated(state: State, raw: str) -> bool:
    """True once the token has been exchanged (its record stays, to recognise reuse)."""
    return state.store.find(ROTATED, hash_key(raw)) is not None


def expect_rotated(state: State, raw: str) -> None:
    """:func:`is_rotated` follows: its marker may be read with the next round trip."""
    state.store.prefetch(ROTATED, hash_key(raw))


def successor(raw: str, nonce: str) -> str:
    """The token that replaces ``raw``: HMAC-SHA256 keyed with ``raw`` over a stored nonce.

    It needs both the old token (only the client has it) and the nonce (only storage has it), so
    a retry can be given the same successor while no token is ever stored in clear.
    """
    digest = hmac.new(raw.encode("utf-8"), nonce.encode("ascii"), hashlib.sha256).digest()
    return urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def retried_successor(state: State, raw: str) -> str | None:
    """The successor to hand out again for a retry of an already rotated ``raw``, or None.

    A retry is tolerated only within ``UAUTH_REFRESH_REUSE_GRACE`` seconds of the rotation and
    while the successor itself is unused; anything else is reuse (RFC 9700 §4.14.2). Answering
    with the same successor, rather than a second one, keeps the family a single chain, so a
    later double use of the successor is still detected.
    """
    grace = state.settings.refresh_reuse_grace
    if not grace:
        return None
    marker = state.store.find(ROTATED, hash_key(raw))
    if marker is None or state.now() - int(marker["at"]) > grace:
        return None
    value = successor(raw, str(marker["nonce"]))
    return None if is_rotated(state, value) else value
