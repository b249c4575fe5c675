"""Our subclasses of Authlib's grants: where uauth's protocol rules live.

Authlib runs each flow; these classes supply storage, the scope and redirect-URI rules, PKCE
policy, and token minting (:func:`issue_tokens`, shared by every grant).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc6749.grants.authorization_code import validate_code_authorization_request
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDHybridGrant
from authlib.oidc.core.grants import OpenIDImplicitGrant

from .claims import claims_by_name
from .claims import claims_for_scopes
from .claims import subject
from .consents import grant_lifetime
from .consents import remember_grant
from .models import AuthorizationCode
from .models import Client
from .models import RefreshToken
from .models import User
from .refresh import REFRESH
from .refresh import find_refresh_token
from .refresh import record_rotation
from .refresh import retried_successor
from .responses import authorization_response
from .storage import hash_key
from .tokens import Authentication
from .tokens import mint_access_token
from .tokens import mint_id_token
from .tokens import revoke_grant
from .users import UserDirectory

if TYPE_CHECKING:
    from .extension import State
    from .server import UAuthRequest
    from .server import UAuthServer

log = logging.getLogger("uauth.grants")

CODE = "authorization_code"
#: Codes and request parameters longer than this are not worth a storage lookup.
MAX_CODE_LENGTH = 512
#: Access-token claim listing the claims the ``claims`` parameter asked /userinfo for. The
#: client can read it, and may: it holds only names the client itself requested.
USERINFO_CLAIMS = "userinfo_claims"


def is_openid(scope: str | None) -> bool:
    return "openid" in (scope_to_list(scope) or [])


def new_grant_id() -> str:
    return secrets.token_urlsafe(16)


def _state(grant: Any) -> State:
    state: State = grant.server.state
    return state


# --- token issuance shared by every grant ---------------------------------------------------


def wants_refresh_token(client: Client, scope: str) -> bool:
    """Refresh tokens go to clients allowed the grant that got ``offline_access`` consented
    (OIDC Core §11), or that are configured to always receive one."""
    if not client.check_grant_type("refresh_token"):
        return False
    return "offline_access" in scope.split() or client.always_issue_refresh_token


def id_token_alg(state: State, client: Client) -> str:
    """The client's registered ``id_token_signed_response_alg``, else ``UAUTH_SIGNING_ALG``."""
    alg = client.id_token_signed_response_alg or state.config["UAUTH_SIGNING_ALG"]
    if alg not in state.config["UAUTH_SIGNING_ALGS"]:
        log.error("client %s registered id_token_signed_response_alg %s, which "
                  "UAUTH_SIGNING_ALGS does not enable", client.client_id, alg)
        raise UnauthorizedClientError(
            description="The client's ID token signing algorithm is not enabled here.")
    return str(alg)


def issue_tokens(grant: Any, user: User | None, scope: str, *, include_refresh_token: bool,
                 with_id_token: bool) -> dict[str, Any]:
    """The token response body for one grant: an RFC 9068 access token, and as due a refresh
    token (persisted by ``save_token``) and an ID token."""
    state = _state(grant)
    request: UAuthRequest = grant.request
    client: Client = request.client
    auth: Authentication | None = request.auth
    rotated = request.refresh_token if isinstance(request.refresh_token, RefreshToken) else None
    if user is None:
        sub = client.client_id
    else:
        sub = rotated.sub if rotated is not None else subject(user, client)
    userinfo_claims = requested_claims(request, "userinfo")
    access_token, claims = mint_access_token(
        state, client_id=client.client_id, sub=sub, scope=scope, grant_id=request.grant_id,
        audience=request.audience,
        auth_time=auth.auth_time if (user is not None and auth is not None) else None,
        extra={USERINFO_CLAIMS: userinfo_claims} if userinfo_claims and user else None,
    )
    token: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.config["UAUTH_ACCESS_TOKEN_TTL"],
        "scope": scope,
        "created_at": claims["iat"],
    }
    # RFC 6749 §6: a new refresh token keeps the scope of the one it replaces, even when the
    # client narrowed the scope of this access token.
    granted = rotated.scope if rotated is not None else scope
    if include_refresh_token and user is not None and wants_refresh_token(client, granted):
        token["refresh_token"] = prepare_refresh_token(state, request, user, granted, sub)
    if with_id_token and user is not None and auth is not None and is_openid(scope):
        token["id_token"] = mint_id_token(
            state, client_id=client.client_id, sub=sub, auth=auth, nonce=request.nonce,
            access_token=access_token, alg=id_token_alg(state, client),
            extra=claims_by_name(user, requested_claims(request, "id_token")),
        )
    state.metrics.token_issued(getattr(grant, "GRANT_TYPE", None) or "unknown")
    return token


