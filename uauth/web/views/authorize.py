"""/authorize: parse and validate the request, run the interaction steps, then issue.

Views parse, call and render; the protocol rules live in ``uauth.oauth``, the steps in
:mod:`uauth.web.steps`, errors in :mod:`uauth.web.errors`.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import session
from flask.typing import ResponseReturnValue
from flask_login import current_user

from uauth.oauth.authrequest import parse_auth_params
from uauth.oauth.grants.context import IssueContext
from uauth.oauth.responses import check_response_mode
from uauth.web.errors import error_page
from uauth.web.errors import error_response
from uauth.web.login import FRESH_LOGIN
from uauth.web.login import authentication
from uauth.web.login import session_user
from uauth.web.oauth_request import authorization_params
from uauth.web.oauth_request import oauth_request
from uauth.web.state import get_state
from uauth.web.steps import STEPS
from uauth.web.steps import Interaction
from uauth.web.steps import issue
from uauth.web.views.ui import bp


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    state = get_state()
    params = authorization_params()
    known = session_user() if current_user.is_authenticated else None
    if current_user.is_authenticated and known is None:
        return error_page("This account cannot sign in to applications",
                          "You are signed in, but not with an account this provider knows.",
                          403)
    auth = authentication()
    user = known if auth else None
    try:
        # Authlib refuses repeated parameters here (RFC 6749 §3.1) with an error page.
        grant = state.server.get_consent_grant(oauth_request(params), end_user=user)
        check_response_mode(params, grant.redirect_uri)
        oidc = parse_auth_params(state, params, grant.client, grant.redirect_uri)
    except OAuth2Error as err:
        return error_response(err, params)
    ix = Interaction(params=params, grant=grant, client=grant.client, user=user, auth=auth,
                     oidc=oidc)
    try:
        for step in STEPS:
            response = step(ix)
            if response is not None:
                return response
    except OAuth2Error as err:
        if err.redirect_uri is None:
            err.redirect_uri = grant.redirect_uri
        return error_response(err, params, ix.client)
    grant.context = IssueContext(auth=ix.auth, requested_claims=ix.oidc.claims.to_record())
    if FRESH_LOGIN in session:
        del session[FRESH_LOGIN]
    return issue(grant, ix.user, params)


