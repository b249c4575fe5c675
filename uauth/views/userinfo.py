"""/userinfo (OIDC Core §5.3): claims for the scopes an access token was granted."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import json
from flask import request
from flask.typing import ResponseReturnValue

from ..claims import claims_by_name
from ..claims import claims_for_scopes
from ..extension import get_state
from ..grants import USERINFO_CLAIMS
from ..tokens import InvalidToken
from ..tokens import validate_access_token

bp = Blueprint("userinfo", __name__)


def bearer_challenge(status: int, error: str | None = None, description: str | None = None
                     ) -> Response:
    """RFC 6750 §3: a challenge, with an error code only when a token was presented."""
    params = ['realm="uauth"']
    body: dict[str, str] = {}
    if error:
        params.append(f'error="{error}"')
        body["error"] = error
        if description:
            params.append(f'error_description="{description}"')
            body["error_description"] = description
    return Response(json.dumps(body) if body else "", status=status, mimetype="application/json",
                    headers={"WWW-Authenticate": "Bearer " + ", ".join(params),
                             "Cache-Control": "no-store"})


class _TokenProblem(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def bearer_token() -> str | None:
    """The token from ``Authorization: Bearer`` or, for POST, a form body (RFC 6750 §2.1-2.2)."""
    header = request.headers.get("Authorization")
    in_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        in_body = request.form.get("access_token")
    if header is not None and in_body is not None:
        raise _TokenProblem(bearer_challenge(400, "invalid_request",
                                             "Send the token in one place only."))
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _TokenProblem(bearer_challenge(401))
        return value.strip()
    return in_body


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    state = get_state()
    try:
        token = bearer_token()
    except _TokenProblem as problem:
        return problem.response
    if not token:
        return bearer_challenge(401)
    try:
        claims = validate_access_token(state, token, audience=state.issuer)
    except InvalidToken as exc:
        return bearer_challenge(401, "invalid_token", str(exc))
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        return bearer_challenge(403, "insufficient_scope", "The token lacks the openid scope.")
    user = state.users.get(str(claims["sub"]))
    if user is None or not user.is_active:
        return bearer_challenge(401, "invalid_token", "The token's user no longer exists.")
    body = {"sub": claims["sub"], **claims_for_scopes(user, scopes)}
    named = claims.get(USERINFO_CLAIMS)  # the claims parameter's userinfo member (OIDC §5.5)
    if isinstance(named, list):
        body.update(claims_by_name(user, [str(name) for name in named]))
    return Response(json.dumps(body), mimetype="application/json",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
