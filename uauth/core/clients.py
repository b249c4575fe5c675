"""The client registry: registration rules (redirect URIs, auth methods) and lookups."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import SplitResult
from urllib.parse import urlsplit

from authlib.common.security import generate_token

from uauth.core.records import CLIENT
from uauth.core.records import CLIENT_ORIGIN
from uauth.core.records import ORIGIN
from uauth.storage import Store
from uauth.storage import hash_key

from .attributes import catalogue
from .fetcher import FetchError
from .fetcher import SafeFetcher
from .jwks import check_jwks
from .keys import SUPPORTED_ALGS
from .models import AUTH_METHODS
from .models import OPERATOR
from .models import PRIVATE_KEY_JWT
from .models import RESPONSE_MODES
from .models import SECRET_AUTH_METHODS
from .models import Client
from .settings import ACCESS_TOKEN_FORMATS
from .settings import DEFAULTS
from .settings import SUBJECT_TYPES
from .settings import is_loopback_host

if TYPE_CHECKING:
    from .state import State


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "implicit",
               "urn:ietf:params:oauth:grant-type:device_code")
RESPONSE_TYPES = ("code", "id_token", "id_token token", "code id_token", "code token",
                  "code id_token token")
#: Schemes a redirect URI may never use: they run code or read local files in the browser.
_FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript", "file", "about", "blob", "filesystem"}


class RegistrationError(ValueError):
    """A client cannot be registered as asked; the message says why."""


def secure_web_url(parts: SplitResult) -> bool:
    """https anywhere, or http on a loopback host (RFC 8252 §7.3): the one rule for every URL
    uauth sends people or tokens to."""
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and is_loopback_host(parts.hostname))


def check_redirect_uri(uri: str) -> None:
    """Registration rules (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1).

    https anywhere; http only on loopback; private-use schemes (``com.example.app:/cb``) for
    native apps; never a fragment, never a scheme that runs code.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise RegistrationError(f"redirect URI {uri!r} is not a valid URI") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise RegistrationError(f"redirect URI {uri!r} must be absolute")
    if parts.fragment or "#" in uri:
        raise RegistrationError(f"redirect URI {uri!r} must not contain a fragment")
    if any(ch.isspace() for ch in uri):
        raise RegistrationError(f"redirect URI {uri!r} must not contain whitespace")
    if scheme == "https":
        if not parts.hostname:
            raise RegistrationError(f"redirect URI {uri!r} has no host")
        return
    if scheme == "http":
        if not secure_web_url(parts):
            raise RegistrationError(
                f"redirect URI {uri!r} uses http on a non-loopback host; use https "
                "(http is only for 127.0.0.1, [::1] and localhost)"
            )
        return
    if scheme in _FORBIDDEN_SCHEMES:
        raise RegistrationError(f"redirect URI {uri!r} uses the forbidden scheme {scheme}:")
    if "." not in scheme:
        raise RegistrationError(
            f"redirect URI {uri!r}: a private-use scheme must be a reverse domain name such as "
            "com.example.app: (RFC 8252 §7.1)"
        )


def check_audience(uri: str) -> str:
    """A resource indicator is an absolute URI without a fragment (RFC 8707 §2)."""
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path) or parts.fragment or "#" in uri:
        raise RegistrationError(
            f"audience {uri!r} must be an absolute URI without a fragment, such as "
            "https://api.example.com (RFC 8707)")
    return uri


def check_post_logout_redirect_uri(uri: str) -> None:
    """The redirect URI rules apply (RP-Initiated Logout §3.1 asks for https; loopback http and
    private-use schemes for native apps as for redirect URIs)."""
    try:
        check_redirect_uri(uri)
    except RegistrationError as exc:
        raise RegistrationError(f"post-logout {exc}") from None


