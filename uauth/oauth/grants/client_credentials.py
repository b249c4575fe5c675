"""Client credentials (RFC 6749 §4.4): machine-to-machine tokens, audiences per RFC 8707."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6749.util import scope_to_list

from uauth.core.models import Client
from uauth.core.resources import InvalidTargetError
from uauth.core.resources import check_resources
from uauth.core.settings import Settings

from .common import state_of
from .issuance import IssuesTokens

if TYPE_CHECKING:
    from uauth.oauth.server import UAuthRequest


#: Scopes that only mean something for a user.
USER_ONLY_SCOPES = frozenset({"openid", "offline_access"})


__all__ = ["ClientCredentialsGrant", "InvalidTargetError", "requested_audience"]


def requested_audience(request: UAuthRequest, client: Client, settings: Settings
                       ) -> list[str] | None:
    """Resource indicators (RFC 8707 ``resource``, or the common ``audience``) of a request.

    Each must be allowed for the client (:func:`uauth.core.resources.allowed_resources`); none
    means the issuer.
    """
    wanted = [*request.payload.datalist.get("resource", []),
              *request.payload.datalist.get("audience", [])]
    if not wanted:
        return None
    return check_resources(settings, client, wanted)


class ClientCredentialsGrant(IssuesTokens, grants.ClientCredentialsGrant):  # type: ignore[misc]
    """A confidential client acting for itself (RFC 6749 §4.4).

    The access token's ``sub`` is the client id; there is no ID token and no refresh token. The
    scope is limited to what the client may request, never ``openid`` or ``offline_access``, and
    defaults to all of that when omitted (RFC 6749 §3.3).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    WITH_ID_TOKEN = False

    def validate_requested_scope(self) -> None:
        request: UAuthRequest = self.request
        client: Client = request.client
        requested = scope_to_list(request.payload.scope) or []
        if USER_ONLY_SCOPES.intersection(requested):
            raise InvalidScopeError("openid and offline_access need a user; this grant has none.")
        known = state_of(self).settings.known_scope_set
        if any(s not in known or s not in client.allowed_scopes for s in requested):
            raise InvalidScopeError("The requested scope exceeds what this client may request.")
        self.context.audience = requested_audience(request, client, state_of(self).settings)

    def granted_scope(self) -> str:
        request: UAuthRequest = self.request
        client: Client = request.client
        requested = scope_to_list(request.payload.scope)
        if requested:
            return " ".join(dict.fromkeys(requested))
        known = state_of(self).settings.known_scope_set
        return " ".join(s for s in client.scope.split()
                        if s in known and s not in USER_ONLY_SCOPES)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        body: dict[str, Any] = self.generate_token(scope=self.granted_scope(),
                                                   include_refresh_token=False)
        self.save_token(body)
        return 200, body, self.TOKEN_RESPONSE_HEADER
