"""/userinfo (OIDC Core §5.3): claims for the scopes an access token was granted."""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import json
from flask.typing import ResponseReturnValue

from uauth.core.claims import claims_by_name
from uauth.core.claims import claims_for_scopes
from uauth.oauth.grants import USERINFO_CLAIMS
from uauth.web.errors import NO_STORE
from uauth.web.resource import ResourceProtector
from uauth.web.resource import bearer_challenge
from uauth.web.resource import local_access_token
from uauth.web.state import get_state

bp = Blueprint("userinfo", __name__)
#: The same bearer-token checks as a host app's ``require_token`` (RFC 6750 challenges, the
#: provider's keys, deny list and user directory), with ``openid`` required.
protector = ResourceProtector(local_access_token)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    outcome = protector.authenticate("openid")
    if isinstance(outcome, Response):
        return outcome
    user = outcome.user
    if user is None:
        return bearer_challenge(401, "invalid_token", "The token is not a user's.")
    claims = outcome.claims
    custom = get_state().settings.custom_scopes
    body = {"sub": claims["sub"], **claims_for_scopes(custom, user, outcome.scopes)}
    named = claims.get(USERINFO_CLAIMS)  # the claims parameter's userinfo member (OIDC §5.5)
    if isinstance(named, list):
        body.update(claims_by_name(custom, user, [str(name) for name in named]))
    return Response(json.dumps(body), mimetype="application/json", headers=NO_STORE)
