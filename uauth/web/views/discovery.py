"""Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS, built once per key set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Response
from flask import json
from flask import url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from uauth.core.claims import claims_supported
from uauth.core.mfa import ACR_VALUES
from uauth.core.models import RESPONSE_MODES
from uauth.oauth.endpoints import INTROSPECTION_AUTH_METHODS
from uauth.oauth.endpoints import REVOCATION_AUTH_METHODS
from uauth.oauth.par import PAR_AUTH_METHODS
from uauth.oauth.request_object import REQUEST_OBJECT_ALGS
from uauth.web.state import AppState
from uauth.web.state import get_state

bp = Blueprint("discovery", __name__)


def endpoint_url(state: AppState, endpoint: str) -> str:
    """Absolute URL of one of our endpoints: the issuer's origin plus the mounted path."""
    parts = urlsplit(state.issuer)
    return f"{parts.scheme}://{parts.netloc}{url_for(endpoint)}"


def build_metadata(state: AppState) -> dict[str, Any]:
    """Advertise exactly what is implemented; grows with the grants registered."""
    settings = state.settings
    grant_types = sorted({g.GRANT_TYPE for g, _ in state.server._token_grants}
                         | {"implicit" for g, _ in state.server._authorization_grants
                            if any("token" in rt.split() for rt in g.RESPONSE_TYPES)})
    response_types = sorted({rt for g, _ in state.server._authorization_grants
                             for rt in g.RESPONSE_TYPES}, key=lambda rt: (len(rt), rt))
    return {
        "issuer": state.issuer,
        "authorization_endpoint": endpoint_url(state, "uauth.ui.authorize"),
        "token_endpoint": endpoint_url(state, "uauth.token.token"),
        "userinfo_endpoint": endpoint_url(state, "uauth.userinfo.userinfo"),
        "jwks_uri": endpoint_url(state, "uauth.discovery.jwks"),
        "scopes_supported": list(settings.known_scopes),
        "response_types_supported": response_types,
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(settings.signing_algs),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "revocation_endpoint": endpoint_url(state, "uauth.token.revoke"),
        "revocation_endpoint_auth_methods_supported": list(REVOCATION_AUTH_METHODS),
        "introspection_endpoint": endpoint_url(state, "uauth.token.introspect"),
        "introspection_endpoint_auth_methods_supported": list(INTROSPECTION_AUTH_METHODS),
        "pushed_authorization_request_endpoint_auth_methods_supported": list(PAR_AUTH_METHODS),
        "claims_supported": claims_supported(settings.custom_scopes),
        # What any client may use; ``plain`` is a per-client opt-in (--allow-plain-pkce).
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "pushed_authorization_request_endpoint": endpoint_url(state, "uauth.par.par"),
        "device_authorization_endpoint": endpoint_url(
            state, "uauth.device_authorization.device_authorization"),
        "require_pushed_authorization_requests": settings.require_par,
        "claims_parameter_supported": True,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": list(ACR_VALUES),
        # Request objects by value (signed with the client's registered keys); request_uri
        # only as PAR's, never fetched from elsewhere.
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGS),
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "end_session_endpoint": endpoint_url(state, "uauth.logout.end_session"),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def cached_json(state: AppState, name: str, build: Callable[[AppState], Any]) -> Response:
    body = state.cache.get(name)
    if body is None:
        body = state.cache[name] = json.dumps(build(state))
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={state.settings.discovery_max_age}"
    return response


def metadata() -> ResponseReturnValue:
    """The one metadata document, served as OIDC Discovery and as RFC 8414 metadata."""
    return cached_json(get_state(), "discovery", build_metadata)


def well_known_paths(issuer: str) -> list[tuple[str, str]]:
    """Where the metadata lives for this issuer, as (path, endpoint) pairs.

    For an issuer with a path (``https://example.com/auth``): OIDC Discovery §4 appends
    ``/.well-known/openid-configuration`` to the issuer (``/auth/.well-known/…``); RFC 8414 §3
    inserts ``/.well-known/oauth-authorization-server`` between host and path
    (``/.well-known/oauth-authorization-server/auth``). The OpenID document is also served at
    the inserted form (``/.well-known/openid-configuration/auth``; RFC 8414 §5 discusses both
    forms), which some clients try first. Without a path these are the plain root locations.
    """
    path = urlsplit(issuer).path.rstrip("/")
    paths = [(f"{path}/.well-known/openid-configuration", "openid_configuration"),
             (f"/.well-known/oauth-authorization-server{path}", "oauth_authorization_server")]
    if path:
        paths.append((f"/.well-known/openid-configuration{path}", "openid_configuration"))
    return paths


@bp.record
def _register_well_known(setup: BlueprintSetupState) -> None:
    """Mount the metadata where the specs put it for the issuer, outside ``UAUTH_URL_PREFIX``
    (Flask's own setup state, without the prefix, names the endpoints)."""
    at_root = BlueprintSetupState(setup.blueprint, setup.app, {**setup.options, "url_prefix": None},
                                  setup.first_registration)
    views = {"openid_configuration": metadata, "oauth_authorization_server": metadata}
    for rule, endpoint in well_known_paths(setup.app.config["UAUTH_ISSUER"]):
        at_root.add_url_rule(rule, endpoint, views[endpoint], methods=["GET"])


@bp.get("/jwks.json")
def jwks() -> ResponseReturnValue:
    state = get_state()
    state.keys.current()  # notices a rotation elsewhere (and drops the cached document)
    return cached_json(state, "jwks", lambda state: state.keys.jwks())
