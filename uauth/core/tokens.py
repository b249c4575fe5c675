"""Minting and validating the tokens uauth issues: ID tokens and access tokens, RFC 9068 JWTs or
opaque references to stored claims (per client, :mod:`uauth.core.opaque`).

Signing uses key objects parsed once per worker (a PEM per call costs ~100x). The two token
kinds can never stand in for each other: access tokens carry ``typ: at+jwt`` and the issuer as
audience, ID tokens ``typ: JWT`` and the client as audience, and validation checks both.

Revocation is a deny list in storage: ``jti:<id>`` for one access token, ``grant:<id>`` for every
token of a grant (a refresh-token family, or the tokens of a replayed code).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import secrets
from base64 import urlsafe_b64decode
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

import jwt

from uauth.core.records import REVOKED
from uauth.storage import Store

from . import jsondepth
from . import opaque
from .audit import FAMILY_REVOKED
from .audit import TOKEN_REVOKED
from .audit import audit

if TYPE_CHECKING:
    from uauth.core.state import State

#: ``typ`` values of our ID tokens (and what an ``id_token_hint`` must carry).
ID_TOKEN_TYPES = {"jwt"}
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
#: Longest bearer token worth parsing; ours are well under 2 KiB.
MAX_TOKEN_LENGTH = 8192

#: The hash behind at_hash/c_hash per signing alg (OIDC Core §3.1.3.6; Ed25519 uses SHA-512).
_HALF_HASH = {"RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES256": hashlib.sha256,
              "EdDSA": hashlib.sha512}


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash``: base64url of the left half of the alg's hash of ``value``."""
    digest = _HALF_HASH[alg](value.encode("ascii")).digest()
    return urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Authentication:
    """When and how the user authenticated; carried from the login into codes and tokens."""

    auth_time: int
    amr: tuple[str, ...] = ("pwd",)
    sid: str | None = None
    acr: str | None = None

    @classmethod
    def of(cls, record: Any) -> Authentication:
        """The authentication a code or refresh-token record carries on."""
        return cls(record.auth_time, tuple(record.amr), record.sid, record.acr)


def sign(state: State, claims: dict[str, Any], *, typ: str, alg: str | None = None) -> str:
    return _sign(state, claims, typ=typ, alg=alg)[0]


def _sign(state: State, claims: dict[str, Any], *, typ: str, alg: str | None) -> tuple[str, str]:
    """The JWT and the ``kid`` of the key that signed it."""
    key = state.keys.signing_key(alg or state.settings.signing_alg, state.clock())
    token = jwt.encode(claims, key.private, algorithm=key.alg,
                       headers={"kid": key.kid, "typ": typ})
    return token, key.kid


def mint_access_token(
    state: State,
    *,
    client_id: str,
    sub: str,
    scope: str,
    grant_id: str | None,
    audience: list[str] | None = None,
    auth_time: int | None = None,
    ttl: int | None = None,
    extra: dict[str, Any] | None = None,
    token_format: str = opaque.JWT,
) -> tuple[str, dict[str, Any]]:
    """An access token and its claims (``extra`` never overrides the standard ones).

    :param token_format: ``jwt``, an RFC 9068 JWT; or ``opaque``, a random string whose
        claims (the same) are stored under its digest in the grant.
    """
    now = state.now()
    claims: dict[str, Any] = dict(extra or {})
    claims.update({
        "iss": state.issuer,
        "sub": sub,
        "aud": (audience[0] if len(audience) == 1 else audience) if audience else state.issuer,
        "exp": now + (ttl or state.settings.access_token_ttl),
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        "scope": scope,
    })
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if grant_id is not None:
        claims["gid"] = grant_id
    kid: str | None = None
    if token_format == opaque.OPAQUE:
        token = opaque.mint(state.store, claims, now=now)
    else:
        token, kid = _sign(state, claims, typ="at+jwt", alg=state.settings.access_token_alg)
    # What a decode or a storage read of this token would give (lists, not tuples): userinfo
    # or a resource in this worker then skips the signature check or the read it would repeat.
    state.verified.put(token, json.loads(json.dumps(claims)), kid)
    return token, claims


def mint_id_token(
    state: State,
    *,
    client_id: str,
    sub: str,
    auth: Authentication,
    nonce: str | None = None,
    access_token: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
    alg: str | None = None,
) -> str:
    """An ID token (OIDC Core §2) for ``client_id``."""
    alg = alg or state.settings.signing_alg
    now = state.now()
    claims: dict[str, Any] = dict(extra or {})
    claims.update({
        "iss": state.issuer,
        "sub": sub,
        "aud": client_id,
        "azp": client_id,
        "exp": now + state.settings.id_token_ttl,
        "iat": now,
        "auth_time": auth.auth_time,
    })
    if auth.amr:  # unknown when a host app's own login page authenticated the user
        claims["amr"] = list(auth.amr)
    if nonce:
        claims["nonce"] = nonce
    if auth.sid:
        claims["sid"] = auth.sid
    if auth.acr:
        claims["acr"] = auth.acr
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    if code:
        claims["c_hash"] = half_hash(code, alg)
    return sign(state, claims, typ="JWT", alg=alg)


