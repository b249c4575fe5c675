"""Rules every grant shares: scopes, redirect URIs, response types, grant ids."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list

from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.resources import check_resources
from uauth.core.resources import default_scope
from uauth.core.resources import requested
from uauth.core.users import UserDirectory

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthRequest




#: Codes and request parameters longer than this are not worth a storage lookup.
MAX_CODE_LENGTH = 512


#: Access-token claim listing the claims the ``claims`` parameter asked /userinfo for. The
#: client can read it, and may: it holds only names the client itself requested.
USERINFO_CLAIMS = "userinfo_claims"


def is_openid(scope: str | None) -> bool:
    return "openid" in (scope_to_list(scope) or [])


def new_code() -> str:
    """An authorization code: 256 random bits (Authlib draws 48 characters one by one, which
    costs a system call each)."""
    return secrets.token_urlsafe(32)


def new_grant_id() -> str:
    return secrets.token_urlsafe(16)


def state_of(grant: Any) -> State:
    state: State = grant.server.state
    return state


def users_of(grant: Any) -> UserDirectory:
    return state_of(grant).users


def active_user(grant: Any, user_id: str) -> User | None:
    """The user a code or refresh token was issued for, unless gone or disabled since."""
    user = users_of(grant).get(user_id)
    return user if user is not None and user.is_active else None


def check_requested_scope(grant: Any) -> None:
    """Scope rules at the authorization endpoint.

    Resources (RFC 8707 ``resource``) must be allowed for the client (``invalid_target``).
    Without a ``scope`` parameter the request gets a default (RFC 6749 §3.3): the scopes of
    the requested resources, else the client's registered scope. Scopes the provider does not
    know are an error in plain OAuth and ignored in an OpenID request (OIDC Core §3.1.2.1);
    scopes it knows but the client may not request are always ``invalid_scope``.
    """
    request: UAuthRequest = grant.request
    client: Client = request.client
    settings = state_of(grant).settings
    resources = check_resources(settings, client, requested(request.payload.data))
    grant.context.resources = resources
    scopes = scope_to_list(request.payload.scope) or []
    if "scope" not in request.payload.data:  # omitted, not empty (an empty one is malformed)
        fallback = default_scope(settings, client, resources)
        request.set_param("scope", fallback)
        scopes = scope_to_list(fallback) or []
    if not scopes:
        raise InvalidScopeError("A scope is required; OpenID Connect requests need 'openid'.")
    known = settings.known_scope_set
    unknown = [s for s in scopes if s not in known]
    if unknown and "openid" not in scopes:
        raise InvalidScopeError("The request includes a scope this provider does not know.")
    if any(s in known and s not in client.allowed_scopes for s in scopes):
        raise InvalidScopeError("The requested scope exceeds what this client may request.")


def check_redirect_uri(request: UAuthRequest, client: Client) -> str:
    """Exact match against the registration; required in OpenID requests (OIDC Core §3.1.2.1)
    and whenever the client registered more than one."""
    uri = request.payload.redirect_uri
    if uri:
        if not client.check_redirect_uri(uri):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        return str(uri)
    if is_openid(request.payload.scope):
        raise InvalidRequestError("redirect_uri is required in an OpenID Connect request.")
    default = client.get_default_redirect_uri()
    if not default:
        raise InvalidRequestError("redirect_uri is required: the client registered several.")
    return default

