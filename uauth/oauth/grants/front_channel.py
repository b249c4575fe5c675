"""Implicit and hybrid flows: tokens from the authorization endpoint (OIDC Core §3.2, §3.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc6749.grants.authorization_code import validate_code_authorization_request
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core.grants import OpenIDHybridGrant
from authlib.oidc.core.grants import OpenIDImplicitGrant

from uauth.core.claims import claims_for_scopes
from uauth.core.claims import subject
from uauth.core.models import Client
from uauth.core.models import User
from uauth.oauth.responses import authorization_response

from .code import begin_grant
from .code import save_code
from .common import check_redirect_uri
from .common import check_requested_scope
from .common import is_openid
from .common import new_code
from .common import state_of
from .context import Contextual
from .issuance import id_token_for
from .issuance import issue_tokens

if TYPE_CHECKING:
    from uauth.oauth.server import UAuthRequest


class FrontChannelGrant(Contextual):
    """What implicit and hybrid grants share: request rules and the response they build.

    Authlib's OpenID grants supply the response types; the checks are the code flow's (the
    client is looked up, never authenticated, at the authorization endpoint), plus ``openid``
    and a ``nonce`` whenever an ID token comes from here (OIDC Core §3.2.2.1, §3.3.2.11).
    ``prompt`` is the authorization view's, as for every response type.
    """

    RESPONSE_TYPES: set[str]
    request: UAuthRequest

    validate_authorization_redirect_uri = staticmethod(check_redirect_uri)
    validate_requested_scope = check_requested_scope

    def validate_authorization_request(self) -> str:
        redirect_uri: str = validate_code_authorization_request(self)
        client: Client = self.request.client
        if not client.check_grant_type("implicit"):  # tokens from here are the implicit grant
            raise UnauthorizedClientError("The client is not registered for the implicit grant.",
                                          redirect_uri=redirect_uri)
        types = self.request.payload.response_type.split()
        if "code" not in types:
            # OIDC Core §11: offline_access is ignored unless a code is returned (nothing could
            # carry a refresh token), so it is neither asked for nor granted here.
            self.request.scope = " ".join(s for s in self.request.scope.split()
                                          if s != "offline_access")
        if not is_openid(self.request.scope):
            raise InvalidScopeError("This response type needs the openid scope.",
                                    redirect_uri=redirect_uri)
        if "id_token" in types and not self.request.payload.data.get("nonce"):
            raise InvalidRequestError("nonce is required when the response carries an ID token.",
                                      redirect_uri=redirect_uri)
        return redirect_uri

    def validate_consent_request(self) -> str:
        self.redirect_uri = self.validate_authorization_request()
        return self.redirect_uri

    def create_authorization_response(self, redirect_uri: str, grant_user: User | None
                                      ) -> tuple[int, str, list[tuple[str, str]]]:
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        request = self.request
        request.user = grant_user
        begin_grant(state_of(self), request, self.context)
        types = set(request.payload.response_type.split())
        params: list[tuple[str, str]] = []
        code = access_token = None
        if "code" in types:
            code = new_code()
            save_code(state_of(self), code, request, self.context)
            params.append(("code", code))
        if "token" in types:
            token = issue_tokens(self, grant_user, request.scope, include_refresh_token=False,
                                 with_id_token=False)
            access_token = token["access_token"]
            params += [(name, str(token[name]))
                       for name in ("access_token", "token_type", "expires_in", "scope")]
        if "id_token" in types:
            params.append(("id_token", self.front_channel_id_token(grant_user, access_token,
                                                                    code)))
        return authorization_response(self, redirect_uri, params)

    def front_channel_id_token(self, user: User, access_token: str | None, code: str | None
                               ) -> str:
        """An ID token with ``at_hash``/``c_hash`` for what travels with it; with neither an
        access token nor a code (``response_type=id_token``) the scope claims go in it, since
        no /userinfo call can fetch them (OIDC Core §5.4)."""
        request = self.request
        state = state_of(self)
        self.context.nonce = request.payload.data.get("nonce")
        extra = None
        if access_token is None and code is None:
            extra = claims_for_scopes(state.settings.custom_scopes, user,
                                      scope_to_list(request.scope) or [])
        sub = subject(state.subjects, user, request.client)
        return id_token_for(state, request, self.context, user, sub, request.scope,
                            access_token=access_token, code=code, extra=extra)


class ImplicitGrant(FrontChannelGrant, OpenIDImplicitGrant):  # type: ignore[misc]
    """``id_token`` and ``id_token token`` (OIDC Core §3.2), for clients registered for them."""


class HybridGrant(FrontChannelGrant, OpenIDHybridGrant):  # type: ignore[misc]
    """``code id_token``, ``code token``, ``code id_token token`` (OIDC Core §3.3); the code is
    redeemed at /token like any other (same grant, so a replay revokes these tokens too)."""
