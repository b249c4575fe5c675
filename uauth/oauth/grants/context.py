"""The typed context tokens are issued with, gathered by the grant before it issues them.

Authlib creates one grant object per request; :attr:`Contextual.context` is that grant's own
:class:`IssueContext`. The authorization view hands over what the login established (how the
user authenticated, the claims asked for by name) as one object before the grant issues; the
code and refresh grants fill it from the record they redeem. Nothing is parked on the request.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import field
from functools import cached_property

from uauth.core.grantlimits import HeldGrant
from uauth.core.tokens import Authentication


@dataclass
class IssueContext:
    """What one grant's tokens carry besides the user, client and scope."""

    #: How and when the user authenticated (becomes ``auth_time``, ``amr``, ``acr``, ``sid``).
    auth: Authentication | None = None
    #: The grant (token family) the issued tokens belong to; set when the grant begins or is
    #: redeemed.
    grant_id: str | None = None
    #: The authorization request's ``nonce``, for the ID token.
    nonce: str | None = None
    #: Claim names asked for by the ``claims`` parameter: ``{"userinfo": [...],
    #: "id_token": [...]}`` (see :class:`uauth.oauth.authrequest.RequestedClaims`).
    requested_claims: dict[str, list[str]] | None = None
    #: Audiences (RFC 8707 resource indicators) the access token is for; None: the issuer.
    audience: list[str] | None = None
    #: Resources (RFC 8707) granted by the authorization request, the code or the refresh
    #: token: stored with the code and the refresh token; a later request may only narrow
    #: to them (:mod:`uauth.core.resources`).
    resources: list[str] = field(default_factory=list)
    #: A refresh rotation's successor: the value of the token that replaces the one presented
    #: (the same one again for a retry within the grace window).
    successor: str | None = None
    #: The grant the login session already held for the client, read with the session at
    #: ``/authorize`` (None: not read; the grant's beginning reads it).
    held_grant: HeldGrant | None = None
    #: The batch (``Store.batch``) a grant spent what it redeems in, left open for the token
    #: response's writes: on SQLite the spend and the writes are one commit. Issuance closes
    #: it once the writes are held, before anything is signed.
    spend: ExitStack | None = None


class Contextual:
    """Mixin of every uauth grant: its :class:`IssueContext`, empty until the flow fills it."""

    @cached_property
    def context(self) -> IssueContext:
        return IssueContext()
