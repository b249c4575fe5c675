"""Dynamic client registration (RFC 7591) and its management (RFC 7592), on Authlib's
:class:`ClientRegistrationEndpoint` and :class:`ClientConfigurationEndpoint`.

``UAUTH_REGISTRATION`` decides who may register:

- ``off`` (default): nobody; the endpoint answers 404 and discovery does not advertise it;
- ``token``: whoever holds an initial access token an operator created with
  ``uauth registration token create`` (single or limited use, with an expiry);
- ``open``: anyone, within a policy: only ``UAUTH_REGISTRATION_SCOPES``, never first-party
  (consent is always asked), at most ``UAUTH_REGISTRATION_RATE`` registrations per address
  and hour, and clients unused for ``UAUTH_REGISTRATION_UNUSED_TTL`` are removed by
  ``uauth client prune``.

Authlib validates the metadata's syntax; :func:`uauth.core.clients.register_client` applies the
same rules as for an operator's client (redirect URIs, auth methods, keys). A registered client
gets a registration access token (stored as a digest) to read, update or delete itself at its
``registration_client_uri``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591 import InvalidClientMetadataError
from authlib.oauth2.rfc7591 import InvalidRedirectURIError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from authlib.oidc.registration import ClientMetadataClaims as OIDCClientMetadataClaims

from uauth.core.audit import audit
from uauth.core.clients import Registration as ClientRegistration
from uauth.core.clients import RegistrationError
from uauth.core.clients import get_client
from uauth.core.clients import register_client
from uauth.core.clients import registration_rules
from uauth.core.clients import remove_client
from uauth.core.clients import save_client
from uauth.core.loopback import without_port
from uauth.core.models import DYNAMIC
from uauth.core.models import PRIVATE_KEY_JWT
from uauth.core.models import Client
from uauth.core.records import REGISTRATION_RATE
from uauth.core.registration import allowed_scopes
from uauth.core.registration import forget_used
from uauth.core.registration import spend_initial_token
from uauth.storage import hash_key

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthServer

CLIENT_REGISTERED = "client.registered"
CLIENT_UPDATED = "client.updated"
CLIENT_DELETED = "client.deleted"
REGISTRATION_REFUSED = "client.registration_refused"

#: Grant types a self-registered client may use; client credentials only with an operator's
#: initial access token.
OPEN_GRANTS = ("authorization_code", "refresh_token")
#: Metadata uauth keeps; everything else a client sends is dropped (RFC 7591 §3.2.1 lets the
#: server replace or ignore values, and the response says what was registered).
APPLICATION_TYPES = ("web", "native")


class TooManyRegistrations(OAuth2Error):  # type: ignore[misc]
    error = "invalid_request"
    status_code = 429

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", "3600")]


class InvalidInitialToken(OAuth2Error):  # type: ignore[misc]
    """RFC 7591 §3, RFC 7592 §2 (RFC 6750 §3.1): a missing or bad initial or registration
    access token."""

    error = "invalid_token"
    status_code = 401

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(),
                ("WWW-Authenticate", f'Bearer error="invalid_token", '
                                     f'error_description="{self.description}"')]


# --- requests ---------------------------------------------------------------------------------

class _JsonPayload:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class JsonRequest:
    """An RFC 7591/7592 request as Authlib's endpoints read it: method, headers, JSON body."""

    def __init__(self, method: str, uri: str, headers: Any, data: dict[str, Any],
                 client_id: str | None = None) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers
        self.payload = _JsonPayload(data)
        self.path_client_id = client_id
        self.remote_addr: str | None = None
        self.credential: Any = None
        self.client: Any = None