def requested_claims(request: UAuthRequest, target: str) -> list[str]:
    """Claim names the ``claims`` parameter asked for at ``target`` (userinfo or id_token)."""
    return list((request.requested_claims or {}).get(target, []))


def prepare_refresh_token(state: State, request: UAuthRequest, user: User, scope: str,
                          sub: str) -> str:
    """Create a refresh token; its record is saved by ``save_token`` after the response is built.

    A rotation's successor keeps its family's absolute end, so it lives for the idle TTL or what
    is left of the family, whichever is shorter.
    """
    raw = request.next_refresh_token or secrets.token_urlsafe(32)
    auth: Authentication = request.auth
    now = state.now()
    rotated = request.refresh_token if isinstance(request.refresh_token, RefreshToken) else None
    family_expires = rotated.family_expires_at if rotated is not None else (
        now + state.config["UAUTH_REFRESH_TOKEN_TTL"])
    ttl = max(min(state.config["UAUTH_REFRESH_TOKEN_IDLE_TTL"], family_expires - now), 1)
    record = RefreshToken(
        client_id=request.client.client_id, user_id=user.id, sub=sub, scope=scope,
        grant_id=str(request.grant_id), auth_time=auth.auth_time, issued_at=now,
        expires_at=now + ttl, family_expires_at=family_expires, amr=list(auth.amr),
        acr=auth.acr, sid=auth.sid, claims=request.requested_claims,
    )
    request.pending_refresh = (hash_key(raw), record.to_record(), ttl)
    return raw


def persist_refresh_token(state: State, request: UAuthRequest) -> None:
    if request.pending_refresh is None:
        return
    key, record, ttl = request.pending_refresh
    state.store.save(REFRESH, key, record, ttl=ttl, grant_id=record["grant_id"])
    request.pending_refresh = None


