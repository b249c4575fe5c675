"""Resource indicators (RFC 8707) for every grant: which resources exist, which a client may
name, and what a request without ``scope`` gets instead (RFC 6749 §3.3).

The provider knows resources from ``UAUTH_RESOURCES`` (URI -> display name and the scopes the
resource accepts) and per client (``uauth client add --audience``). A client registered by an
operator may name its own audiences; a client that registered itself (dynamic registration, a
client ID metadata document) may also name any configured resource. The access token's ``aud``
is the resource; a refresh may narrow to granted resources and never widen.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn
from urllib.parse import urlsplit

from authlib.oauth2.base import OAuth2Error

from .audit import audit
from .models import Client

if TYPE_CHECKING:
    from .settings import Settings

#: Prefix under which granted resources are remembered with the consented scopes.
CONSENT_PREFIX = "resource:"
RESOURCE_REFUSED = "resource.refused"
#: Longest resource URI worth looking at.
MAX_RESOURCE_LENGTH = 2048


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 §2: a resource that is malformed, unknown or not allowed for the client."""

    error = "invalid_target"


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    scopes: tuple[str, ...] = ()


def is_resource_uri(uri: str) -> bool:
    """RFC 8707 §2: an absolute URI without a fragment (a query is discouraged, allowed)."""
    if not uri or len(uri) > MAX_RESOURCE_LENGTH or "#" in uri:
        return False
    if any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return False
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


def parse_resources(raw: Any) -> dict[str, dict[str, Any]]:
    """``UAUTH_RESOURCES``: ``{uri: {"name": str, "scopes": [str, ...]}}`` (JSON in the
    environment). Raises ValueError naming what is wrong."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError('must map resource URIs to {"name": ..., "scopes": [...]}')
    parsed: dict[str, dict[str, Any]] = {}
    for uri, spec in raw.items():
        if not isinstance(uri, str) or not is_resource_uri(uri):
            raise ValueError(f"{uri!r} is not an absolute URI without a fragment (RFC 8707)")
        spec = spec or {}
        if not isinstance(spec, Mapping):
            raise ValueError(f"{uri}: the value must be an object with name and scopes")
        name = spec.get("name") or urlsplit(uri).netloc or uri
        scopes = spec.get("scopes") or []
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(name, str) or not isinstance(scopes, list) or not all(
                isinstance(s, str) and s and " " not in s for s in scopes):
            raise ValueError(f"{uri}: name must be text and scopes a list of scope names")
        unknown = set(spec) - {"name", "scopes"}
        if unknown:
            raise ValueError(f"{uri}: unknown key(s) {', '.join(sorted(unknown))}")
        parsed[uri] = {"name": name, "scopes": list(dict.fromkeys(scopes))}
    return parsed


def configured(settings: Settings) -> dict[str, Resource]:
    """``UAUTH_RESOURCES`` as :class:`Resource` values."""
    return {uri: Resource(uri, spec["name"], tuple(spec["scopes"]))
            for uri, spec in settings.resources.items()}


def allowed_resources(settings: Settings, client: Client) -> set[str]:
    """Resources ``client`` may name: its registered audiences; for a client that registered
    itself, every configured resource too."""
    allowed = set(client.audiences)
    if client.self_registered:
        allowed |= set(configured(settings))
    return allowed


def requested(params: Any) -> list[str]:
    """The ``resource`` parameters of a request (repeatable, RFC 8707 §2), deduplicated."""
    values = params.getlist("resource") if hasattr(params, "getlist") else (
        params.get("resource") or [])
    return list(dict.fromkeys(values))


def check_resources(settings: Settings, client: Client, wanted: Iterable[str],
                    within: Iterable[str] | None = None) -> list[str]:
    """Validate requested resources for ``client``.

    :param within: the resources already granted (a code's, a refresh token's): the request may
        only narrow to these.
    :raises InvalidTargetError: a malformed, unknown or not allowed resource.
    """
    wanted = list(dict.fromkeys(wanted))
    for uri in wanted:
        if not is_resource_uri(uri):
            refuse(client, uri, "The resource must be an absolute URI without a fragment "
                   "(RFC 8707).")
    limit = set(within) if within is not None else allowed_resources(settings, client)
    refused = [uri for uri in wanted if uri not in limit]
    if refused:
        if within is not None:
            refuse(client, refused[0], "The requested resource was not granted; a token "
                   "request may only narrow the granted resources.")
        refuse(client, refused[0], "The requested resource is unknown or not allowed for "
               "this client.")
    return wanted


def refuse(client: Client, uri: str, description: str) -> NoReturn:
    """``invalid_target``, with an audit event naming the client and the resource."""
    audit(RESOURCE_REFUSED, client_id=client.client_id, resource=uri[:200])
    raise InvalidTargetError(description)


def default_scope(settings: Settings, client: Client, resources: Iterable[str]) -> str:
    """RFC 6749 §3.3: the scope a request without one gets: the scopes the requested resources
    accept that the client may request, else the client's registered scope."""
    known = configured(settings)
    scopes = [s for uri in resources if uri in known for s in known[uri].scopes
              if s in client.allowed_scopes]
    if scopes:
        return " ".join(dict.fromkeys(scopes))
    return client.scope


def display(settings: Settings, resources: Iterable[str]) -> list[tuple[str, str]]:
    """(uri, name) for the consent page: the configured name, else the URI's host."""
    known = configured(settings)
    return [(uri, known[uri].name if uri in known else (urlsplit(uri).netloc or uri))
            for uri in resources]


def consent_entries(resources: Iterable[str]) -> list[str]:
    """Resources as entries of the consented set, so consent to one resource is not taken as
    consent to another."""
    return [CONSENT_PREFIX + uri for uri in resources]
