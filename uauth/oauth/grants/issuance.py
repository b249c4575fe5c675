"""Token issuance shared by every grant: one place decides what a token response holds."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from uauth.core.audit import TOKEN_ISSUED
from uauth.core.audit import TOKEN_REFRESHED
from uauth.core.audit import audit
from uauth.core.claims import CustomScopes
from uauth.core.claims import claim_scopes
from uauth.core.claims import claims_by_name
from uauth.core.claims import groups_claim
from uauth.core.claims import subject
from uauth.core.grantlimits import family_started
from uauth.core.grantlimits import start_family
from uauth.core.models import Client
from uauth.core.models import RefreshToken
from uauth.core.models import User
from uauth.core.opaque import OPAQUE
from uauth.core.refresh import store_refresh_token
from uauth.core.registration import mark_used
from uauth.core.tokens import Authentication
from uauth.core.tokens import mint_access_token
from uauth.core.tokens import mint_id_token

from .common import USERINFO_CLAIMS
from .common import is_openid
from .common import state_of
from .context import Contextual
from .context import IssueContext

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthRequest

log = logging.getLogger("uauth.grants")


def wants_refresh_token(client: Client, scope: str) -> bool:
    """Refresh tokens go to clients allowed the grant that got ``offline_access`` consented
    (OIDC Core §11), or that are configured to always receive one."""
    if not client.check_grant_type("refresh_token"):
        return False
    return "offline_access" in scope.split() or client.always_issue_refresh_token


def brings_refresh_tokens(client: Client, response_type: str, scope: str) -> bool:
    """Whether an authorization response of ``response_type`` brings refresh tokens: a code,
    to a client :func:`wants_refresh_token` gives them for ``scope``."""
    return "code" in response_type.split() and wants_refresh_token(client, scope)


def id_token_alg(state: State, client: Client) -> str:
    """The client's registered ``id_token_signed_response_alg``, else ``UAUTH_SIGNING_ALG``."""
    alg = client.id_token_signed_response_alg or state.settings.signing_alg
    if alg not in state.settings.signing_algs:
        log.error("client %s registered id_token_signed_response_alg %s, which "
                  "UAUTH_SIGNING_ALGS does not enable", client.client_id, alg)
        raise UnauthorizedClientError(
            description="The client's ID token signing algorithm is not enabled here.")
    return str(alg)


def _access_extra(userinfo_claims: Any, auth: Authentication | None) -> dict[str, Any] | None:
    """Claims of an access token beyond RFC 9068's: the claims asked for at /userinfo, and
    how the user authenticated (``amr``, ``acr``), so a resource server can ask for more."""
    extra: dict[str, Any] = {}
    if userinfo_claims:
        extra[USERINFO_CLAIMS] = userinfo_claims
    if auth is not None and auth.amr:
        extra["amr"] = list(auth.amr)
    if auth is not None and auth.acr:
        extra["acr"] = auth.acr
    return extra or None


def issue_tokens(grant: Any, user: User | None, scope: str, *, include_refresh_token: bool,
                 with_id_token: bool) -> dict[str, Any]:
    """The token response body for one grant: an access token in the client's format (an RFC
    9068 JWT or an opaque reference), and as due a refresh
    token (stored here, see :func:`issue_refresh_token`) and an ID token."""
    state = state_of(grant)
    request: UAuthRequest = grant.request
    ctx: IssueContext = grant.context
    client: Client = request.client
    auth: Authentication | None = ctx.auth
    rotated = request.refresh_token if isinstance(request.refresh_token, RefreshToken) else None
    if user is None:
        sub = client.client_id
    else:
        sub = rotated.sub if rotated is not None else subject(state.subjects, user, client)
    userinfo_claims = requested_claims(request, ctx, "userinfo", scope,
                                       state.settings.custom_scopes)

    def mint() -> tuple[str, dict[str, Any]]:
        return mint_access_token(
            state, client_id=client.client_id, sub=sub, scope=scope, grant_id=ctx.grant_id,
            audience=ctx.audience,
            auth_time=auth.auth_time if (user is not None and auth is not None) else None,
            extra={**(_access_extra(userinfo_claims if user else None, auth if user else None)
                      or {}), **(groups_claim(user, scope) if user else {})} or None,
            token_format=client.access_token_format,
        )

    # The response's writes (an opaque access token, the refresh token, its family's note, an
    # evicted family's revocation, a self-registered client's last use) go to storage together
    # (Store.batch), and with the spend of what the grant redeemed when it left that batch
    # open (ctx.spend, closed here): nothing is signed inside its transaction.
    stored: tuple[str, dict[str, Any]] | None = None
    refresh_token: str | None = None
    with state.store.batch():
        if client.access_token_format == OPAQUE:
            stored = mint()
        # RFC 6749 §6: a new refresh token keeps the scope of the one it replaces, even when
        # the client narrowed the scope of this access token.
        granted = rotated.scope if rotated is not None else scope
        if include_refresh_token and user is not None and wants_refresh_token(client, granted):
            refresh_token = issue_refresh_token(state, request, ctx, user, granted, sub)
        if client.self_registered:  # `uauth client prune` removes unused ones
            mark_used(state.store, client, now=state.now())
    if ctx.spend is not None:
        ctx.spend.close()
    access_token, claims = stored or mint()  # a JWT access token is signed here
    token: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.settings.access_token_ttl,
        "scope": scope,
        "created_at": claims["iat"],
    }
    if refresh_token is not None:
        token["refresh_token"] = refresh_token
    if with_id_token and user is not None and auth is not None and is_openid(scope):
        token["id_token"] = id_token_for(state, request, ctx, user, sub, scope,
                                         access_token=access_token)
    grant_type = getattr(grant, "GRANT_TYPE", None) or "unknown"
    state.metrics.token_issued(grant_type)
    audit(TOKEN_REFRESHED if grant_type == "refresh_token" else TOKEN_ISSUED,
          client_id=client.client_id, user_id=user.id if user is not None else None,
          grant_type=grant_type, grant=(ctx.grant_id or "")[:8] or None, scope=scope,
          tokens=" ".join(k for k in ("access_token", "refresh_token", "id_token")
                          if k in token))
    return token


