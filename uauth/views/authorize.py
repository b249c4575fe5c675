"""The front channel: /authorize, /login, /logout and the pages a person sees.

Views parse, call and render; the protocol rules live in ``grants.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user
from werkzeug.datastructures import MultiDict

from ..claims import SCOPE_DESCRIPTIONS
from ..clients import get_client
from ..consents import has_consent
from ..consents import remember_consent
from ..extension import get_state
from ..forms import ConsentForm
from ..forms import LoginForm
from ..forms import LogoutForm
from ..models import Client
from ..models import User
from ..responses import check_response_mode
from ..responses import render
from ..responses import response_mode
from ..server import UAuthRequest
from ..tokens import Authentication

bp = Blueprint("ui", __name__)

#: Form fields of our own pages that are not part of an authorization request.
_UI_FIELDS = {"csrf_token", "consent"}
AUTH_TIME = "uauth_auth_time"
AMR = "uauth_amr"


def authentication() -> Authentication | None:
    """How the current browser session authenticated, or None (logged out or too old)."""
    if not current_user.is_authenticated:
        return None
    auth_time = session.get(AUTH_TIME)
    state = get_state()
    lifetime = state.config["UAUTH_SESSION_TTL"]
    if not isinstance(auth_time, int) or auth_time + lifetime <= state.now():
        logout_user()
        session.clear()
        return None
    return Authentication(auth_time=auth_time, amr=tuple(session.get(AMR, ["pwd"])))


def start_session(user: User, amr: tuple[str, ...] = ("pwd",)) -> None:
    """Log in with a fresh session: nothing from before the login survives (no fixation)."""
    session.clear()
    login_user(user)
    session.permanent = True
    session[AUTH_TIME] = get_state().now()
    session[AMR] = list(amr)


def authorization_params() -> MultiDict[str, str]:
    """The authorization request's parameters, from the query and (for POST) the form."""
    params: MultiDict[str, str] = MultiDict()
    for source in (request.args, request.form if request.method == "POST" else MultiDict()):
        for key, value in source.items(multi=True):
            if key not in _UI_FIELDS:
                params.add(key, value)
    return params


def oauth_request(params: MultiDict[str, str]) -> UAuthRequest:
    return UAuthRequest(request.method, request.full_path, request.headers, params,
                        get_state().issuer, args=request.args)


def error_page(title: str, message: str, status: int = 400, error: str | None = None
               ) -> ResponseReturnValue:
    return render_template("uauth/error.html", title=title, message=message, error=error), status


def error_response(err: OAuth2Error, params: MultiDict[str, str], client: Any = None
                   ) -> ResponseReturnValue:
    """Redirect the error to the client when its redirect URI is trusted; else a page."""
    if not err.redirect_uri:
        return error_page("This sign-in request cannot be completed",
                          err.description or "The application sent an invalid request.",
                          error=err.error)
    body = [(k, v) for k, v in err.get_body() if k != "state"]
    if params.get("state"):
        body.append(("state", params["state"]))
    return get_state().server.handle_response(*render(err.redirect_uri, body,
                                                      response_mode(params, client)))


def login_redirect(params: MultiDict[str, str]) -> ResponseReturnValue:
    back = url_for("uauth.ui.authorize") + "?" + urlencode(list(params.items(multi=True)))
    return redirect(url_for("uauth.ui.login", next=back))


@dataclass
class Interaction:
    """One authorization request on its way through the interaction steps."""

    params: MultiDict[str, str]
    grant: Any
    client: Client
    user: User | None
    auth: Authentication | None

    @property
    def prompts(self) -> set[str]:
        return set(self.params.get("prompt", "").split())

    @property
    def scopes(self) -> list[str]:
        return str(self.grant.request.scope).split()


#: A step returns a response to show (a page, a redirect, an error) or None to go on.
Step = Callable[[Interaction], ResponseReturnValue | None]


