"""Access tokens this worker has already verified, read, or issued itself.

A resource server sees the same bearer token many times during its life, and ``/userinfo``
usually sees a token moments after this worker minted it. Parsing and checking the signature
again each time costs more than everything else a protected request does, so the claims of a
verified token are kept, keyed by the whole token string: the same string, signature included,
is the same verified token. An opaque access token's claims (:mod:`uauth.core.opaque`) are kept
the same way, under its own string, once read from storage or stored here: they never change
while the token lives, so another read on every use would only repeat a storage statement.

A hit still checks what can change after verification: expiry (against the caller's clock),
that the signing key is still one the provider trusts (a key removed from the key set ends its
tokens at once; an opaque token has no key) and the audience asked for. Revocation and the
user's state are not cached: callers check them on every use, which is why revoking an opaque
token puts it on the deny list as well as deleting its record. The cache is bounded, per worker,
and holds nothing that is not in the token itself or its stored claims.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from uauth.core.tokens import has_audience
from uauth.core.tokens import peek_header

#: Tokens kept per worker (about 2 KB each); a token beyond them is verified in full again.
SIZE = 1024


class VerifiedTokens:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        #: token -> (claims, the signing key's id; None for an opaque token's stored claims)
        self._entries: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, *, now: float, audience: str | None,
            trusted: Callable[[str], bool] | None = None, leeway: float = 0
            ) -> dict[str, Any] | None:
        """The claims of ``token`` if it was verified here and still holds, else None (then
        verify it in full). A signed token's key must pass ``trusted``; without it, only an
        opaque token's stored claims can be had."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, kid = entry
        if kid is not None and (trusted is None or not trusted(kid)):
            return None
        if not (claims["exp"] + leeway > now and has_audience(claims, audience)):
            return None
        return dict(claims)

    def verify(self, token: str, decode: Callable[[], dict[str, Any]], *, now: float,
               audience: str | None, trusted: Callable[[str], bool], leeway: float = 0
               ) -> dict[str, Any]:
        """The claims of ``token``: from the cache while it holds, else ``decode()`` (the full
        check, which raises on a bad token) and kept for next time."""
        claims = self.get(token, now=now, audience=audience, trusted=trusted, leeway=leeway)
        if claims is None:
            claims = decode()
            self.put(token, dict(claims), str(peek_header(token).get("kid", "")))
        return claims

    def put(self, token: str, claims: dict[str, Any], kid: str | None) -> None:
        """Keep a token whose signature, issuer, type and claims were checked (or that this
        provider just signed), or an opaque token's stored claims (``kid`` None); the oldest
        entry goes when the cache is full."""
        if self._size <= 0 or not isinstance(claims.get("exp"), int):
            return
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[token] = (claims, kid)

