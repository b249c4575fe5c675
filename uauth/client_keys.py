"""A client's public keys, for private_key_jwt client authentication (RFC 7523 §2.2) and, in
time, signed request objects: inline (``jwks``) or published at an https ``jwks_uri`` fetched
through the safe outbound fetcher.

Only public signing keys of the kinds uauth verifies (RSA, EC, OKP) are accepted: a symmetric
(``oct``) key or a private key in a client's set is refused at registration, so an HMAC
"signature" made with a public key can never verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .models import Client

#: Key types a client may publish.
KEY_TYPES = ("RSA", "EC", "OKP")
#: Members that only a private or symmetric key has.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
#: A client's key set is small; anything larger is a mistake or an attack.
MAX_KEYS = 20

#: ``fetch(url) -> JSON``: the safe fetcher's ``fetch_json``; raises on any failure.
JsonFetcher = Callable[[str], Any]


class ClientKeysError(ValueError):
    """The client's keys are missing, malformed, or cannot be fetched; the message says why."""


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK Set of public signing keys, or :class:`ClientKeysError`."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ClientKeysError('jwks must be a JWK Set: {"keys": [...]}')
    keys = jwks["keys"]
    if not keys or len(keys) > MAX_KEYS:
        raise ClientKeysError(f"jwks must hold between 1 and {MAX_KEYS} keys")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES:
            raise ClientKeysError(f"jwks keys must be public {', '.join(KEY_TYPES)} keys")
        if any(member in key for member in _PRIVATE_MEMBERS):
            raise ClientKeysError("jwks must hold public keys only (a private or symmetric "
                                  "key was given)")
        if key.get("use") not in (None, "sig"):
            raise ClientKeysError("jwks keys must be signing keys (use: sig)")
    try:
        from joserfc.jwk import KeySet

        KeySet.import_key_set({"keys": keys})
    except Exception as exc:  # joserfc raises several kinds for a malformed key
        raise ClientKeysError(f"jwks holds a key that cannot be read: {exc}") from None
    return {"keys": keys}


def client_keys(client: Client, fetch: JsonFetcher | None = None) -> dict[str, Any]:
    """The client's JWK Set: its registered ``jwks``, else its ``jwks_uri`` fetched with
    ``fetch`` (the safe fetcher, which caches). Raises :class:`ClientKeysError`."""
    if client.jwks:
        return check_jwks(client.jwks)
    if client.jwks_uri:
        if fetch is None:
            raise ClientKeysError("the client's jwks_uri cannot be fetched here")
        try:
            document = fetch(client.jwks_uri)
        except Exception as exc:  # FetchError, with the reason (never a hung worker)
            raise ClientKeysError(f"cannot fetch the client's jwks_uri: {exc}") from None
        return check_jwks(document)
    raise ClientKeysError("the client registered no jwks or jwks_uri")