class InvalidToken(Exception):
    """A bearer token that must be refused; ``str()`` is a public description."""


class VerificationKey(Protocol):
    """A public key and the one algorithm it verifies (our :class:`SigningKey`, or a JWK)."""

    @property
    def alg(self) -> str: ...

    @property
    def public(self) -> Any: ...


#: Finds the key a token's ``kid`` names; None when the issuer has no such key.
KeyLookup = Callable[[str], VerificationKey | None]

#: Claims every access token carries (RFC 9068 §2.2).
ACCESS_TOKEN_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")


def peek_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to pick the verification key; ``jwt.decode`` then parses and
    checks the whole token strictly (so a header this lenient read misreads is refused there).
    Cheaper than ``jwt.get_unverified_header``, which validates every segment a second time."""
    segment = token.partition(".")[0]
    try:
        header = jsondepth.loads(urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidToken("the token is malformed") from None
    if not isinstance(header, dict):
        raise InvalidToken("the token is malformed")
    return header


def decode_jwt(token: str, *, keys: KeyLookup, issuer: str, typ: set[str] | None,
               audience: str | None, require: tuple[str, ...] = ("exp", "iat", "iss", "sub"),
               verify_exp: bool = True, leeway: float = 0, now: float | None = None
               ) -> dict[str, Any]:
    """Decode a JWT from ``issuer``: the key its ``kid`` names, with that key's one algorithm
    (never ``none``, never one the token picks), then ``typ``, ``iss``, ``aud`` and ``exp``.

    :param now: the provider's own clock (injected in tests); without it, the wall clock.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken("the token is malformed")
    header = peek_header(token)
    if "crit" in header or "jwk" in header or "jku" in header or "x5u" in header:
        raise InvalidToken("the token has unsupported header parameters")
    if typ is not None and str(header.get("typ", "")).lower() not in typ:
        raise InvalidToken("the token is not an access token")
    key = keys(str(header.get("kid", "")))
    if key is None:
        raise InvalidToken("the token was not signed by this provider")
    wall_clock = now is None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public,
            algorithms=[key.alg],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": list(require), "verify_exp": verify_exp and wall_clock,
                     "verify_iat": wall_clock, "verify_nbf": wall_clock,
                     "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.MissingRequiredClaimError:
        raise InvalidToken("the token lacks a required claim") from None
    except (jwt.InvalidTokenError, RecursionError):  # PyJWT parses the payload recursively
        raise InvalidToken("the token is invalid") from None
    exp = claims.get("exp")
    if now is not None and verify_exp and exp is not None and not (
            isinstance(exp, int) and exp + leeway > now):
        raise InvalidToken("the token has expired")
    return claims


def decode_signed(state: State, token: str, *, typ: set[str] | None, audience: str | None,
                  verify_exp: bool = True,
                  require: tuple[str, ...] = ("exp", "iat", "iss", "sub")) -> dict[str, Any]:
    """Decode one of our own JWTs: our keys only, each with its one algorithm, never ``none``."""
    return decode_jwt(token, keys=state.keys.verification_key, issuer=state.issuer, typ=typ,
                      audience=audience, verify_exp=verify_exp, now=state.clock(),
                      require=require)


def decode_access_token(token: str, *, keys: KeyLookup, issuer: str, audience: str | None,
                        leeway: float = 0, now: float | None = None) -> dict[str, Any]:
    """An RFC 9068 access token's claims, validated per §4 (``typ``, keys, ``iss``, ``aud``,
    ``exp``); an ID token or any other JWT of the issuer is refused."""
    return decode_jwt(token, keys=keys, issuer=issuer, typ=ACCESS_TOKEN_TYPES,
                      audience=audience, require=ACCESS_TOKEN_CLAIMS, leeway=leeway, now=now)


def has_audience(claims: dict[str, Any], audience: str | None) -> bool:
    """PyJWT's audience rule: ``aud`` is the audience, or a list that contains it."""
    if audience is None:
        return True
    aud = claims.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)


def opaque_claims(state: State, token: str, *, audience: str | None, now: float
                  ) -> dict[str, Any]:
    """The stored claims of an opaque access token, checked as a JWT's would be (``exp``,
    ``aud``). They are read once per worker and then kept as a JWT's verified claims are
    (:mod:`uauth.core.verified`): whatever ends a token before it expires also puts it on the
    deny list, which every use reads. An empty or over-long token is refused by
    :func:`opaque.find` before any storage read."""
    claims = opaque_record(state, token, now=now)
    if claims is None:
        raise InvalidToken("the token is invalid")
    if not int(claims["exp"]) > now:
        raise InvalidToken("the token has expired")
    if not has_audience(claims, audience):
        raise InvalidToken("the token is invalid")
    return claims


