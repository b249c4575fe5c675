"""Small dataclasses for what uauth stores, with the Authlib mixin methods they must answer.

Records round-trip through :meth:`Model.to_record` / :meth:`Model.from_record`; unknown fields
in a stored record are ignored, so a newer uauth can read what an older one wrote and back.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oauth2.rfc6749.util import scope_to_list

from uauth.storage import Record
from uauth.storage import hash_key

from .loopback import redirect_uri_matches

M = TypeVar("M", bound="Model")


class Model:
    """Fields hold JSON values only (no nested models), so a shallow dict is the record; the
    field names are computed once per class, not on every load (this runs on every request)."""

    @classmethod
    def field_names(cls) -> frozenset[str]:
        names: frozenset[str] | None = cls.__dict__.get("_field_names")
        if names is None:
            names = frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            cls._field_names = names  # type: ignore[attr-defined]
        return names

    def to_record(self) -> Record:
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def from_record(cls: type[M], record: Record) -> M:
        names = cls.field_names()
        return cls(**{k: v for k, v in record.items() if k in names})


#: Client authentication methods at the token endpoint, secret-based first.
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
#: Client authentication with a JWT signed by the client's own key (RFC 7523 §2.2).
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (*SECRET_AUTH_METHODS, "none", PRIVATE_KEY_JWT)
#: How a client came to exist: an operator's CLI, dynamic registration (RFC 7591), or its
#: client ID metadata document (an https URL as client_id).
OPERATOR, DYNAMIC, METADATA_DOCUMENT = "operator", "dynamic", "metadata_document"
#: Authorization response modes (OAuth 2.0 Multiple Response Types; Form Post Response Mode).
RESPONSE_MODES = ("query", "fragment", "form_post")


@dataclass
class Client(Model, ClientMixin):  # type: ignore[misc]
    """A registered relying party.

    ``secret_hash`` is the SHA-256 of a 256-bit random secret: enough to make a stolen
    database useless, and microseconds to check on every token request.
    """

    client_id: str
    name: str
    redirect_uris: list[str]
    secret_hash: str | None = None
    token_endpoint_auth_method: str = "client_secret_basic"
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    response_types: list[str] = field(default_factory=lambda: ["code"])
    scope: str = "openid profile email address phone groups offline_access"
    allowed_origins: list[str] = field(default_factory=list)
    first_party: bool = False
    allow_plain_pkce: bool = False
    always_issue_refresh_token: bool = False
    created_at: int = 0
    #: ``query``, ``fragment`` or ``form_post`` instead of the response type's default
    #: (never ``query`` for tokens); None: the default of OAuth 2.0 Multiple Response Types.
    default_response_mode: str | None = None
    #: Resource indicators (RFC 8707) this client may name as the audience of its tokens.
    audiences: list[str] = field(default_factory=list)
    #: A resource server: may introspect access tokens issued to any client (RFC 7662 §4).
    introspect_any_token: bool = False
    #: Where RP-initiated logout may send the browser afterwards (exact match).
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    #: OpenID Connect Back-Channel Logout 1.0: where logout tokens are POSTed.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    #: Attribute names a user must have before returning to this client (beyond the global ones).
    required_attributes: list[str] = field(default_factory=list)
    #: ``public`` or ``pairwise`` (OIDC Core §8). Records from before pairwise existed are public.
    subject_type: str = "public"
    #: Registered https URL of a JSON array listing every redirect URI (OIDC Registration §5).
    sector_identifier_uri: str | None = None
    #: The host pairwise subjects are computed for; fixed at registration.
    sector_identifier: str | None = None
    #: Algorithm of this client's ID tokens (OIDC Dynamic Registration §2); None: the default.
    id_token_signed_response_alg: str | None = None
    #: Only members of one of these groups may sign in to this client (empty: everyone).
    allowed_groups: list[str] = field(default_factory=list)
    #: Users must present a second factor to sign in to this client (``--require-mfa``).
    require_mfa: bool = False
    #: ``jwt`` (RFC 9068) or ``opaque`` (a reference to stored claims, checked by introspection
    #: or the embedding app). Records from before the choice existed are ``jwt``.
    access_token_format: str = "jwt"
    #: Authorization requests must come through /par (RFC 9126 §6).
    require_pushed_authorization_requests: bool = False
    #: Public keys the client signs request objects and private_key_jwt assertions with (an
    #: inline JWKS, RFC 7517), or where to fetch them (https).
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    #: Accept request objects with ``alg: none`` from this client (OIDC Core §6.1).
    allow_unsigned_request_objects: bool = False
    #: ``operator``, ``dynamic`` or ``metadata_document`` (see :data:`OPERATOR`).
    registration: str = OPERATOR
    #: Shown on the consent page as the client says it (registration / metadata document).
    client_uri: str | None = None
    logo_uri: str | None = None
    #: ``web`` or ``native`` (OIDC Registration §2).
    application_type: str = "web"
    #: Digest of the RFC 7592 registration access token of a dynamic client.
    registration_token_hash: str | None = None

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def self_registered(self) -> bool:
        """Registered by no operator: dynamic registration or a metadata document."""
        return self.registration != OPERATOR

    @property
    def allowed_scopes(self) -> set[str]:
        return set(self.scope.split())

    # --- authlib ClientMixin -------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: only unambiguous when exactly one is registered.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = self.allowed_scopes
        return " ".join(s for s in dict.fromkeys(scope_to_list(scope)) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string match, no normalisation (RFC 9700 §2.1, §4.1.3), except the port of a
        # loopback redirect URI (RFC 8252 §7.3).
        return redirect_uri_matches(redirect_uri, self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(hash_key(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        if self.token_endpoint_auth_method == PRIVATE_KEY_JWT:
            return method == PRIVATE_KEY_JWT
        return method in SECRET_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return " ".join(sorted(response_type.split())) in {
            " ".join(sorted(rt.split())) for rt in self.response_types
        }

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class User(Model):
    """A person who logs in. Profile claims live in ``profile`` (OIDC standard claim names)."""

    id: str
    username: str
    password_hash: str | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    created_at: int = 0
    updated_at: int = 0
    #: Names of the groups the person belongs to (:mod:`uauth.core.groups`): the ``groups`` claim.
    groups: list[str] = field(default_factory=list)
    #: May use the admin console (``/admin``).
    admin: bool = False

    # flask-login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return not self.disabled

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.id


@dataclass
class AuthorizationCode(Model, AuthorizationCodeMixin):  # type: ignore[misc]
    """What a code stands for; stored under ``hash_key(code)``, single use."""

    client_id: str
    user_id: str
    scope: str
    redirect_uri: str | None
    grant_id: str
    auth_time: int
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    amr: list[str] = field(default_factory=list)
    acr: str | None = None
    sid: str | None = None
    claims: dict[str, Any] | None = None
    #: Resources (RFC 8707) the authorization request named and the user allowed.
    resources: list[str] = field(default_factory=list)

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope



@dataclass
class RefreshToken(Model, TokenMixin):  # type: ignore[misc]
    """What a refresh token stands for; stored under ``hash_key(token)``, used once (rotation).

    It carries what the original authentication established, so tokens minted from it keep
    ``sub``, ``auth_time``, ``amr``, ``acr`` and ``sid`` (OIDC Core §12.2).
    """

    client_id: str
    user_id: str
    sub: str
    scope: str
    grant_id: str
    auth_time: int
    issued_at: int
    expires_at: int
    #: The family's absolute end (``UAUTH_REFRESH_TOKEN_TTL`` after the first token).
    family_expires_at: int
    amr: list[str] = field(default_factory=list)
    acr: str | None = None
    sid: str | None = None
    #: Claim names the ``claims`` request parameter asked for, kept for every refresh.
    claims: dict[str, Any] | None = None
    #: Resources (RFC 8707) granted: a refresh may narrow to these, never widen.
    resources: list[str] = field(default_factory=list)

    def check_client(self, client: ClientMixin) -> bool:
        return bool(self.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope


@dataclass
class LoginSession(Model):
    """One browser's single sign-on session at the provider (see :mod:`uauth.core.sessions`).

    Stored under ``key``, the digest of the random handle in the browser's cookie; ``sid`` is
    the public id sent to clients in ID tokens and logout tokens, never a way in.
    """

    key: str
    sid: str
    user_id: str
    auth_time: int
    expires_at: int
    last_seen: int
    amr: list[str] = field(default_factory=lambda: ["pwd"])
    created_at: int = 0
    user_agent: str = ""

    def ttl(self, now: int) -> int:
        """Seconds left before the absolute end of the session (never below 1)."""
        return max(self.expires_at - now, 1)