def check_backchannel_logout_uri(uri: str, allowed_hosts: Iterable[str] = ()) -> None:
    """Back-Channel Logout §2.2: an absolute URI without a fragment; https, since the logout
    token travels in it (plain http only to a host in ``UAUTH_FETCH_ALLOWED_HOSTS``). Where it
    may point is checked again at every delivery (:mod:`uauth.core.fetcher`)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise RegistrationError(f"back-channel logout URI {uri!r} is not a valid URI") from None
    if parts.fragment or "#" in uri or any(ch.isspace() for ch in uri) or not parts.hostname:
        raise RegistrationError(f"back-channel logout URI {uri!r} must be an absolute URL "
                                "without a fragment")
    allowed = {host.lower() for host in allowed_hosts}
    if parts.scheme != "https" and not (parts.scheme == "http"
                                        and (parts.hostname or "").lower() in allowed):
        raise RegistrationError(f"back-channel logout URI {uri!r} must use https (http only "
                                "for a host in UAUTH_FETCH_ALLOWED_HOSTS)")


#: Largest sector identifier document worth reading (a JSON array of redirect URIs).
MAX_SECTOR_DOCUMENT = 64 * 1024


def fetch_sector_redirect_uris(uri: str, timeout: float = 10.0,
                               allowed_hosts: Iterable[str] = ()) -> list[str]:
    """The JSON array of redirect URIs published at a sector_identifier_uri, fetched under the
    server-side fetch rules (:mod:`uauth.core.fetcher`: no internal address unless allow-listed, no
    redirects, 64 KiB at most)."""
    fetcher = SafeFetcher(allowed_hosts, timeout=timeout, max_bytes=MAX_SECTOR_DOCUMENT)
    try:
        uris = fetcher.fetch_json(uri)
    except FetchError as exc:
        raise RegistrationError(f"cannot fetch sector_identifier_uri {uri!r}: {exc}") from None
    if not isinstance(uris, list) or not all(isinstance(item, str) for item in uris):
        raise RegistrationError(
            f"sector_identifier_uri {uri!r} must return a JSON array of redirect URIs")
    return uris


def native_redirect_uri(uri: str) -> bool:
    """A loopback (RFC 8252 §7.3) or private-use-scheme (§7.1) redirect URI."""
    parts = urlsplit(uri)
    return parts.scheme not in {"http", "https"} or is_loopback_host(parts.hostname)


def sector_identifier(redirect_uris: list[str], sector_identifier_uri: str | None,
                      allowed_hosts: Iterable[str] = ()) -> str | None:
    """The sector pairwise subjects are computed for (OIDC Core §8.1).

    The host of a validated ``sector_identifier_uri`` whose document lists every redirect URI;
    else the one host the redirect URIs share. A loopback or private-use-scheme redirect URI
    names no one's host (every CLI listens on 127.0.0.1, any app may claim a scheme), so such a
    client gets a sector of its own: None here, the client id in
    :func:`uauth.core.claims.sector_of`.
    """
    if sector_identifier_uri:
        parts = urlsplit(sector_identifier_uri)
        allowed = {host.lower() for host in allowed_hosts}
        if not parts.hostname or not (parts.scheme == "https" or (
                parts.scheme == "http" and parts.hostname.lower() in allowed)):
            raise RegistrationError("sector_identifier_uri must be an https URL")
        listed = set(fetch_sector_redirect_uris(sector_identifier_uri,
                                                allowed_hosts=allowed_hosts))
        absent = [uri for uri in redirect_uris if uri not in listed]
        if absent:
            raise RegistrationError(
                f"sector_identifier_uri does not list the redirect URI(s) {' '.join(absent)}")
        return parts.hostname
    if any(native_redirect_uri(uri) for uri in redirect_uris):
        return None
    hosts = {urlsplit(uri).hostname or urlsplit(uri).scheme for uri in redirect_uris}
    if len(hosts) > 1:
        raise RegistrationError(
            "pairwise subjects need redirect URIs on one host, or a --sector-identifier-uri "
            f"listing them all (OIDC Core 8.1); got hosts {', '.join(sorted(hosts))}")
    return hosts.pop() if hosts else None


def check_origin(origin: str) -> str:
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise RegistrationError(f"origin {origin!r} must look like https://app.example.com")
    if not secure_web_url(parts):
        raise RegistrationError(f"origin {origin!r} uses http on a non-loopback host")
    return f"{parts.scheme}://{parts.netloc}".lower()


def grants_for(response_types: Iterable[str]) -> list[str]:
    """The grant types response types imply (OIDC Registration §2): ``code`` needs
    ``authorization_code``; ``token`` or ``id_token`` from the authorization endpoint,
    ``implicit``."""
    found: dict[str, None] = {}
    for rt in response_types:
        parts = set(rt.split())
        if "code" in parts:
            found["authorization_code"] = None
        if parts & {"token", "id_token"}:
            found["implicit"] = None
    return list(found)


@dataclass(frozen=True)
class Registration:
    """What an operator asks for when registering a client (``uauth client add``'s flags, an
    embedding app's code); :func:`register_client` validates it into a :class:`Client`.

    ``None`` means "derive it": grant types from the response types (plus ``refresh_token``),
    the auth method from ``public``, the subject type from ``UAUTH_DEFAULT_SUBJECT_TYPE``.
    """

    name: str
    redirect_uris: Sequence[str] = ()
    public: bool = False
    grant_types: Sequence[str] | None = None
    response_types: Sequence[str] | None = None
    scope: str | None = None
    token_endpoint_auth_method: str | None = None
    allowed_origins: Sequence[str] = ()
    first_party: bool = False
    allow_plain_pkce: bool = False
    always_issue_refresh_token: bool = False
    default_response_mode: str | None = None
    audiences: Sequence[str] = ()
    introspect_any_token: bool = False
    required_attributes: Sequence[str] = ()
    subject_type: str | None = None
    sector_identifier_uri: str | None = None
    post_logout_redirect_uris: Sequence[str] = ()
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    id_token_signed_response_alg: str | None = None
    #: Users must present a second factor to sign in to this client.
    require_mfa: bool = False
    #: ``jwt`` or ``opaque`` access tokens; None: ``UAUTH_ACCESS_TOKEN_FORMAT``.
    access_token_format: str | None = None
    #: Authorization requests must be pushed to /par first (RFC 9126 §6).
    require_pushed_authorization_requests: bool = False
    #: The client's public keys for signed request objects (an inline JWKS).
    jwks: dict[str, Any] | None = None
    #: Or where to fetch them (https); private_key_jwt needs one of the two.
    jwks_uri: str | None = None
    allow_unsigned_request_objects: bool = False
    #: How the client came to exist: ``operator``, ``dynamic`` or ``metadata_document``.
    registration: str = OPERATOR
    client_uri: str | None = None
    logo_uri: str | None = None
    #: ``web`` or ``native`` (OIDC Registration §2).
    application_type: str = "web"
    #: A given client id (a metadata document's URL); None: a new random one.
    client_id: str | None = None


@dataclass(frozen=True)
class RegistrationRules:
    """What this provider accepts, from its settings; the defaults accept anything uauth knows.

    :param known_scopes: ``UAUTH_SCOPES`` (with the custom scopes).
    :param known_attributes: attribute names ``required_attributes`` may use (the catalogue).
    :param enabled_algs: ``UAUTH_SIGNING_ALGS``.
    :param default_subject_type: ``UAUTH_DEFAULT_SUBJECT_TYPE``.
    :param default_access_token_format: ``UAUTH_ACCESS_TOKEN_FORMAT``.
    :param fetch_allowed_hosts: ``UAUTH_FETCH_ALLOWED_HOSTS``: internal hosts a back-channel
        logout or sector identifier URI may name (and over plain http).
    """

    known_scopes: Iterable[str] | None = None
    known_attributes: Iterable[str] | None = None
    enabled_algs: Iterable[str] | None = None
    default_subject_type: str = str(DEFAULTS["UAUTH_DEFAULT_SUBJECT_TYPE"])
    default_access_token_format: str = str(DEFAULTS["UAUTH_ACCESS_TOKEN_FORMAT"])
    fetch_allowed_hosts: Iterable[str] = ()


def registration_rules(state: State) -> RegistrationRules:
    """The rules of this provider's settings: its scopes, attributes, algorithms, subjects."""
    settings = state.settings
    return RegistrationRules(known_scopes=settings.known_scopes,
                             known_attributes=catalogue(settings.attributes),
                             enabled_algs=settings.signing_algs,
                             default_subject_type=settings.default_subject_type,
                             default_access_token_format=settings.access_token_format,
                             fetch_allowed_hosts=settings.fetch_allowed_hosts)


def register_client(store: Store, registration: Registration,
                    rules: RegistrationRules = RegistrationRules(), *, now: int = 0,
                    save: bool = True) -> tuple[Client, str | None]:
    """Validate and store a new client; returns it and its secret (shown once, stored hashed).

    :param save: False validates and builds the client without storing it (a client ID
        metadata document's client lives in the fetcher's cache, not in storage).
    """
    reg = registration
    name, public, scope = reg.name, reg.public, reg.scope
    redirect_uris, grant_types, response_types = (reg.redirect_uris, reg.grant_types,
                                                  reg.response_types)
    token_endpoint_auth_method = reg.token_endpoint_auth_method
    allowed_origins, audiences = reg.allowed_origins, reg.audiences
    default_response_mode, introspect_any_token = (reg.default_response_mode,
                                                   reg.introspect_any_token)
    required_attributes, sector_identifier_uri = reg.required_attributes, reg.sector_identifier_uri
    post_logout_redirect_uris = reg.post_logout_redirect_uris
    backchannel_logout_uri = reg.backchannel_logout_uri
    backchannel_logout_session_required = reg.backchannel_logout_session_required
    known_scopes, known_attributes = rules.known_scopes, rules.known_attributes
    enabled_algs = rules.enabled_algs
    allowed = list(rules.fetch_allowed_hosts)
    uris = list(dict.fromkeys(redirect_uris))
    for uri in uris:
        check_redirect_uri(uri)
    logout_uris = list(dict.fromkeys(post_logout_redirect_uris))
    for uri in logout_uris:
        check_post_logout_redirect_uri(uri)
    if backchannel_logout_uri is not None:
        check_backchannel_logout_uri(backchannel_logout_uri, allowed)
    elif backchannel_logout_session_required:
        raise RegistrationError("--backchannel-logout-session-required needs a "
                                "--backchannel-logout-uri")
    method = token_endpoint_auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS:
        raise RegistrationError(
            f"token endpoint auth method must be one of {', '.join(AUTH_METHODS)}")
    if public != (method == "none"):
        raise RegistrationError("public clients use 'none'; confidential clients use a secret "
                                "or private_key_jwt")
    jwks, jwks_uri = check_client_keys(method, reg.jwks, reg.jwks_uri)
    responses = [" ".join(sorted(rt.split())) for rt in (response_types or ["code"])]
    for rt in responses:
        if rt not in {" ".join(sorted(r.split())) for r in RESPONSE_TYPES}:
            raise RegistrationError(f"unknown response type {rt!r}")
    needed = grants_for(responses)
    grants = list(dict.fromkeys(grant_types or [*needed, "refresh_token"]))
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise RegistrationError(
                f"unknown grant type {grant!r}; one of {', '.join(GRANT_TYPES)}")
    missing = [grant for grant in needed if grant not in grants]
    if grant_types and response_types and missing:  # OIDC Registration §2
        raise RegistrationError(f"the response types need --grant-type {missing[0]} too")
    if public and "client_credentials" in grants:
        raise RegistrationError("public clients cannot use client_credentials (RFC 6749 §4.4)")
    if default_response_mode is not None and default_response_mode not in RESPONSE_MODES:
        raise RegistrationError(
            f"unknown response mode {default_response_mode!r}; one of {', '.join(RESPONSE_MODES)}")
    needs_redirect = "authorization_code" in grants or "implicit" in grants
    if needs_redirect and not uris:
        raise RegistrationError("a client using the authorization endpoint needs a --redirect-uri")
    scopes = (scope or "openid profile email address phone groups offline_access").split()
    if not scope and known_scopes is not None:  # the default: what this provider knows of it
        scopes = [s for s in scopes if s in set(known_scopes)]
    if known_scopes is not None:
        unknown = [s for s in scopes if s not in set(known_scopes)]
        if unknown:
            raise RegistrationError(f"unknown scope(s) {' '.join(unknown)}; see UAUTH_SCOPES")
    origins = list(dict.fromkeys(check_origin(o) for o in allowed_origins))
    resources = list(dict.fromkeys(check_audience(a) for a in audiences))
    if public and introspect_any_token:
        raise RegistrationError("only confidential clients may introspect tokens")
    required = list(dict.fromkeys(required_attributes))
    if known_attributes is not None:
        unknown = [a for a in required if a not in set(known_attributes)]
        if unknown:
            raise RegistrationError(
                f"unknown attribute(s) {' '.join(unknown)}; see UAUTH_ATTRIBUTES")
    subject_type = reg.subject_type or rules.default_subject_type
    if subject_type not in SUBJECT_TYPES:
        raise RegistrationError("subject type must be pairwise or public")
    if sector_identifier_uri and subject_type != "pairwise":
        raise RegistrationError("a sector_identifier_uri is only for pairwise subjects")
    sector = (sector_identifier(uris, sector_identifier_uri, allowed)
              if subject_type == "pairwise"
              else None)
    alg = reg.id_token_signed_response_alg
    if alg is not None and alg not in set(enabled_algs if enabled_algs is not None else
                                          SUPPORTED_ALGS):
        raise RegistrationError(f"id_token_signed_response_alg {alg!r} is not enabled; "
                                "add it to UAUTH_SIGNING_ALGS")
    token_format = reg.access_token_format or rules.default_access_token_format
    if token_format not in ACCESS_TOKEN_FORMATS:
        raise RegistrationError(f"access token format must be jwt or opaque, not {token_format!r}")
    if jwks is not None:
        try:
            check_jwks(jwks)
        except ValueError as exc:
            raise RegistrationError(f"--jwks: {exc}") from None
    secret = None if method not in SECRET_AUTH_METHODS else secrets.token_urlsafe(32)
    client = Client(
        # alphanumeric: never mistaken for a CLI option
        client_id=reg.client_id or generate_token(24),
        name=name,
        redirect_uris=uris,
        secret_hash=None if secret is None else hash_key(secret),
        token_endpoint_auth_method=method,
        grant_types=grants,
        response_types=responses,
        scope=" ".join(dict.fromkeys(scopes)),
        allowed_origins=origins,
        first_party=reg.first_party,
        allow_plain_pkce=reg.allow_plain_pkce,
        always_issue_refresh_token=reg.always_issue_refresh_token,
        default_response_mode=default_response_mode,
        created_at=now,
        audiences=resources,
        introspect_any_token=introspect_any_token,
        post_logout_redirect_uris=logout_uris,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
        required_attributes=required,
        subject_type=subject_type,
        sector_identifier_uri=sector_identifier_uri or None,
        sector_identifier=sector,
        id_token_signed_response_alg=alg,
        require_mfa=reg.require_mfa,
        access_token_format=token_format,
        require_pushed_authorization_requests=reg.require_pushed_authorization_requests,
        jwks=jwks,
        jwks_uri=jwks_uri,
        allow_unsigned_request_objects=reg.allow_unsigned_request_objects,
        registration=reg.registration,
        client_uri=reg.client_uri,
        logo_uri=reg.logo_uri,
        application_type=reg.application_type,
    )
    if save:
        save_client(store, client, new=reg.client_id is None)
    return client, secret


def check_client_keys(method: str, jwks: dict[str, Any] | None, jwks_uri: str | None
                      ) -> tuple[dict[str, Any] | None, str | None]:
    """A client's keys (signed request objects, private_key_jwt): an inline ``jwks`` (checked
    by :func:`uauth.request_object.check_jwks`) or an https ``jwks_uri``, never both;
    private_key_jwt needs one of them."""
    if jwks and jwks_uri:
        raise RegistrationError("give either jwks (--jwks FILE) or jwks_uri (--jwks-uri URL)")
    if method == PRIVATE_KEY_JWT and not (jwks or jwks_uri):
        raise RegistrationError("private_key_jwt needs either jwks (--jwks FILE) or jwks_uri "
                                "(--jwks-uri URL)")
    if jwks_uri is not None:
        parts = urlsplit(jwks_uri)
        if parts.scheme != "https" or not parts.hostname or parts.fragment or "#" in jwks_uri:
            raise RegistrationError(f"jwks_uri {jwks_uri!r} must be an https URL")
    return jwks or None, jwks_uri or None


def save_client(store: Store, client: Client, *, new: bool = False) -> None:
    """Store ``client`` and index its CORS origins. ``new``: its id was just drawn, so there is
    no earlier record to compare its origins with, and nothing to read first."""
    previous = None if new else get_client(store, client.client_id)
    store.save(CLIENT, client.client_id, client.to_record(), ttl=None)
    old_origins = set(previous.allowed_origins) if previous else set()
    _index_origins(store, client.client_id, old_origins, set(client.allowed_origins))


class ClientCache:
    """Clients one worker looked up in the last ``ttl`` seconds.

    Every authorization and token request needs its client; clients never change after
    registration, so each worker keeps them briefly instead of reading storage every time.
    Only found clients are kept (a new one works at once); a removed one stops working on
    every worker within ``ttl`` seconds. Callers must not modify the clients they get.
    """

    def __init__(self, store: Store, ttl: float, *, size: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: dict[str, tuple[Client, float]] = {}
        self._origins: dict[str, float] = {}
        #: Looks up clients whose id is an https URL (client ID metadata documents, uauth.cimd).
        self.resolver: Callable[[str], Client | None] | None = None

    def get(self, client_id: str | None) -> Client | None:
        if self.resolver is not None and client_id and client_id.startswith("https://"):
            return self.resolver(client_id)  # the safe fetcher caches the document
        if not client_id or self._ttl <= 0:
            return get_client(self._store, client_id)
        now = self._clock()
        hit = self._entries.get(client_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        client = get_client(self._store, client_id)
        if client is not None:
            if len(self._entries) >= self._size:
                self._entries.clear()  # rare (more live clients than size): start over
            self._entries[client_id] = (client, now + self._ttl)
        else:
            self._entries.pop(client_id, None)
        return client

    def cached(self, client_id: str) -> Client | None:
        """The client if this worker holds it now; never reads storage or the network."""
        hit = self._entries.get(client_id)
        return hit[0] if hit is not None and hit[1] > self._clock() else None

    def origin_allowed(self, origin: str) -> bool:
        """:func:`origin_allowed` with the same per-worker reuse: a browser app's every
        cross-origin call would otherwise cost a storage read (allowed origins are kept)."""
        if self._ttl <= 0:
            return origin_allowed(self._store, origin)
        now = self._clock()
        if self._origins.get(origin, 0.0) > now:
            return True
        allowed = origin_allowed(self._store, origin)
        if allowed:
            if len(self._origins) >= self._size:
                self._origins.clear()
            self._origins[origin] = now + self._ttl
        return allowed


def get_client(store: Store, client_id: str | None) -> Client | None:
    if not client_id or len(client_id) > 200:
        return None
    record = store.find(CLIENT, client_id)
    return None if record is None else Client.from_record(record)


def list_clients(store: Store) -> Iterator[Client]:
    for _, record in store.scan(CLIENT):
        yield Client.from_record(record)


def remove_client(store: Store, client_id: str) -> bool:
    client = get_client(store, client_id)
    if client is None:
        return False
    store.delete(CLIENT, client_id)
    _index_origins(store, client_id, set(client.allowed_origins), set())
    return True


def origin_group(origin: str) -> str:
    """The group holding one :data:`CLIENT_ORIGIN` record per client that lists ``origin``."""
    return f"origins-of:{origin}"


def origin_allowed(store: Store, origin: str) -> bool:
    """True when some registered client lists this browser origin (CORS)."""
    origin = origin.lower()
    if any(kind == CLIENT_ORIGIN for kind, _, _ in store.grant_records(origin_group(origin))):
        return True
    record = store.find(ORIGIN, origin)  # the index as uauth wrote it before CLIENT_ORIGIN
    return bool(record and record.get("clients"))


def _index_origins(store: Store, client_id: str, old: set[str], new: set[str]) -> None:
    """One record per origin and client, grouped per origin: registering or removing a client
    writes only its own records, so concurrent registrations never overwrite each other (the
    one shared list per origin this replaces was a read-modify-write)."""
    for origin in new - old:
        store.save(CLIENT_ORIGIN, f"{origin} {client_id}", {"client_id": client_id}, ttl=None,
                   grant_id=origin_group(origin))
    for origin in old - new:
        store.delete(CLIENT_ORIGIN, f"{origin} {client_id}")
        legacy = store.find(ORIGIN, origin)
        if legacy is not None and client_id in legacy.get("clients", ()):
            # A list written before CLIENT_ORIGIN: drop the whole list once any of its clients
            # goes, after giving each remaining client its own record (no read-modify-write).
            for other in legacy["clients"]:
                if other != client_id:
                    store.save(CLIENT_ORIGIN, f"{origin} {other}", {"client_id": other},
                               ttl=None, grant_id=origin_group(origin))
            store.delete(ORIGIN, origin)