def require_login(ix: Interaction) -> ResponseReturnValue | None:
    if ix.user is None:
        return login_redirect(ix.params)
    return None


def require_consent(ix: Interaction) -> ResponseReturnValue | None:
    """Ask unless the client is first-party or the user already allowed these scopes."""
    state = get_state()
    assert ix.user is not None
    if ix.client.first_party or has_consent(state.store, ix.user.id, ix.client.client_id,
                                            ix.scopes):
        return None
    form = ConsentForm()
    decision = request.form.get("consent") if request.method == "POST" else None
    if decision is None:
        return render_template("uauth/consent.html", form=form, client=ix.client,
                               scopes=[(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in ix.scopes],
                               params=list(ix.params.items(multi=True)), user=ix.user)
    if not form.validate_on_submit():
        return error_page("This page has expired",
                          "Go back to the application and sign in again.")
    if decision != "allow":
        return issue(ix.grant, None, ix.params)
    remember_consent(state.store, ix.user.id, ix.client.client_id, ix.scopes,
                     ttl=state.config["UAUTH_CONSENT_TTL"], now=state.now())
    return None


#: The interaction, in order. Each step may stop the flow with a page or a redirect.
STEPS: list[Step] = [require_login, require_consent]


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    state = get_state()
    params = authorization_params()
    auth = authentication()
    user = current_user._get_current_object() if auth else None
    try:
        grant = state.server.get_consent_grant(oauth_request(params), end_user=user)
        check_response_mode(params, grant.redirect_uri)
    except OAuth2Error as err:
        return error_response(err, params)
    ix = Interaction(params=params, grant=grant, client=grant.client, user=user, auth=auth)
    try:
        for step in STEPS:
            response = step(ix)
            if response is not None:
                return response
    except OAuth2Error as err:
        if err.redirect_uri is None:
            err.redirect_uri = grant.redirect_uri
        return error_response(err, params, ix.client)
    grant.request.auth = ix.auth
    return issue(grant, ix.user, params)


def issue(grant: Any, user: User | None, params: MultiDict[str, str]) -> ResponseReturnValue:
    try:
        triple = grant.create_authorization_response(grant.redirect_uri, user)
    except OAuth2Error as err:
        if err.redirect_uri is None:
            err.redirect_uri = grant.redirect_uri
        return error_response(err, params, grant.client)
    return get_state().server.handle_response(*triple)


def safe_next(target: str | None) -> str | None:
    """``next`` only ever points inside the provider (no open redirect)."""
    if not target or len(target) > 8192:
        return None
    parts = urlsplit(target)
    prefix = get_state().config["UAUTH_URL_PREFIX"]
    if parts.scheme or parts.netloc or not target.startswith(prefix + "/"):
        return None
    if target.startswith("//") or "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target


def _client_in(next_url: str | None) -> Any:
    if not next_url:
        return None
    client_ids = parse_qs(urlsplit(next_url).query).get("client_id")
    return get_client(get_state().store, client_ids[0]) if client_ids else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    state = get_state()
    next_url = safe_next(request.args.get("next"))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        user = state.users.authenticate(form.username.data, form.password.data)
        if user is not None:
            start_session(user)
            return redirect(next_url or url_for("uauth.ui.home"))
        error, status = "Incorrect username or password.", 401
    elif request.method == "POST":
        if form.csrf_token.errors:
            error = "This page expired. Please sign in again."
        status = 400
    return render_template("uauth/login.html", form=form, error=error,
                           client=_client_in(next_url)), status


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        return render_template("uauth/logged_out.html")
    if not current_user.is_authenticated:
        return render_template("uauth/logged_out.html")
    return render_template("uauth/logout.html", form=form, user=current_user)


@bp.get("/")
def home() -> ResponseReturnValue:
    user = current_user if authentication() else None
    return render_template("uauth/home.html", user=user, form=LogoutForm())
