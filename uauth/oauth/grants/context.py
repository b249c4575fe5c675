"""The typed context tokens are issued with, gathered by the grant before it issues them.

Authlib creates one grant object per request; :attr:`Contextual.context` is that grant's own
:class:`IssueContext`. The authorization view hands over what the login established (how the
user authenticated, the claims asked for by name) as one object before the grant issues; the
code and refresh grants fill it from the record they redeem. Nothing is parked on the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
    #: A refresh rotation's successor: the value of the token that replaces the one presented
    #: (the same one again for a retry within the grace window).
    successor: str | None = None


class Contextual:
    """Mixin of every uauth grant: its :class:`IssueContext`, empty until the flow fills it."""

    @cached_property
    def context(self) -> IssueContext:
        return IssueContext()