def bearer(request: JsonRequest) -> str | None:
    header = request.headers.get("Authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- registration -----------------------------------------------------------------------------

def registration_client_uri(state: State, client_id: str) -> str:
    parts = urlsplit(state.issuer)
    prefix = state.settings.url_prefix
    return f"{parts.scheme}://{parts.netloc}{prefix}/register/{client_id}"


def check_application_type(application_type: str, redirect_uris: list[str],
                           grant_types: list[str]) -> None:
    """OIDC Registration §2: native clients redirect to a private-use scheme or loopback
    http; web clients never to a private-use scheme, and implicit ones only to https on a
    host other than localhost."""
    if application_type not in APPLICATION_TYPES:
        raise InvalidClientMetadataError("application_type must be web or native.")
    for uri in redirect_uris:
        scheme = urlsplit(uri).scheme.lower()
        loopback = without_port(uri) is not None
        if application_type == "native" and scheme in ("http", "https") and not loopback:
            raise InvalidRedirectURIError(
                "A native client redirects to a private-use scheme or http on loopback.")
        if application_type == "web" and scheme not in ("http", "https"):
            raise InvalidRedirectURIError("A web client redirects to https (or loopback http).")
        if application_type == "web" and "implicit" in grant_types and (
                scheme != "https" or urlsplit(uri).hostname in ("localhost", "127.0.0.1", "::1")):
            raise InvalidRedirectURIError(
                "A web client using the implicit grant redirects to https, never localhost.")


def client_from_metadata(state: State, metadata: dict[str, Any], *,
                         client_id: str | None = None) -> tuple[Client, str | None]:
    """A new (or, with ``client_id``, rebuilt) dynamic client from validated metadata, under
    uauth's registration rules and the registration policy; not saved: the caller saves it
    with what it adds (the registration token's digest)."""
    mode = state.settings.registration
    redirect_uris = list(metadata.get("redirect_uris") or [])
    method = metadata.get("token_endpoint_auth_method") or "client_secret_basic"
    grants = list(metadata.get("grant_types") or ["authorization_code"])
    allowed_grants = (*OPEN_GRANTS, "client_credentials") if mode == "token" else OPEN_GRANTS
    refused = [g for g in grants if g not in allowed_grants]
    if refused:
        raise InvalidClientMetadataError(
            f"grant_types may list {', '.join(allowed_grants)}; not {', '.join(refused)}.")
    if "refresh_token" not in grants and "authorization_code" in grants:
        grants.append("refresh_token")
    response_types = list(metadata.get("response_types") or ["code"])
    if response_types != ["code"]:
        raise InvalidClientMetadataError("response_types may only be code.")
    application_type = metadata.get("application_type") or "web"
    check_application_type(application_type, redirect_uris, grants)
    offered = allowed_scopes(state.settings)
    asked = (metadata.get("scope") or "").split()
    unknown = [s for s in asked if s not in offered]
    if unknown:
        raise InvalidClientMetadataError(
            f"scope may only list {' '.join(offered)}; not {' '.join(unknown)}.")
    scope = " ".join(asked) if asked else " ".join(offered)
    name = str(metadata.get("client_name") or "").strip()[:100]
    if not name:
        host = urlsplit(redirect_uris[0]).hostname if redirect_uris else None
        name = f"Unnamed application ({host})" if host else "Unnamed application"
    try:
        registration = ClientRegistration(
            name=name, redirect_uris=redirect_uris, public=method == "none",
            grant_types=grants,
            response_types=response_types if "authorization_code" in grants else None,
            scope=scope, token_endpoint_auth_method=method,
            subject_type=metadata.get("subject_type") or None,
            id_token_signed_response_alg=metadata.get("id_token_signed_response_alg"),
            post_logout_redirect_uris=metadata.get("post_logout_redirect_uris") or (),
            jwks=metadata.get("jwks") if method == PRIVATE_KEY_JWT else None,
            jwks_uri=metadata.get("jwks_uri") if method == PRIVATE_KEY_JWT else None,
            registration=DYNAMIC, client_uri=metadata.get("client_uri"),
            logo_uri=metadata.get("logo_uri"), application_type=application_type,
            client_id=client_id)
        return register_client(state.store, registration, registration_rules(state),
                               now=state.now(), save=False)
    except RegistrationError as exc:
        message = str(exc)
        if "redirect URI" in message:
            raise InvalidRedirectURIError(message) from None
        raise InvalidClientMetadataError(message) from None


def describe(state: State, client: Client) -> dict[str, Any]:
    """The registered metadata, as RFC 7591 §3.2.1 returns it (never a secret)."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "scope": client.scope,
        "application_type": client.application_type,
        "subject_type": client.subject_type,
    }
    optional = {"client_uri": client.client_uri, "logo_uri": client.logo_uri,
                "jwks": client.jwks, "jwks_uri": client.jwks_uri,
                "id_token_signed_response_alg": client.id_token_signed_response_alg,
                "post_logout_redirect_uris": client.post_logout_redirect_uris or None}
    body.update((k, v) for k, v in optional.items() if v)
    if client.secret_hash is not None:
        body["client_secret_expires_at"] = 0
    return body


class EndpointBase:
    """What both registration endpoints share: the metadata claims Authlib checks, against the
    server's metadata, with redirect URI errors named as RFC 7591 §3.2.2 does; the State."""

    claims_classes = [ClientMetadataClaims, OIDCClientMetadataClaims]
    server: UAuthServer  # set by Authlib's endpoint, the next class in the MRO

    def __init__(self, server: Any = None) -> None:
        super().__init__(server, claims_classes=self.claims_classes)  # type: ignore[call-arg]

    @property
    def state(self) -> State:
        state: State = self.server.state
        return state

    def create_endpoint_request(self, request: JsonRequest) -> JsonRequest:
        return request

    def get_server_metadata(self) -> dict[str, Any]:
        return server_metadata(self.server)

    def extract_client_metadata(self, request: JsonRequest) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = super().extract_client_metadata(  # type: ignore[misc]
                request)
        except InvalidClientMetadataError as exc:
            if "redirect_uri" in str(exc.description or ""):
                raise InvalidRedirectURIError(
                    "A redirect URI is not a valid absolute URI without a fragment.") from None
            raise
        return metadata


def server_metadata(server: UAuthServer) -> dict[str, Any]:
    """What Authlib checks registration metadata against: the discovery document (built by the
    web layer, handed to the server as :attr:`UAuthServer.discovery` by the wiring)."""
    state = server.state
    discovery: Callable[[], dict[str, Any]] | None = server.discovery
    metadata = dict(discovery() if discovery is not None else {})
    metadata["scopes_supported"] = allowed_scopes(state.settings)
    return metadata


class Registration(EndpointBase, ClientRegistrationEndpoint):  # type: ignore[misc]
    """RFC 7591 §3: POST /register."""

    def authenticate_token(self, request: JsonRequest) -> Any:
        state = self.state
        mode = state.settings.registration
        if mode == "token":
            token = bearer(request)
            if token is None or not spend_initial_token(state.store, token):
                audit(REGISTRATION_REFUSED, reason="initial access token")
                raise InvalidInitialToken(
                    "Registration needs a valid initial access token (Authorization: Bearer).")
            return {"mode": mode}
        count = state.store.incr(REGISTRATION_RATE, request.remote_addr or "-", 3600)
        if count > state.settings.registration_rate:
            audit(REGISTRATION_REFUSED, reason="rate")
            raise TooManyRegistrations(
                "Too many registrations from this address; try again later.")
        return {"mode": mode}

    def create_registration_response(self, request: JsonRequest
                                     ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request.credential = self.authenticate_token(request)
        if not isinstance(request.payload.data, dict) or not request.payload.data:
            raise InvalidRequestError("The body must be a JSON object of client metadata.")
        state = self.state
        try:
            metadata = self.extract_client_metadata(request)
            client, secret = client_from_metadata(state, metadata)
        except OAuth2Error as exc:
            audit(REGISTRATION_REFUSED, reason=exc.error, detail=exc.description)
            raise
        token = secrets.token_urlsafe(32)
        client.registration_token_hash = hash_key(token)
        # The new client, saved once with its token's digest, and its audit event: one trip.
        with state.store.batch():
            save_client(state.store, client, new=True)
            audit(CLIENT_REGISTERED, client_id=client.client_id,
                  mode=request.credential["mode"], method=client.token_endpoint_auth_method)
        body = describe(state, client)
        if secret is not None:
            body["client_secret"] = secret
        body["registration_access_token"] = token
        body["registration_client_uri"] = registration_client_uri(state, client.client_id)
        return 201, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                           ("Pragma", "no-cache")]


@dataclass(frozen=True)
class RegistrationToken:
    client_id: str

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id


class Configuration(EndpointBase, ClientConfigurationEndpoint):  # type: ignore[misc]
    """RFC 7592: GET, PUT, DELETE /register/<client_id> with the registration access token."""

    def authenticate_token(self, request: JsonRequest) -> RegistrationToken:
        """RFC 7592 §2: a bad token, or one for a client that is gone, is 401 invalid_token."""
        token = bearer(request)
        client = get_client(self.state.store, request.path_client_id)
        if (token is None or client is None or client.registration_token_hash is None
                or not hmac.compare_digest(hash_key(token), client.registration_token_hash)):
            raise InvalidInitialToken("The registration access token is not valid for this "
                                      "client.")
        return RegistrationToken(client.client_id)

    def authenticate_client(self, request: JsonRequest) -> Client | None:
        return get_client(self.state.store, request.path_client_id)

    def revoke_access_token(self, token: Any, request: JsonRequest) -> None:
        """Nothing to revoke: the token lives in the client record, which is gone."""

    def check_permission(self, client: Client, request: JsonRequest) -> bool:
        return client.registration == DYNAMIC

    def introspect_client(self, client: Client) -> dict[str, Any]:
        return describe(self.state, client)

    def generate_client_registration_info(self, client: Client, request: JsonRequest
                                          ) -> dict[str, Any]:
        return {"registration_client_uri": registration_client_uri(self.state,
                                                                   client.client_id)}

    def delete_client(self, client: Client, request: JsonRequest) -> None:
        remove_client(self.state.store, client.client_id)
        forget_used(self.state.store, client.client_id)
        audit(CLIENT_DELETED, client_id=client.client_id)

    def update_client(self, client: Client, client_metadata: dict[str, Any],
                      request: JsonRequest) -> Client:
        rebuilt, _ = client_from_metadata(self.state, client_metadata,
                                          client_id=client.client_id)
        if rebuilt.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"
                                                  ) and client.secret_hash is None:
            raise InvalidClientMetadataError(
                "A client cannot change from a public or key-based method to a secret.")
        rebuilt.secret_hash = client.secret_hash if rebuilt.secret_hash else None
        rebuilt.registration_token_hash = client.registration_token_hash
        rebuilt.created_at = client.created_at
        save_client(self.state.store, rebuilt)
        audit(CLIENT_UPDATED, client_id=client.client_id)
        return rebuilt


def register(server: UAuthServer) -> None:
    server.register_endpoint(Registration)
    server.register_endpoint(Configuration)
