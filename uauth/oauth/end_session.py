"""OpenID Connect RP-Initiated Logout 1.0, on Authlib's ``EndSessionEndpoint``.

Authlib parses the request, checks ``client_id`` against the hint's ``aud``, matches
``post_logout_redirect_uri`` exactly and appends ``state``. uauth adds its own rules:

- the ``id_token_hint`` is checked with :func:`uauth.core.tokens.decode_signed` (our keys, each with
  its one algorithm, our issuer, ``typ: JWT`` so an access or logout token is no hint), expired
  or not (§2); a modified or foreign hint is an error, shown as a page;
- a ``post_logout_redirect_uri`` that is not registered for the client is an error too, never
  silently dropped (§3), so a misconfigured client is noticed;
- without a hint, a ``client_id`` naming a client that registered the URI is the "other means"
  of confirming it (§3); the person confirms the logout itself on our page first.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint
from authlib.oidc.rpinitiated import EndSessionRequest

from uauth.core.claims import SubjectIndex
from uauth.core.claims import subject
from uauth.core.models import Client
from uauth.core.models import LoginSession
from uauth.core.models import User
from uauth.core.tokens import ID_TOKEN_TYPES
from uauth.core.tokens import InvalidToken
from uauth.core.tokens import decode_signed


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    def validate_request(self, request: Any) -> EndSessionRequest:
        validated: EndSessionRequest = super().validate_request(request)
        if request.payload.data.get("post_logout_redirect_uri") and not validated.redirect_uri:
            raise InvalidRequestError(
                "The post_logout_redirect_uri is not registered for this client.")
        return validated

    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        # Replaces Authlib's joserfc check (which re-imports the JWKS per call and accepts
        # any token signed by our keys) with the one every uauth JWT goes through.
        try:
            return decode_signed(self.server.state, id_token_hint, typ=ID_TOKEN_TYPES,
                                 audience=None, verify_exp=False)
        except InvalidToken:
            raise InvalidRequestError(
                "The id_token_hint is not an ID token issued by this provider.") from None

    def _is_valid_post_logout_redirect_uri(self, client: Client, uri: str) -> bool:
        return uri in client.post_logout_redirect_uris

    def is_post_logout_redirect_uri_legitimate(self, request: Any, uri: str, client: Client,
                                               logout_hint: str | None) -> bool:
        return bool(request.payload.data.get("client_id"))

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """Nothing here: the browser's session is the web layer's, which ends it (the cookie and
        the stored session) before asking for this endpoint's response."""


def needs_confirmation(subjects: SubjectIndex, validated: EndSessionRequest, login: LoginSession,
                       user: User) -> bool:
    """Ask the person unless a valid hint names this very session, or this user (§6: a logout
    request without a valid hint could be anyone's, sent to log people out)."""
    claims = validated.id_token_claims
    if claims is None:
        return True
    if claims.get("sid") == login.sid:
        return False
    client = validated.client
    return client is None or claims.get("sub") != subject(subjects, user, client)
