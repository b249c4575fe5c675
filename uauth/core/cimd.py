"""Client ID metadata documents (the IETF OAuth draft the MCP specification adopts).

A ``client_id`` that is an https URL names a JSON document describing the client. uauth fetches
it through the safe outbound fetcher (https only, no internal address unless allow-listed, no
redirects, a size cap and a timeout, cached as its ``Cache-Control`` says within bounds),
checks it, and uses it like a registered client that registered itself:

- its ``client_id`` equals the URL exactly;
- ``redirect_uris`` follow the registration rules, loopback ones matching any port;
- ``token_endpoint_auth_method`` is ``none`` (the default here) or ``private_key_jwt`` with
  ``jwks`` or ``jwks_uri``; a shared secret can never be published, so none is accepted;
- ``client_name``, ``client_uri`` and ``logo_uri`` are shown on the consent page as given.

``UAUTH_CIMD`` is ``off``, ``allowlist`` (only hosts in ``UAUTH_CIMD_HOSTS``; the default) or
``on``. A document that cannot be used is ``invalid_client`` with the reason, and an audit event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import InvalidClientError

from .audit import audit
from .clients import Registration
from .clients import RegistrationError
from .clients import register_client
from .clients import registration_rules
from .models import METADATA_DOCUMENT
from .models import PRIVATE_KEY_JWT
from .models import Client

if TYPE_CHECKING:
    from .settings import Settings
    from .state import State

CIMD_MODES = ("off", "allowlist", "on")
CIMD_REFUSED = "client.metadata_document_refused"
#: Longest client id URL worth fetching.
MAX_URL_LENGTH = 2048
#: Members that would make a published document carry a secret.
_SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
_GRANTS = ("authorization_code", "refresh_token")


class MetadataDocumentError(ValueError):
    """The document cannot be used; the message says why (safe to show the client)."""


def is_metadata_url(client_id: str | None) -> bool:
    return bool(client_id) and str(client_id).startswith("https://")


def check_url(url: str) -> str:
    """The draft's rules for a client id URL: https, a path, no fragment, no credentials,
    no dot segments. Returns its host."""
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() for ch in url):
        raise MetadataDocumentError("The client_id URL is not a valid URL.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise MetadataDocumentError("The client_id URL is not a valid URL.") from None
    if parts.scheme != "https" or not parts.hostname:
        raise MetadataDocumentError("A client_id URL must be https with a host.")
    if parts.username or parts.password or parts.fragment or "#" in url:
        raise MetadataDocumentError("A client_id URL has no credentials and no fragment.")
    segments = parts.path.split("/")
    if not parts.path.strip("/") or "." in segments or ".." in segments:
        raise MetadataDocumentError("A client_id URL needs a path without dot segments.")
    return parts.hostname.lower()


def allowed_host(settings: Settings, host: str) -> bool:
    mode = settings.cimd
    if mode == "on":
        return True
    return mode == "allowlist" and host in {h.lower() for h in settings.cimd_hosts}


def offered_scopes(settings: Settings) -> list[str]:
    """What a metadata-document client may ask for: the open-registration scopes and every
    configured resource's scopes."""
    resource_scopes = [s for spec in settings.resources.values() for s in spec["scopes"]]
    return list(dict.fromkeys([*settings.registration_scopes, *resource_scopes]))


def client_from_document(state: State, url: str, document: Any) -> Client:
    """A client (never stored) from a fetched document, or :class:`MetadataDocumentError`."""
    if not isinstance(document, dict):
        raise MetadataDocumentError("The client metadata document is not a JSON object.")
    if document.get("client_id") != url:
        raise MetadataDocumentError("The document's client_id differs from its URL.")
    if any(member in document for member in _SECRET_MEMBERS):
        raise MetadataDocumentError("A client metadata document must not hold a secret.")
    method = document.get("token_endpoint_auth_method") or "none"
    if method not in ("none", PRIVATE_KEY_JWT):
        raise MetadataDocumentError("token_endpoint_auth_method must be none or "
                                    "private_key_jwt.")
    redirect_uris = document.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris or not all(
            isinstance(uri, str) for uri in redirect_uris):
        raise MetadataDocumentError("The document needs a list of redirect_uris.")
    grants = document.get("grant_types") or ["authorization_code"]
    if not isinstance(grants, list) or any(g not in _GRANTS for g in grants):
        raise MetadataDocumentError("grant_types may only list authorization_code and "
                                    "refresh_token.")
    if "refresh_token" not in grants:
        grants = [*grants, "refresh_token"]
    if (document.get("response_types") or ["code"]) != ["code"]:
        raise MetadataDocumentError("response_types may only be code.")
    offered = offered_scopes(state.settings)
    asked = document.get("scope")
    scopes = [s for s in asked.split() if s in offered] if isinstance(asked, str) else offered
    texts = {}
    for member in ("client_name", "client_uri", "logo_uri"):
        value = document.get(member)
        if value is not None and not isinstance(value, str):
            raise MetadataDocumentError(f"{member} must be text.")
        texts[member] = value.strip()[:300] if isinstance(value, str) else None
    for member in ("client_uri", "logo_uri"):
        value = texts[member]
        if value and urlsplit(value).scheme != "https":
            texts[member] = None  # only https links are shown
    name = (texts["client_name"] or "")[:100] or urlsplit(url).hostname or url
    try:
        registration = Registration(
            name=name, redirect_uris=redirect_uris, public=method == "none",
            grant_types=grants, scope=" ".join(scopes) or "openid",
            token_endpoint_auth_method=method,
            jwks=document.get("jwks") if method == PRIVATE_KEY_JWT else None,
            jwks_uri=document.get("jwks_uri") if method == PRIVATE_KEY_JWT else None,
            registration=METADATA_DOCUMENT, client_uri=texts["client_uri"],
            logo_uri=texts["logo_uri"], application_type="native" if all(
                urlsplit(u).scheme not in ("https",) for u in redirect_uris) else "web",
            client_id=url)
        client, _ = register_client(state.store, registration, registration_rules(state),
                                    now=state.now(), save=False)
    except RegistrationError as exc:
        raise MetadataDocumentError(f"The client metadata document is not usable: {exc}"
                                    ) from None
    return client


def resolve(state: State, url: str) -> Client:
    """The client a metadata document URL names; :class:`InvalidClientError` with the reason
    (and an audit event) when it cannot be used."""
    try:
        host = check_url(url)
        if not allowed_host(state.settings, host):
            raise MetadataDocumentError(
                "Client metadata documents from this host are not accepted here.")
        if state.fetch_json is None:
            raise MetadataDocumentError("Client metadata documents cannot be fetched here.")
        try:
            document = state.fetch_json(url)
        except Exception as exc:  # FetchError: unreachable, too big, slow, internal, not JSON
            raise MetadataDocumentError(f"The client metadata document cannot be fetched: "
                                        f"{exc}") from None
        return client_from_document(state, url, document)
    except MetadataDocumentError as exc:
        audit(CIMD_REFUSED, client_id=url, reason=str(exc))
        raise InvalidClientError(description=str(exc)) from None


def lookup(state: State, url: str) -> Client | None:
    """:func:`resolve` for pages (login, account, errors): None instead of an error."""
    if state.settings.cimd == "off":
        return None
    try:
        return resolve(state, url)
    except InvalidClientError:
        return None
