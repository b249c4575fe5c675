"""A client's public keys, for private_key_jwt client authentication (RFC 7523 §2.2) and signed
request objects (RFC 9101): inline (``jwks``, checked at registration by
:func:`uauth.request_object.check_jwks`) or published at an https ``jwks_uri`` fetched through
the safe outbound fetcher (which caches) and checked the same way.

Only public keys are accepted: a symmetric (``oct``) or private key in a client's set is
refused, so an HMAC "signature" made with a public key can never verify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .models import Client

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
        from .request_object import check_jwks

        try:
            document = fetch(client.jwks_uri)
        except Exception as exc:  # FetchError, with the reason (never a hung worker)
            raise ClientKeysError(f"cannot fetch the client's jwks_uri: {exc}") from None
        try:
            return list(check_jwks(document)["keys"])
        except ValueError as exc:
            raise ClientKeysError(f"the client's jwks_uri: {exc}") from None
    return []
