"""Revocation (RFC 7009) and introspection (RFC 7662): Authlib's endpoints over our storage.

Both look a token up the same way: an access token is a JWT we signed (checked with our keys,
expired or not) or an opaque one's stored claims, a refresh token a stored record.
``token_type_hint`` only decides which lookup runs first (RFC 7009 §2.1): it is never trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from uauth.core.audit import TOKEN_REVOKED
from uauth.core.audit import audit
from uauth.core.claims import expect_token_user
from uauth.core.claims import token_user
from uauth.core.models import Client
from uauth.core.opaque import looks_opaque
from uauth.core.refresh import expect_rotated
from uauth.core.refresh import is_rotated
from uauth.core.refresh import read_refresh_token
from uauth.core.tokens import ACCESS_TOKEN_CLAIMS
from uauth.core.tokens import ACCESS_TOKEN_TYPES
from uauth.core.tokens import InvalidToken
from uauth.core.tokens import decode_signed
from uauth.core.tokens import grant_revoked
from uauth.core.tokens import is_revoked
from uauth.core.tokens import opaque_record
from uauth.core.tokens import revoke_access_token
from uauth.core.tokens import revoke_grant

if TYPE_CHECKING:
    from uauth.core.state import State

    from .server import UAuthRequest
    from .server import UAuthServer

ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"

#: Public clients may revoke their own tokens (an SPA signing out); only confidential clients,
#: resource servers above all, may introspect.
REVOCATION_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none",
                           "private_key_jwt"]
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

#: Access token claims an introspection response repeats (RFC 7662 §2.2).
INTROSPECTED_CLAIMS = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "auth_time",
                       "acr", "amr", "groups")


@dataclass(frozen=True)
class FoundToken:
    """A token presented to /revoke or /introspect, as far as we could verify it."""

    kind: str
    client_id: str
    #: The access token's claims, or the refresh token's record.
    data: dict[str, Any]
    active: bool

    def check_client(self, client: ClientMixin) -> bool:
        return bool(self.client_id == client.get_client_id())

    def is_expired(self) -> bool:
        return not self.active

    def is_revoked(self) -> bool:
        return not self.active


def find_access_token(state: State, raw: str) -> FoundToken | None:
    """An opaque token's claims come from the worker's kept copy while it lives (as at
    /userinfo), and its deny list and user are read together: a resource server introspecting
    a token this worker knows waits once."""
    with state.store.batch():
        if looks_opaque(raw):
            found = opaque_record(state, raw, now=state.clock())
            if found is None:
                return None
            claims = found
        else:
            try:
                claims = decode_signed(state, raw, typ=ACCESS_TOKEN_TYPES, audience=None,
                                       verify_exp=False, require=ACCESS_TOKEN_CLAIMS)
            except InvalidToken:
                return None
        expect_token_user(state, claims)
        active = int(claims["exp"]) > state.now() and not is_revoked(state.store, claims)
        return FoundToken(ACCESS_TOKEN, str(claims["client_id"]), claims,
                          active and _speaks_for_an_active_user(state, claims))


def find_refresh(state: State, raw: str) -> FoundToken | None:
    """A refresh token's record, then its family's deny-list entry, its user and its rotation
    marker in one round trip."""
    with state.store.batch():
        token = read_refresh_token(state, raw)
        if token is None:
            return None
        expect_rotated(state, raw)
        if grant_revoked(state.store, token.grant_id):
            return None
        user = state.users.get(token.user_id)
        active = not is_rotated(state, raw) and user is not None and user.is_active
        return FoundToken(REFRESH_TOKEN, token.client_id, token.to_record(), bool(active))


def _speaks_for_an_active_user(state: State, claims: dict[str, Any]) -> bool:
    """RFC 7662 §2.2: ``active`` says whether the token can be used, and a disabled or removed
    user's tokens cannot (/userinfo and require_token refuse them); a client's own token has
    no user to check."""
    try:
        token_user(state, claims)
    except InvalidToken:
        return False
    return True


def find_token(state: State, raw: str, hint: str | None) -> FoundToken | None:
    lookups: tuple[Callable[[State, str], FoundToken | None], ...] = (find_access_token,
                                                                       find_refresh)
    if hint == REFRESH_TOKEN:
        lookups = lookups[::-1]
    for lookup in lookups:
        found = lookup(state, raw)
        if found is not None:
            return found
    return None


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: an access token is denied by ``jti`` until it expires (an opaque one's record is
    deleted); a refresh token takes its whole family (every refresh and access token of the
    grant) with it. Unknown, expired and already revoked tokens answer 200 all the same
    (§2.2)."""

    CLIENT_AUTH_METHODS = REVOCATION_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.server.state, token_string, token_type_hint)

    def authenticate_token(self, request: UAuthRequest, client: Client) -> FoundToken | None:
        """Authlib's, with a description for the refusal (it sends a bare ``invalid_grant``)."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            # §2.1: a client may only revoke its own tokens; the request is refused.
            raise InvalidGrantError("The token was not issued to this client.")
        return token

    def revoke_token(self, token: FoundToken, request: UAuthRequest) -> None:
        """The revocation's writes (deny marker, deletes, audit events) held and sent together:
        one round trip for an access token, two for a refresh token (its family's delete
        answers the count its audit event carries)."""
        state: State = self.server.state
        with state.store.batch():
            if token.kind == ACCESS_TOKEN:
                revoke_access_token(state, token.data, raw=request.form["token"])
            else:
                audit(TOKEN_REVOKED, client_id=token.client_id,
                      user_id=token.data.get("user_id"), kind=REFRESH_TOKEN,
                      grant=str(token.data["grant_id"])[:8])
                revoke_grant(state, str(token.data["grant_id"]))


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: a client may introspect its own tokens; a client registered with
    ``--introspect-any-token`` (a resource server) also other clients' access tokens. Refresh
    tokens are only ever described to the client holding them, so a resource server never takes
    one for an access token. Everything else answers ``{"active": false}``."""

    CLIENT_AUTH_METHODS = INTROSPECTION_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.server.state, token_string, token_type_hint)

    def check_permission(self, token: FoundToken, client: Client, request: UAuthRequest) -> bool:
        if token.check_client(client):
            return True
        return token.kind == ACCESS_TOKEN and client.introspect_any_token

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        data = token.data
        if token.kind == ACCESS_TOKEN:
            body: dict[str, Any] = {"active": True}
            body.update((k, data[k]) for k in INTROSPECTED_CLAIMS if k in data)
            body["token_type"] = "Bearer"
            return body
        return {"active": True, "scope": data["scope"], "client_id": data["client_id"],
                "sub": data["sub"], "exp": data["expires_at"], "iat": data["issued_at"],
                "iss": self.server.state.issuer, "auth_time": data["auth_time"],
                "token_type": REFRESH_TOKEN}


def register_endpoints(server: UAuthServer) -> None:
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
