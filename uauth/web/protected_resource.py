"""The resource side of RFC 9728 (OAuth 2.0 Protected Resource Metadata).

A host app declares the resource its protected routes belong to::

    notes_api = uauth.protected_resource("https://notes.example.com/mcp", scopes=["notes"])

    @app.post("/mcp")
    @notes_api.require_token("notes")
    def mcp(): ...

uauth then serves ``/.well-known/oauth-protected-resource`` (for a resource with a path, the
path form ``/.well-known/oauth-protected-resource/mcp``, RFC 9728 §3.1) naming the
authorization server and the scopes; the views' 401 answers carry
``WWW-Authenticate: Bearer resource_metadata="…"`` (§5.1) so a client (an MCP client above all)
can discover where to get a token; and only access tokens whose ``aud`` is this resource are
accepted (RFC 8707), never one minted for another resource.

A separate resource server uses :func:`serve_metadata` and
``ResourceProtector.for_issuer(issuer, audience=resource, resource_metadata=url)``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask
from flask import Response

from uauth.core.resources import is_resource_uri
from uauth.web.resource import ResourceProtector
from uauth.web.resource import local_access_token
from uauth.web.state import get_state

F = TypeVar("F", bound=Callable[..., Any])

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_path(resource: str) -> str:
    """Where a resource's metadata lives on its host (RFC 9728 §3.1)."""
    path = urlsplit(resource).path.rstrip("/")
    return WELL_KNOWN + path


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


def metadata_document(resource: str, authorization_servers: Sequence[str], *,
                      scopes: Iterable[str] = (), name: str | None = None) -> dict[str, Any]:
    """The RFC 9728 §2 document for ``resource``."""
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    scopes = list(scopes)
    if scopes:
        document["scopes_supported"] = scopes
    if name:
        document["resource_name"] = name
    return document


@dataclass(frozen=True)
class ProtectedResource:
    """A resource the host app serves, protected by this provider's access tokens."""

    resource: str
    scopes: tuple[str, ...] = ()
    name: str | None = None
    realm: str = "uauth"

    @property
    def metadata_url(self) -> str:
        return metadata_url(self.resource)

    def protector(self) -> ResourceProtector:
        return ResourceProtector(functools.partial(local_access_token, audience=self.resource),
                                 realm=self.realm, resource_metadata=self.metadata_url)

    def require_token(self, scope: str | Iterable[str] | None = None
                      ) -> Callable[[F], F]:
        """Like ``UAuth.require_token``, for this resource (its ``aud``, its metadata URL)."""
        return self.protector().require_token(scope)

    def serve_metadata(self, app: Flask) -> None:
        """Mount the metadata document on ``app`` (at the root, whatever uauth's prefix)."""
        endpoint = "uauth_protected_resource_" + self.metadata_path.strip("/").replace(
            "/", "_").replace(".", "_")
        if endpoint in app.view_functions:
            return
        app.add_url_rule(self.metadata_path, endpoint,
                         functools.partial(_serve, self), methods=["GET"])

    @property
    def metadata_path(self) -> str:
        return metadata_path(self.resource)


def _serve(resource: ProtectedResource) -> Response:
    state = get_state()
    configured = state.settings.resources.get(resource.resource, {})
    document = metadata_document(
        resource.resource, [state.issuer],
        scopes=resource.scopes or configured.get("scopes", ()),
        name=resource.name or configured.get("name"))
    response = Response(json.dumps(document), mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={state.settings.discovery_max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"  # public metadata, no credentials
    return response


def serve_metadata(app: Flask, resource: str, authorization_servers: Sequence[str], *,
                   scopes: Iterable[str] = (), name: str | None = None,
                   max_age: int = 300) -> None:
    """For a separate resource server (no uauth in the app): serve ``resource``'s RFC 9728
    document on ``app``; pair it with ``ResourceProtector.for_issuer(issuer,
    audience=resource, resource_metadata=metadata_url(resource))``."""
    body = json.dumps(metadata_document(resource, authorization_servers, scopes=scopes,
                                        name=name))

    def view() -> Response:
        response = Response(body, mimetype="application/json")
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    app.add_url_rule(metadata_path(resource), "oauth_protected_resource_metadata"
                     + metadata_path(resource).replace("/", "_").replace(".", "_"), view,
                     methods=["GET"])


def declare(resource: str, *, scopes: Iterable[str] | None = None, name: str | None = None,
            realm: str = "uauth") -> ProtectedResource:
    if not is_resource_uri(resource) or urlsplit(resource).scheme not in ("https", "http"):
        raise ValueError(f"{resource!r} must be an absolute http(s) URI without a fragment")
    return ProtectedResource(resource, tuple(scopes or ()), name, realm)
