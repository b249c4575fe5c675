"""Clients' registered public keys (an inline JWKS, RFC 7517): what registration accepts and
what a request object's signature is checked against (:mod:`uauth.oauth.request_object`)."""

from __future__ import annotations

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


def client_keys(client: Client) -> list[dict[str, Any]]:
    """The public keys a client signs with, as JWKs: its registered inline JWKS (issue 16 adds
    ``jwks_uri``)."""
    return list((client.jwks or {}).get("keys", []))
