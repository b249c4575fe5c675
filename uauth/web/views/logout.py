"""/logout: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and signing out.

One endpoint for both: a client sends the browser here by GET or POST (§2), and the provider's
own pages post here to sign out. A POST carrying our CSRF token is the person's confirmation
(it brings the client's parameters back as hidden fields); anything else is a client's request.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import Blueprint
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from uauth.oauth.end_session import needs_confirmation
from uauth.web.errors import error_page
from uauth.web.forms import LogoutForm
from uauth.web.login import current_session
from uauth.web.login import end_browser_session
from uauth.web.login import session_user
from uauth.web.oauth_request import authorization_params
from uauth.web.oauth_request import oauth_request
from uauth.web.state import get_state

bp = Blueprint("logout", __name__)


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    state = get_state()
    params = authorization_params()
    try:
        validated = state.server.validate_endpoint_request("end_session", oauth_request(params))
    except OAuth2Error as err:
        # §4: an erroneous request never redirects; the person may still sign out here.
        return render_template("uauth/logout.html", form=LogoutForm(), user=session_user(),
                               params=[],
                               error=err.description, client=None), 400
    login = current_session() if current_user.is_authenticated else None
    if login is not None:
        # The directory's user, not the host's object (an embedding app's login manager may be
        # in charge): its id is what subjects are computed from.
        user = session_user()
        if "csrf_token" in request.form:
            if not LogoutForm().validate_on_submit():
                return error_page("This page has expired", "Go back and sign out again.")
        elif user is None or needs_confirmation(state.subjects, validated, login, user):
            return render_template("uauth/logout.html", form=LogoutForm(), user=user,
                                   client=validated.client, error=None,
                                   params=list(params.items(multi=True)))
    end_browser_session()  # EndSession.end_session leaves the browser's session to us
    response = state.server.create_endpoint_response("end_session", validated)
    return response or render_template("uauth/logged_out.html", client=validated.client)