def opaque_record(state: State, token: str, *, now: float) -> dict[str, Any] | None:
    """An opaque access token's stored claims, expired or not (None: never issued, or revoked
    and deleted): the worker's kept copy while the token lives, else storage's, kept when
    live."""
    kept = state.verified.get(token, now=now, audience=None)
    if kept is not None:
        return kept
    claims = opaque.find(state.store, token)
    if claims is not None and int(claims["exp"]) > now:
        state.verified.put(token, dict(claims), None)
    return claims


def validate_access_token(state: State, token: str, *, audience: str | None = None,
                          verified: Callable[[dict[str, Any]], None] | None = None
                          ) -> dict[str, Any]:
    """Claims of a live, unrevoked access token issued by us, a JWT or an opaque one; raises
    :class:`InvalidToken`.

    :param verified: called with the claims before the deny list is read, to name what else
        the caller will read with it (``Store.prefetch``).
    """
    now = state.clock()
    if opaque.looks_opaque(token):
        claims = opaque_claims(state, token, audience=audience, now=now)
    else:
        claims = state.verified.verify(
            token, lambda: decode_access_token(token, keys=state.keys.verification_key,
                                               issuer=state.issuer, audience=audience, now=now),
            now=now, audience=audience,
            trusted=lambda kid: state.keys.verification_key(kid) is not None)
    if verified is not None:
        verified(claims)
    if is_revoked(state.store, claims):
        raise InvalidToken("the token has been revoked")
    return claims


def is_revoked(store: Store, claims: dict[str, Any]) -> bool:
    """On the deny list itself, or part of a revoked grant: one storage query for both."""
    keys = [f"jti:{claims['jti']}"]
    if claims.get("gid") is not None:
        keys.append(f"grant:{claims['gid']}")
    return any(record is not None for record in store.find_many(REVOKED, keys))


def revoke_access_token(state: State, claims: dict[str, Any], *, raw: str | None = None
                        ) -> None:
    """Deny one access token until it would have expired anyway: every use reads the deny list,
    so this ends it everywhere at once, also in workers that keep its claims. An opaque one's
    record (``raw``) is deleted as well: nobody reads its claims again."""
    audit(TOKEN_REVOKED, client_id=str(claims.get("client_id")), kind="access_token",
          grant=str(claims.get("gid", ""))[:8] or None)
    if raw is not None and opaque.looks_opaque(raw):
        opaque.delete(state.store, raw)
    ttl = int(claims["exp"]) - state.now()
    if ttl > 0:
        state.store.save(REVOKED, f"jti:{claims['jti']}", {"exp": claims["exp"]}, ttl=ttl)


def revoke_grant(state: State, grant_id: str, *, replayed: str | None = None) -> int:
    """Kill every token of a grant: stored ones are deleted, JWTs of it are denied.

    The marker outlives every token the grant could still have, and a refresh token saved by a
    request racing this one is refused on use because the marker is checked there too.
    ``replayed``, the digest of a spent refresh token presented again, is kept in the marker:
    see :func:`grant_revoked`.
    """
    _deny_grant(state, grant_id, replayed=replayed)
    removed = state.store.revoke_grant(grant_id)
    audit(FAMILY_REVOKED, grant=grant_id[:8], records=removed)
    return removed


def evict_grant(state: State, grant_id: str, *, reason: str = "grant cap") -> None:
    """:func:`revoke_grant` without the count of records it deleted, so that inside
    :meth:`~uauth.storage.base.Store.batch` the backend may hold the delete with the other writes
    (the grant cap's eviction: one commit with the token response's instead of one of its own;
    a session's end: its grants' revocations in one round trip)."""
    _deny_grant(state, grant_id)
    state.store.drop_grant(grant_id)
    audit(FAMILY_REVOKED, grant=grant_id[:8], reason=reason)


def _deny_grant(state: State, grant_id: str, *, replayed: str | None = None) -> None:
    ttl = max(state.settings.access_token_ttl, state.settings.refresh_token_ttl)
    marker: dict[str, Any] = {"at": state.now()}
    if replayed is not None:
        marker["replayed"] = replayed
    state.store.save(REVOKED, f"grant:{grant_id}", marker, ttl=ttl)


def grant_revoked(store: Store, grant_id: str, *, spent: str | None = None) -> bool:
    """Whether the grant is on the deny list.

    :param spent: the digest of a refresh token this caller spent first. A revocation that a
        replay of that very token caused does not count: it came after the spend (the replay
        found the token spent), and must not refuse the one request that won. On one node the
        deny list is read with the spend, so it is never seen; on a cluster the two live on
        different primaries, and a racing replay may land between them.
    """
    marker = store.find(REVOKED, f"grant:{grant_id}")
    return marker is not None and (spent is None or marker.get("replayed") != spent)


def expect_grant_revoked(store: Store, grant_id: str) -> None:
    """Read the grant's deny-list entry with the next round trip of the caller's batch
    (:meth:`~uauth.storage.base.Store.prefetch`): :func:`grant_revoked` follows."""
    store.prefetch(REVOKED, f"grant:{grant_id}")