class IssuesTokens:
    """Routes Authlib's ``generate_token`` to :func:`issue_tokens`."""

    WITH_ID_TOKEN = True

    def generate_token(self, user: User | None = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        return issue_tokens(self, user, scope or "", include_refresh_token=include_refresh_token,
                            with_id_token=self.WITH_ID_TOKEN)


# --- the authorization endpoint --------------------------------------------------------------


def check_requested_scope(grant: Any) -> None:
    """Scope rules at the authorization endpoint.

    A scope is required. Scopes the provider does not know are an error in plain OAuth and
    ignored in an OpenID request (OIDC Core §3.1.2.1); scopes it knows but the client may not
    request are always ``invalid_scope``.
    """
    requested = scope_to_list(grant.request.payload.scope) or []
    if not requested:
        raise InvalidScopeError("A scope is required; OpenID Connect requests need 'openid'.")
    known = set(_state(grant).config["UAUTH_SCOPES"])
    unknown = [s for s in requested if s not in known]
    if unknown and "openid" not in requested:
        raise InvalidScopeError("The request includes a scope this provider does not know.")
    client: Client = grant.request.client
    if any(s in known and s not in client.allowed_scopes for s in requested):
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


class AuthorizationCodeGrant(IssuesTokens, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    validate_authorization_redirect_uri = staticmethod(check_redirect_uri)
    validate_requested_scope = check_requested_scope

    def create_authorization_response(self, redirect_uri: str, grant_user: User | None
                                      ) -> tuple[int, str, list[tuple[str, str]]]:
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        begin_grant(_state(self), self.request)
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        return authorization_response(self, redirect_uri, [("code", code)])

    def save_authorization_code(self, code: str, request: UAuthRequest) -> None:
        save_code(_state(self), code, request)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        if len(code) > MAX_CODE_LENGTH:
            return None
        state = _state(self)
        outcome = state.store.consume(CODE, hash_key(code))
        if outcome is None:
            return None
        record = AuthorizationCode.from_record(outcome.record)
        if not outcome.first:
            # RFC 6749 §4.1.2: a code used twice revokes what the first use obtained.
            revoke_grant(state, record.grant_id)
            state.metrics.replay(CODE)
            log.warning("authorization code replayed; revoked grant %s", record.grant_id[:8])
            return None
        if record.client_id != client.client_id:
            return None
        self.request.grant_id = record.grant_id
        self.request.nonce = record.nonce
        self.request.requested_claims = record.claims
        self.request.auth = Authentication(record.auth_time, tuple(record.amr), record.sid,
                                           record.acr)
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: consume() already spent it, and it stays to recognise replays."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = users_of(self).get(authorization_code.user_id)
        return user if user is not None and user.is_active else None


def begin_grant(state: State, request: UAuthRequest) -> None:
    """A new grant for ``request.user``: its id, remembered per user and client for as long as
    its tokens can live (refresh tokens only come with a code), so the person can revoke them
    from /account."""
    request.grant_id = new_grant_id()
    offline = ("code" in str(request.payload.response_type).split()
               and wants_refresh_token(request.client, request.scope))
    remember_grant(state.store, request.user.id, request.client.client_id, request.grant_id,
                   lives=grant_lifetime(state.config, offline=offline), now=state.now())


def save_code(state: State, code: str, request: UAuthRequest) -> None:
    """Store what a code stands for, under its digest, in the request's grant."""
    data = request.payload.data
    auth: Authentication = request.auth
    challenge = data.get("code_challenge")
    assert request.grant_id is not None
    record = AuthorizationCode(
        client_id=request.client.client_id,
        user_id=request.user.id,
        scope=request.scope,
        redirect_uri=request.payload.redirect_uri,
        grant_id=request.grant_id,
        auth_time=auth.auth_time,
        nonce=data.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=(data.get("code_challenge_method") or "plain") if challenge
        else None,
        amr=list(auth.amr),
        acr=auth.acr,
        sid=auth.sid,
        claims=request.requested_claims,
    )
    state.store.save(CODE, hash_key(code), record.to_record(),
                     ttl=state.config["UAUTH_CODE_TTL"], grant_id=record.grant_id)


# --- implicit and hybrid: tokens from the authorization endpoint ------------------------------


def normalize_response_type(response_type: str | None) -> str:
    """Multiple Response Types §3: the order of space-separated values does not matter."""
    return " ".join(sorted((response_type or "").split()))


class FrontChannelGrant:
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

    @classmethod
    def check_authorization_endpoint(cls, request: UAuthRequest) -> bool:
        wanted = normalize_response_type(request.payload.response_type)
        return wanted in {normalize_response_type(rt) for rt in cls.RESPONSE_TYPES}

    def validate_authorization_request(self) -> str:
        redirect_uri: str = validate_code_authorization_request(self)
        if not is_openid(self.request.scope):
            raise InvalidScopeError("This response type needs the openid scope.",
                                    redirect_uri=redirect_uri)
        types = self.request.payload.response_type.split()
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
        begin_grant(_state(self), request)
        types = set(request.payload.response_type.split())
        params: list[tuple[str, str]] = []
        code = access_token = None
        if "code" in types:
            code = generate_token(grants.AuthorizationCodeGrant.AUTHORIZATION_CODE_LENGTH)
            save_code(_state(self), code, request)
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
        extra = claims_by_name(user, requested_claims(request, "id_token"))
        if access_token is None and code is None:
            extra = {**claims_for_scopes(user, scope_to_list(request.scope) or []), **extra}
        client: Client = request.client
        state = _state(self)
        return mint_id_token(
            state, client_id=client.client_id, sub=subject(user, client),
            auth=request.auth, nonce=request.payload.data.get("nonce"),
            access_token=access_token, code=code, extra=extra, alg=id_token_alg(state, client),
        )


class ImplicitGrant(FrontChannelGrant, OpenIDImplicitGrant):  # type: ignore[misc]
    """``id_token`` and ``id_token token`` (OIDC Core §3.2), for clients registered for them."""


class HybridGrant(FrontChannelGrant, OpenIDHybridGrant):  # type: ignore[misc]
    """``code id_token``, ``code token``, ``code id_token token`` (OIDC Core §3.3); the code is
    redeemed at /token like any other (same grant, so a replay revokes these tokens too)."""


class Pkce(CodeChallenge):  # type: ignore[misc]
    """PKCE (RFC 7636) with uauth's policy on top of Authlib's checks.

    Public clients must send a challenge at the authorization endpoint (so must everyone under
    ``UAUTH_REQUIRE_PKCE``); ``plain`` is only for clients allowed it while the global switch
    is on; a verifier sent for a code issued without a challenge is refused (Authlib).
    """

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        client: Client = grant.request.client
        config = _state(grant).config
        if not data.get("code_challenge"):
            if client.is_public or config["UAUTH_REQUIRE_PKCE"]:
                raise InvalidRequestError("code_challenge is required (PKCE, RFC 7636).")
            return
        method = data.get("code_challenge_method") or "plain"
        if method == "plain" and not (config["UAUTH_ALLOW_PLAIN_PKCE"] and client.allow_plain_pkce):
            raise InvalidRequestError(
                "code_challenge_method 'plain' is not allowed for this client; use S256."
            )


# --- refresh tokens: rotation and reuse detection ------------------------------------------


class RefreshTokenGrant(IssuesTokens, grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation on every use and reuse detection (RFC 9700 §4.14.2).

    Authlib checks the client, that the token is this client's (``invalid_grant``) and that the
    scope is only narrowed (``invalid_scope``) before anything is spent; then the token is
    consumed. The one caller that consumes it first gets a successor; anyone presenting it again
    is a replay, which revokes the whole family, unless it is the client's retry within the
    grace window (see :func:`~uauth.refresh.retried_successor`).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        return find_refresh_token(_state(self), refresh_token)

    def authenticate_user(self, refresh_token: RefreshToken) -> User | None:
        user = users_of(self).get(refresh_token.user_id)
        return user if user is not None and user.is_active else None

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing to do: consume() spent it, and it stays to recognise reuse."""

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        state = _state(self)
        request: UAuthRequest = self.request
        presented = str(request.form["refresh_token"])
        token: RefreshToken = request.refresh_token
        outcome = state.store.consume(REFRESH, hash_key(presented))
        if outcome is None:
            raise InvalidGrantError("The refresh token is invalid or has expired.")
        retried = None
        if outcome.first:
            request.next_refresh_token = record_rotation(state, presented, token)
        else:
            retried = retried_successor(state, presented)
            if retried is None:
                revoke_grant(state, token.grant_id)
                state.metrics.replay(REFRESH)
                log.warning("refresh token reused; revoked grant %s", token.grant_id[:8])
                raise InvalidGrantError("The refresh token was already used; the grant is revoked.")
            request.next_refresh_token = retried
        # The first caller always gets its answer. Should the family be revoked meanwhile (by
        # a replay racing this request, or /revoke), the grant's deny-list marker refuses the
        # tokens minted here wherever they are used.
        user = self.authenticate_user(token)
        if user is None:
            raise InvalidGrantError("The user of this grant is no longer active.")
        request.user = user
        request.grant_id = token.grant_id
        request.auth = Authentication(token.auth_time, tuple(token.amr), token.sid, token.acr)
        request.requested_claims = token.claims
        body: dict[str, Any] = self.issue_token(user, token)
        if retried is not None:
            request.pending_refresh = None  # the first answer stored it already
        self.save_token(body)
        return 200, body, self.TOKEN_RESPONSE_HEADER


# --- client credentials (machine to machine) -------------------------------------------------

#: Scopes that only mean something for a user.
USER_ONLY_SCOPES = frozenset({"openid", "offline_access"})


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 §2: a resource the client may not obtain tokens for."""

    error = "invalid_target"


def requested_audience(request: UAuthRequest, client: Client) -> list[str] | None:
    """Resource indicators (RFC 8707 ``resource``, or the common ``audience``) of a request.

    Each must be registered for the client (``--audience``); none means the issuer.
    """
    wanted = [*request.payload.datalist.get("resource", []),
              *request.payload.datalist.get("audience", [])]
    if not wanted:
        return None
    if any(uri not in client.audiences for uri in wanted):
        raise InvalidTargetError("The requested resource is not registered for this client.")
    return list(dict.fromkeys(wanted))


class ClientCredentialsGrant(IssuesTokens, grants.ClientCredentialsGrant):  # type: ignore[misc]
    """A confidential client acting for itself (RFC 6749 §4.4).

    The access token's ``sub`` is the client id; there is no ID token and no refresh token. The
    scope is limited to what the client may request, never ``openid`` or ``offline_access``, and
    defaults to all of that when omitted (RFC 6749 §3.3).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    WITH_ID_TOKEN = False

    def validate_requested_scope(self) -> None:
        request: UAuthRequest = self.request
        client: Client = request.client
        requested = scope_to_list(request.payload.scope) or []
        if USER_ONLY_SCOPES.intersection(requested):
            raise InvalidScopeError("openid and offline_access need a user; this grant has none.")
        known = set(_state(self).config["UAUTH_SCOPES"])
        if any(s not in known or s not in client.allowed_scopes for s in requested):
            raise InvalidScopeError("The requested scope exceeds what this client may request.")
        request.audience = requested_audience(request, client)

    def granted_scope(self) -> str:
        request: UAuthRequest = self.request
        client: Client = request.client
        requested = scope_to_list(request.payload.scope)
        if requested:
            return " ".join(dict.fromkeys(requested))
        known = set(_state(self).config["UAUTH_SCOPES"])
        return " ".join(s for s in client.scope.split()
                        if s in known and s not in USER_ONLY_SCOPES)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        body: dict[str, Any] = self.generate_token(scope=self.granted_scope(),
                                                   include_refresh_token=False)
        self.save_token(body)
        return 200, body, self.TOKEN_RESPONSE_HEADER


def users_of(grant: Any) -> UserDirectory:
    return _state(grant).users


def register_grants(server: UAuthServer) -> None:
    server.register_grant(AuthorizationCodeGrant, [Pkce(required=True)])
    server.register_grant(ImplicitGrant)
    server.register_grant(HybridGrant, [Pkce(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