def id_token_for(state: State, request: UAuthRequest, ctx: IssueContext, user: User, sub: str,
                 scope: str, *,
                 access_token: str | None = None, code: str | None = None,
                 extra: dict[str, Any] | None = None) -> str:
    """The ID token of a grant, from /token or the authorization endpoint: the claims asked
    for by name, ``at_hash``/``c_hash`` for what travels with it, the client's algorithm."""
    client: Client = request.client
    assert ctx.auth is not None, "an ID token is only issued for an authenticated user"
    custom = state.settings.custom_scopes
    named = claims_by_name(custom, user, requested_claims(request, ctx, "id_token", scope, custom))
    return mint_id_token(
        state, client_id=client.client_id, sub=sub, auth=ctx.auth, nonce=ctx.nonce,
        access_token=access_token, code=code, alg=id_token_alg(state, client),
        extra={**(extra or {}), **groups_claim(user, scope), **named},
    )


def requested_claims(request: UAuthRequest, ctx: IssueContext, target: str,
                     scope: str | None, custom_scopes: CustomScopes) -> list[str]:
    """Claim names the ``claims`` parameter asked for at ``target`` (userinfo or id_token).

    :param scope: the scope of the token being issued: a refresh that narrowed the grant's
        scope drops the claims of the scopes it left out (RFC 6749 §6).
    """
    names = list((ctx.requested_claims or {}).get(target, []))
    rotated = request.refresh_token if isinstance(request.refresh_token, RefreshToken) else None
    if scope is None or rotated is None:
        return names
    dropped = set(rotated.scope.split()) - set(scope.split())
    by_scope = claim_scopes(custom_scopes)
    return [name for name in names if by_scope.get(name) not in dropped]


def issue_refresh_token(state: State, request: UAuthRequest, ctx: IssueContext, user: User,
                        scope: str, sub: str) -> str:
    """Create and store a refresh token, here where the response that carries it is built.

    A rotation's successor keeps its family's absolute end, so it lives for the idle TTL or what
    is left of the family, whichever is shorter. It is added only when absent: a retried
    rotation (grace window) hands out the same successor, which the first attempt saved, or,
    when storage failed between the rotation and this save, did not.
    """
    raw = ctx.successor or secrets.token_urlsafe(32)
    auth = ctx.auth
    assert auth is not None, "a refresh token is only issued for an authenticated user"
    now = state.now()
    rotated = request.refresh_token if isinstance(request.refresh_token, RefreshToken) else None
    family_expires = rotated.family_expires_at if rotated is not None else (
        now + state.settings.refresh_token_ttl)
    ttl = max(min(state.settings.refresh_token_idle_ttl, family_expires - now), 1)
    record = RefreshToken(
        client_id=request.client.client_id, user_id=user.id, sub=sub, scope=scope,
        grant_id=str(ctx.grant_id), auth_time=auth.auth_time, issued_at=now,
        expires_at=now + ttl, family_expires_at=family_expires, amr=list(auth.amr),
        acr=auth.acr, sid=auth.sid, claims=ctx.requested_claims,
        resources=list(ctx.resources),
    )
    store_refresh_token(state.store, raw, record, ttl=ttl, successor=ctx.successor is not None)
    grant_type = request.payload.grant_type
    if rotated is None and grant_type == "authorization_code":  # a new family
        family_started(state, user.id, request.client.client_id, auth.sid, str(ctx.grant_id),
                       outlives_login="offline_access" in scope.split())
    elif rotated is None and grant_type == DEVICE_CODE_GRANT_TYPE:
        # The device's tokens do not depend on the browser session that approved them.
        start_family(state, user.id, request.client.client_id, str(ctx.grant_id))
    return raw


class IssuesTokens(Contextual):
    """Routes Authlib's ``generate_token`` to :func:`issue_tokens`."""

    WITH_ID_TOKEN = True

    def generate_token(self, user: User | None = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        return issue_tokens(self, user, scope or "", include_refresh_token=include_refresh_token,
                            with_id_token=self.WITH_ID_TOKEN)
