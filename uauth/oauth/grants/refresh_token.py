"""The refresh token grant: rotation on every use and reuse detection (RFC 9700 §4.14.2)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.hooks import hooked

from uauth.core.audit import REPLAY_DETECTED
from uauth.core.audit import audit
from uauth.core.models import RefreshToken
from uauth.core.models import User
from uauth.core.records import REFRESH
from uauth.core.refresh import consume_refresh_token
from uauth.core.refresh import read_refresh_token
from uauth.core.refresh import retried_successor
from uauth.core.resources import check_resources
from uauth.core.resources import requested
from uauth.core.tokens import Authentication
from uauth.core.tokens import grant_revoked
from uauth.core.tokens import revoke_grant
from uauth.storage import hash_key

from .common import active_user
from .common import state_of
from .context import IssueContext
from .issuance import IssuesTokens

if TYPE_CHECKING:
    from uauth.oauth.server import UAuthRequest

log = logging.getLogger("uauth.grants")


class RefreshTokenGrant(IssuesTokens, grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation on every use and reuse detection (RFC 9700 §4.14.2).

    Authlib checks the client, that the token is this client's (``invalid_grant``) and that the
    scope is only narrowed (``invalid_scope``) before anything is spent; then the token is
    consumed. The one caller that consumes it first gets a successor; anyone presenting it again
    is a replay, which revokes the whole family, unless it is the client's retry within the
    grace window (see :func:`~uauth.core.refresh.retried_successor`).

    The family's deny-list entry and the token's user travel with the spend (one round trip
    fewer): a token of a revoked family or of a disabled user is spent and refused, which
    leaves it as useless as refusing it unspent would. The new tokens' writes go with the
    spend's (one commit on SQLite, where a failed commit leaves the token unspent); the tokens
    are signed after.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none",
                                   "private_key_jwt"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        """Checked in :meth:`create_token_response`, in the batch of the spend."""

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        """The token's record; its deny-list entry and user are read with its spend."""
        return read_refresh_token(state_of(self), refresh_token)

    def authenticate_user(self, refresh_token: RefreshToken) -> User | None:
        return active_user(self, refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing to do: consume() spent it, and it stays to recognise reuse."""

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        state = state_of(self)
        request: UAuthRequest = self.request
        # One batch from the token's read to the response's writes: the deny list and the
        # user read ahead ride with the spend, and the new tokens' writes go with the spend's
        # (one commit on SQLite). Issuance ends it before anything is signed.
        with ExitStack() as spend:
            spend.enter_context(state.store.batch())
            # Authlib's checks (the client, the token is this client's, the scope only
            # narrowed) before anything is spent
            grants.RefreshTokenGrant.validate_token_request(self)
            presented = str(request.form["refresh_token"])
            digest = hash_key(presented)
            token: RefreshToken = request.refresh_token
            # RFC 8707 §2.2: narrow to granted resources, never widen (checked before the token
            # is spent); the successor keeps every granted resource.
            wanted = requested(request.payload.data)
            audience = check_resources(state.settings, request.client, wanted,
                                       within=token.resources
                                       ) if wanted else (list(token.resources) or None)
            outcome, successor = consume_refresh_token(state, presented, token)
            # The winner is not refused for the revocation a replay of its own token caused
            # after the spend (a cluster may read the deny list that late).
            first = outcome is not None and outcome.first
            revoked = grant_revoked(state.store, token.grant_id, spent=digest if first else None)
            user = self.authenticate_user(token)
            if outcome is None or revoked:
                raise InvalidGrantError("The refresh token is invalid or has expired.")
            if not first:
                retried = retried_successor(state, presented)
                if retried is None:
                    revoke_grant(state, token.grant_id, replayed=digest)
                    state.metrics.replay(REFRESH)
                    log.warning("refresh token reused; revoked grant %s", token.grant_id[:8])
                    audit(REPLAY_DETECTED, client_id=token.client_id, user_id=token.user_id,
                          kind=REFRESH, grant=token.grant_id[:8])
                    raise InvalidGrantError(
                        "The refresh token was already used; the grant is revoked.")
                successor = retried
            # The first caller gets its answer. Should the family be revoked meanwhile (by a
            # replay racing this request, or /revoke), the grant's deny-list marker refuses the
            # tokens minted here wherever they are used.
            if user is None:
                raise InvalidGrantError("The user of this grant is no longer active.")
            request.user = user
            self.context = IssueContext(auth=Authentication.of(token), grant_id=token.grant_id,
                                        requested_claims=token.claims, successor=successor,
                                        audience=audience, resources=list(token.resources),
                                        spend=spend)
            body: dict[str, Any] = self.issue_token(user, token)
        self.save_token(body)
        return 200, body, self.TOKEN_RESPONSE_HEADER
