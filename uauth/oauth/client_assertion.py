"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) on Authlib's
:class:`~authlib.oauth2.rfc7523.JWTBearerClientAssertion`.

The client signs a short-lived JWT with its own key: ``iss`` and ``sub`` its client id, ``aud``
the issuer or the endpoint it calls, ``exp`` required and at most :data:`MAX_LIFETIME` away,
``jti`` single-use (one atomic ``add`` in storage, so a replay fails on every worker and host).
The signature is checked with the client's registered keys (``jwks`` or ``jwks_uri``) and an
explicit algorithm list: never ``none``, never HMAC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import cast
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import request as http_request
from flask import url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from uauth.core.jwks import ClientKeysError
from uauth.core.jwks import client_keys
from uauth.core.models import PRIVATE_KEY_JWT
from uauth.core.models import Client
from uauth.core.records import ASSERTION_JTI
from uauth.storage import hash_key

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthServer

#: Algorithms a client assertion may be signed with (advertised in discovery).
ASSERTION_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
#: Longest an assertion may live, in seconds (``exp`` minus now, and minus ``iat``).
MAX_LIFETIME = 300
#: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
LEEWAY = 30


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, state: State) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY)
        self.state = state

    def __call__(self, query_client: Any, request: Any) -> Client | None:
        client: Client | None = super().__call__(query_client, request)
        return client

    def get_audiences(self) -> list[str]:
        """The issuer, the token endpoint (OIDC Core §9), and the endpoint being called."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.state.issuer))
        return list(dict.fromkeys([self.state.issuer, origin + url_for("uauth.token.token"),
                                   origin + http_request.path]))

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.token_endpoint_auth_method != PRIVATE_KEY_JWT:
            raise InvalidClientError(description="The client does not use private_key_jwt.")
        try:
            keys = client_keys(client, self.state.fetch_json)  # jwks_uri: the safe fetcher
        except ClientKeysError as exc:
            raise InvalidClientError(description=str(exc)) from None
        if not keys:
            raise InvalidClientError(description="The client registered no keys.")
        try:
            return KeySet.import_key_set(cast(Any, {"keys": keys}))
        except Exception:  # joserfc raises several kinds for a key it cannot read
            raise InvalidClientError(description="The client's keys cannot be read.") from None

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGS))
        except JoseError as exc:
            raise InvalidClientError(
                description=f"The client assertion is not validly signed: {exc.error}") from None
        except ValueError:
            raise InvalidClientError(description="The client assertion cannot be read.") from None
        claims: dict[str, Any] = dict(token.claims)
        self.verify_claims(claims)
        return claims

    def verify_claims(self, claims: Any) -> None:
        now = self.state.now()
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidClientError(description="The client assertion needs a numeric exp.")
        if exp - now > MAX_LIFETIME + LEEWAY:
            raise InvalidClientError(
                description=f"The client assertion lives too long (at most {MAX_LIFETIME} s).")
        iat = claims.get("iat")
        if isinstance(iat, int) and exp - iat > MAX_LIFETIME + LEEWAY:
            raise InvalidClientError(
                description=f"The client assertion lives too long (at most {MAX_LIFETIME} s).")
        if exp + LEEWAY < now:
            raise InvalidClientError(description="The client assertion has expired.")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidClientError(description="The client assertion needs a jti.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        """Single use: the first ``add`` wins on every worker; the record outlives the
        assertion's own validity, so a replay is recognised as long as it could verify."""
        ttl = max(int(claims["exp"]) - self.state.now() + LEEWAY, 1)
        key = hash_key(f"{claims['sub']}\x00{jti}")
        return bool(self.state.store.add(ASSERTION_JTI, key, {"client_id": claims["sub"]},
                                         ttl=ttl))


def register(server: UAuthServer) -> None:
    server.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJWT(server.state))
