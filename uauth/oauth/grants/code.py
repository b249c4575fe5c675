"""The authorization code grant (RFC 6749 §4.1) and uauth's PKCE policy (RFC 7636)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from uauth.core.audit import REPLAY_DETECTED
from uauth.core.audit import audit
from uauth.core.codes import consume_code
from uauth.core.codes import save_code as store_code
from uauth.core.consents import grant_lifetime
from uauth.core.consents import remember_grant
from uauth.core.grantlimits import remember_pending
from uauth.core.grantlimits import remember_session_grant
from uauth.core.grantlimits import session_grant
from uauth.core.models import AuthorizationCode
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.records import CODE
from uauth.core.resources import check_resources
from uauth.core.resources import requested
from uauth.core.tokens import Authentication
from uauth.core.tokens import revoke_grant
from uauth.core.users import expect_user
from uauth.oauth.responses import authorization_response
from uauth.storage import Record

from .common import MAX_CODE_LENGTH
from .common import active_user
from .common import check_redirect_uri
from .common import check_requested_scope
from .common import new_code
from .common import new_grant_id
from .common import state_of
from .context import IssueContext
from .issuance import IssuesTokens
from .issuance import brings_refresh_tokens

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthRequest

log = logging.getLogger("uauth.grants")


class AuthorizationCodeGrant(IssuesTokens, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none",
                                   "private_key_jwt"]

    validate_authorization_redirect_uri = staticmethod(check_redirect_uri)
    validate_requested_scope = check_requested_scope

    def generate_authorization_code(self) -> str:
        return new_code()

    def create_authorization_response(self, redirect_uri: str, grant_user: User | None
                                      ) -> tuple[int, str, list[tuple[str, str]]]:
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        with state_of(self).store.batch():  # the grant's notes and the code: one round trip
            begin_grant(state_of(self), self.request, self.context)
            code = self.generate_authorization_code()
            self.save_authorization_code(code, self.request)
        return authorization_response(self, redirect_uri, [("code", code)])

    def save_authorization_code(self, code: str, request: UAuthRequest) -> None:
        save_code(state_of(self), code, request, self.context)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        if len(code) > MAX_CODE_LENGTH:
            return None
        state = state_of(self)
        targets = IssueContext()

        def check_targets(found: Record) -> None:
            # RFC 8707 §2.2: the token request may name resources among those authorized (or,
            # for a code that named none, the client's own audiences); checked before the code
            # is spent.
            granted = list(found.get("resources") or [])
            wanted = requested(self.request.payload.data)
            targets.resources = granted
            targets.audience = check_resources(
                state.settings, client, wanted, within=granted or client.audiences
            ) if wanted else (granted or None)
            expect_user(state.users, str(found.get("user_id", "")))

        with state.store.batch():  # the code's user is read as the code is spent: one trip
            outcome = consume_code(state.store, code, client.client_id, before=check_targets)
            if outcome is None:
                return None
            record = AuthorizationCode.from_record(outcome.record)
            if not outcome.first:
                # RFC 6749 §4.1.2: a code used twice revokes what the first use obtained.
                revoke_grant(state, record.grant_id)
                state.metrics.replay(CODE)
                log.warning("authorization code replayed; revoked grant %s", record.grant_id[:8])
                audit(REPLAY_DETECTED, client_id=record.client_id, user_id=record.user_id,
                      kind=CODE, grant=record.grant_id[:8])
                return None
            self.code_user = active_user(self, record.user_id)
        self.context = IssueContext(auth=Authentication.of(record), grant_id=record.grant_id,
                                    nonce=record.nonce, requested_claims=record.claims,
                                    audience=targets.audience, resources=targets.resources)
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: consume() already spent it, and it stays to recognise replays."""

    #: The user of the code this request spent, read as it was spent.
    code_user: User | None = None

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = self.code_user
        if user is not None and user.id == authorization_code.user_id:
            return user
        return active_user(self, authorization_code.user_id)


def begin_grant(state: State, request: UAuthRequest, ctx: IssueContext) -> None:
    """A grant for ``request.user``: its id, remembered per user and client for as long as
    its tokens can live (refresh tokens only come with a code), so the person can revoke them
    from /account, and in its login session, so logout revokes it and notifies the client.

    Bounded (:mod:`uauth.core.grantlimits`): a grant without refresh tokens is reused for the
    same client in the same session; a code that may bring refresh tokens gets a short pending
    note until its family starts, and families per user and client are capped."""
    client_id = request.client.client_id
    offline = brings_refresh_tokens(request.client, str(request.payload.response_type),
                                    request.scope)
    sid = ctx.auth.sid if ctx.auth is not None else None
    if offline:  # its own grant; the note grows into a family's when its refresh token comes
        ctx.grant_id = new_grant_id()
        remember_pending(state, request.user.id, client_id, ctx.grant_id, sid)
        return
    keep = int(state.settings.session_ttl) if sid else None
    reused = session_grant(state, sid, client_id, ctx.held_grant) if sid else None
    ctx.grant_id = reused or new_grant_id()
    if sid and reused is None:
        remember_session_grant(state, sid, client_id, ctx.grant_id, ttl=int(keep or 0))
    remember_grant(state.store, request.user.id, client_id, ctx.grant_id,
                   lives=grant_lifetime(state.settings, offline=False), now=state.now(),
                   sid=sid, revoke_at_logout=True, keep=keep, offline=False)


def save_code(state: State, code: str, request: UAuthRequest, ctx: IssueContext) -> None:
    """Store what a code stands for, under its digest, in the context's grant."""
    data = request.payload.data
    auth = ctx.auth
    challenge = data.get("code_challenge")
    assert auth is not None and ctx.grant_id is not None
    record = AuthorizationCode(
        client_id=request.client.client_id,
        user_id=request.user.id,
        scope=request.scope,
        redirect_uri=request.payload.redirect_uri,
        grant_id=ctx.grant_id,
        auth_time=auth.auth_time,
        nonce=data.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=(data.get("code_challenge_method") or "plain") if challenge
        else None,
        amr=list(auth.amr),
        acr=auth.acr,
        sid=auth.sid,
        claims=ctx.requested_claims,
        resources=list(ctx.resources),
    )
    store_code(state.store, code, record, ttl=state.settings.code_ttl)


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
        settings = state_of(grant).settings
        if not data.get("code_challenge"):
            if client.is_public or settings.require_pkce:
                raise InvalidRequestError("code_challenge is required (PKCE, RFC 7636).")
            return
        method = data.get("code_challenge_method") or "plain"
        if method == "plain" and not (settings.allow_plain_pkce and client.allow_plain_pkce):
            raise InvalidRequestError(
                "code_challenge_method 'plain' is not allowed for this client; use S256."
            )

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        """A code issued with a challenge redeemed without its verifier is ``invalid_grant``
        (RFC 7636 §4.6: the grant does not verify), not a malformed request."""
        request = grant.request
        if not request.form.get("code_verifier") and self.get_authorization_code_challenge(
                request.authorization_code):
            raise InvalidGrantError("code_verifier is required: the code was issued with a "
                                    "code_challenge (RFC 7636).")
        super().validate_code_verifier(grant, result)
