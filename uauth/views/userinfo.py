"""/userinfo (OIDC Core §5.3): claims for the scopes an access token was granted."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import json
from flask.typing import ResponseReturnValue

from ..claims import claims_by_name
from ..claims import claims_for_scopes
from ..extension import get_state
from ..grants import USERINFO_CLAIMS
from ..resource import BearerRequestError
from ..resource import bearer_challenge
from ..resource import bearer_token
from ..resource import token_user
from ..tokens import InvalidToken
from ..tokens import validate_access_token

bp = Blueprint("userinfo", __name__)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    state = get_state()
    try:
        token = bearer_token()
    except BearerRequestError as exc:
        return bearer_challenge(exc.status, exc.error, exc.description)
    if not token:
        return bearer_challenge(401)
    try:
        claims = validate_access_token(state, token, audience=state.issuer)
        user = token_user(state, claims)
    except InvalidToken as exc:
        return bearer_challenge(401, "invalid_token", str(exc))
    if user is None:
        return bearer_challenge(401, "invalid_token", "The token is not a user's.")
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        return bearer_challenge(403, "insufficient_scope", "The token lacks the openid scope.",
                                scope="openid")
    body = {"sub": claims["sub"], **claims_for_scopes(user, scopes)}
    named = claims.get(USERINFO_CLAIMS)  # the claims parameter's userinfo member (OIDC §5.5)
    if isinstance(named, list):
        body.update(claims_by_name(user, [str(name) for name in named]))
    return Response(json.dumps(body), mimetype="application/json",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
