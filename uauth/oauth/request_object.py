"""Request objects (RFC 9101, OIDC Core §6.1): an authorization request as a JWT signed with
one of the client's registered keys.

Authlib's RFC 9101 extension replaces the request's payload inside the server, after our view
has read the parameters it steers the interaction with (state, response mode, prompt, claims),
so the glue is here: the object is verified with PyJWT, with an explicit algorithm list and
the client's keys, and its parameters replace the query's before anything else reads them.

Rules: ``iss`` is the client, ``aud`` the issuer, ``exp`` (when present) in the future and at
most :data:`MAX_LIFETIME` away, ``nbf``/``iat`` not in the future; an object may not nest
``request`` or ``request_uri``. Unsigned objects (``alg: none``) only for a client registered
with ``--allow-unsigned-request-objects``; encrypted ones are not supported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import jwt
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from jwt.algorithms import get_default_algorithms
from werkzeug.datastructures import MultiDict

from uauth.core.jwks import client_keys
from uauth.core.models import Client

from .parameters import Parameters

#: Signature algorithms a request object may use (``request_object_signing_alg_values_supported``).
REQUEST_OBJECT_ALGS = tuple(alg for alg in ("RS256", "PS256", "ES256", "EdDSA")
                            if alg in get_default_algorithms())
#: Key type each algorithm needs.
_KTY = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
#: Farthest ``exp`` a request object may have, in seconds from now.
MAX_LIFETIME = 3600
#: Seconds of clock skew tolerated.
LEEWAY = 30
#: Parameters an object may not carry.
_NESTED = frozenset({"request", "request_uri"})


def _candidates(keys: Iterable[dict[str, Any]], alg: str, kid: str | None) -> list[Any]:
    found = []
    for key in keys:
        if key.get("kty") != _KTY[alg] or (kid is not None and key.get("kid") != kid):
            continue
        if key.get("alg") not in (None, alg) or key.get("use") not in (None, "sig"):
            continue
        try:
            found.append(jwt.PyJWK(key, algorithm=alg).key)
        except jwt.PyJWTError:
            continue
    return found


def decode_request_object(raw: str, client: Client, issuer: str, now: float
                          ) -> dict[str, Any]:
    """The verified claims of a request object sent by ``client``.

    :raises InvalidRequestObjectError: with a public description.
    """
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError:
        raise InvalidRequestObjectError("The request object is not a JWT.") from None
    alg = header.get("alg")
    if alg == "none":
        claims = _unsigned(raw, client)
    elif alg in REQUEST_OBJECT_ALGS:
        claims = _signed(raw, client, issuer, alg, header.get("kid"))
    else:
        raise InvalidRequestObjectError("The request object's algorithm is not allowed.")
    _check_times(claims, now)
    if _NESTED.intersection(claims):
        raise InvalidRequestObjectError("A request object cannot hold request or request_uri.")
    if claims.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequestObjectError("The request object is for another client.")
    return claims


def _signed(raw: str, client: Client, issuer: str, alg: str, kid: Any) -> dict[str, Any]:
    keys = _candidates(client_keys(client), alg, kid if isinstance(kid, str) else None)
    if not keys:
        raise InvalidRequestObjectError("No registered key of this client fits the request "
                                        "object's algorithm and key id.")
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                raw, key, algorithms=[alg], audience=issuer, issuer=client.client_id,
                options={"require": ["iss", "aud"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False})
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise InvalidRequestObjectError("The request object's iss must be the client and "
                                            "its aud this issuer.") from None
        return claims
    raise InvalidRequestObjectError("The request object's signature does not verify.")


def _unsigned(raw: str, client: Client) -> dict[str, Any]:
    if not client.allow_unsigned_request_objects:
        raise InvalidRequestObjectError("Unsigned request objects are not accepted from this "
                                        "client.")
    head, _, rest = raw.partition(".")
    payload, _, signature = rest.partition(".")
    if signature or not payload:
        raise InvalidRequestObjectError("An unsigned request object has no signature.")
    try:
        claims: dict[str, Any] = jwt.decode(raw, algorithms=["none"],
                                            options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidRequestObjectError("The request object cannot be read.") from None
    if claims.get("iss", client.client_id) != client.client_id:
        raise InvalidRequestObjectError("The request object's iss must be the client.")
    return claims


def _check_times(claims: dict[str, Any], now: float) -> None:
    for name in ("exp", "nbf", "iat"):
        if name in claims and (not isinstance(claims[name], int | float)
                               or isinstance(claims[name], bool)):
            raise InvalidRequestObjectError(f"The request object's {name} must be a number.")
    if "exp" in claims and not now - LEEWAY < claims["exp"] <= now + MAX_LIFETIME:
        raise InvalidRequestObjectError("The request object has expired or lives too long.")
    if any(claims.get(name, 0) > now + LEEWAY for name in ("nbf", "iat")):
        raise InvalidRequestObjectError("The request object is not valid yet.")


#: JWT claims of the object itself, not authorization request parameters.
_JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})


def request_parameters(sent: MultiDict[str, str], claims: dict[str, Any]
                       ) -> MultiDict[str, str]:
    """The authorization request: the object's parameters, and the query's where the object
    has none (OIDC Core §6.3.3; the object always wins, RFC 9101 §5)."""
    values: list[tuple[str, str]] = []
    for name, value in claims.items():
        if name in _JWT_CLAIMS:
            continue
        if isinstance(value, str):
            values.append((name, value))
        elif isinstance(value, int) and not isinstance(value, bool):
            values.append((name, str(value)))  # max_age
        elif name == "claims" and isinstance(value, dict):
            values.append((name, json.dumps(value)))
        elif name == "resource" and isinstance(value, list) and all(
                isinstance(v, str) for v in value):
            values.extend((name, v) for v in value)
        else:
            raise InvalidRequestObjectError("A parameter of the request object has a type no "
                                            "authorization request parameter has.")
    given = {name for name, _ in values}
    kept = [(k, v) for k, v in sent.items(multi=True) if k not in given and k != "request"]
    return Parameters(kept + values)
