"""Clients' registered public keys (RFC 7517): what registration accepts, and what a request
object's signature (:mod:`uauth.oauth.request_object`) and a private_key_jwt client assertion
(:mod:`uauth.oauth.client_assertion`) are checked against: an inline ``jwks``, or an https
``jwks_uri`` fetched through the safe outbound fetcher (:mod:`uauth.core.fetcher`, which
caches) and checked the same way.

Only public keys are accepted: a symmetric (``oct``) or private key in a client's set is
refused, so an HMAC "signature" made with a public key can never verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt

from .models import Client


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A client's JWKS as registered: a JSON object with public keys PyJWT can use.

    :raises ValueError: with a message for the administrator.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('a JWKS is a JSON object {"keys": [...]} with at least one key')
    for key in jwks["keys"]:
        if not isinstance(key, dict) or any(k in key for k in ("d", "p", "q", "k")):
            raise ValueError("the JWKS must hold public keys only (no private or symmetric keys)")
    try:
        usable = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWTError as exc:
        raise ValueError(f"the JWKS cannot be used: {exc}") from None
    if len(usable) != len(jwks["keys"]):
        raise ValueError("the JWKS holds keys of a type or curve uauth cannot use")
    return jwks


#: ``fetch(url) -> JSON``: the safe fetcher's ``fetch_json``; raises on any failure.
JsonFetcher = Callable[[str], Any]


class ClientKeysError(ValueError):
    """The client's keys cannot be fetched or used; the message says why."""


def client_keys(client: Client, fetch: JsonFetcher | None = None) -> list[dict[str, Any]]:
    """The public keys a client signs with, as JWKs: its registered ``jwks``, else its
    ``jwks_uri`` fetched with ``fetch``; [] when it has neither (or no ``fetch`` is given).

    :raises ClientKeysError: the ``jwks_uri`` cannot be fetched or holds unusable keys.
    """
    if client.jwks:
        return list(client.jwks.get("keys", []))
    if client.jwks_uri and fetch is not None:
        try:
            document = fetch(client.jwks_uri)
        except Exception as exc:  # FetchError, with the reason (never a hung worker)
            raise ClientKeysError(f"cannot fetch the client's jwks_uri: {exc}") from None
        try:
            return list(check_jwks(document)["keys"])
        except ValueError as exc:
            raise ClientKeysError(f"the client's jwks_uri: {exc}") from None
    return []
