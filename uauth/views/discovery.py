"""Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS, built once per key set."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import json
from flask.typing import ResponseReturnValue

from ..extension import State
from ..extension import get_state

bp = Blueprint("discovery", __name__)


def build_metadata(state: State) -> dict[str, Any]:
    issuer = state.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "id_token_signing_alg_values_supported": sorted(state.keys.algorithms),
    }


def _cached_json(state: State, name: str, build: Any) -> Response:
    body = state.cache.get(name)
    if body is None:
        body = state.cache[name] = json.dumps(build(state))
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={state.config['UAUTH_DISCOVERY_MAX_AGE']}"
    return response


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    return _cached_json(get_state(), "discovery", build_metadata)


@bp.get("/jwks.json")
def jwks() -> ResponseReturnValue:
    return _cached_json(get_state(), "jwks", lambda state: state.keys.jwks())
