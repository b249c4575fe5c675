"""The front channel: /authorize, /login and the pages a person sees.

Views parse, call and render; the protocol rules live in ``uauth.grants``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import InteractionRequiredError
from authlib.oidc.core.errors import LoginRequiredError
from flask import Blueprint
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_url
from flask_login import login_user
from flask_login import logout_user
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from ..attributes import FORM_PREFIX
from ..attributes import catalogue
from ..attributes import make_form
from ..attributes import missing
from ..attributes import submitted
from ..audit import ACCESS_REFUSED
from ..audit import CONSENT_DENIED
from ..audit import CONSENT_GIVEN
from ..audit import LOGIN_FAILED
from ..audit import LOGIN_SUCCEEDED
from ..audit import LOGIN_THROTTLED
from ..audit import audit
from ..authrequest import AuthParams
from ..authrequest import login_hint
from ..authrequest import parse_auth_params
from ..claims import describe_scope
from ..claims import subject
from ..consents import has_consent
from ..consents import remember_consent
from ..extension import get_state
from ..forms import ConsentForm
from ..forms import LoginForm
from ..forms import LogoutForm
from ..groups import may_sign_in
from ..models import Client
from ..models import User
from ..responses import check_response_mode
from ..responses import render
from ..responses import response_mode
from ..server import UAuthRequest
from ..sessions import HANDLE
from ..sessions import KEEP_SESSION
from ..sessions import begin_browser_session
from ..sessions import current_session
from ..sessions import drop_uauth_keys
from ..throttle import DEVICE_COOKIE
from ..throttle import device_for
from ..throttle import set_device_cookie
from ..tokens import Authentication
from ..users import editable

bp = Blueprint("ui", __name__)

#: Form fields of our own pages that are not part of an authorization request.
_UI_FIELDS = {"csrf_token", "consent"}
#: Digest of the authorization request a login was made for (see :func:`logged_in_for`).
FRESH_LOGIN = "uauth_fresh_login"


def authentication() -> Authentication | None:
    """How the current browser session authenticated, or None (logged out, ended or expired;
    the session's lifetimes are enforced by :mod:`uauth.sessions`)."""
    if not current_user.is_authenticated:
        return None
    login = current_session()
    if login is None or login.user_id != str(current_user.get_id()):
        # Logged in to flask-login (a host app's loader, say) but the session ended here,
        # elsewhere or by the CLI: log out, or a host login page would wave the person back.
        forget_login()
        return None
    return Authentication(auth_time=login.auth_time, amr=tuple(login.amr), sid=login.sid)


def forget_login() -> None:
    """Log out of flask-login so the person signs in again (``prompt=login``, ``max_age``, an
    ended session): a re-authentication, so the stored session is not ended here."""
    setattr(g, KEEP_SESSION, True)
    logout_user()
    g.pop(KEEP_SESSION, None)
    drop_uauth_keys()


#: ``g`` key carrying the authentication methods of a login uauth's own page makes.
_AMR = "_uauth_amr"


def record_login(sender: Any, user: Any = None, **extra: Any) -> None:
    """flask-login signal receiver, the one place a login becomes a uauth session.

    Whoever's page it was (uauth's, the host app's, a remember-me cookie), it is when the
    person authenticated: a session is created in storage (:mod:`uauth.sessions`), with a
    fresh cookie handle. When the login page continues an authorization request, the login
    was made for that request (see :func:`logged_in_for`).
    """
    amr = tuple(g.pop(_AMR, ()))
    drop_uauth_keys(keep=HANDLE)  # nothing of uauth's from before the login survives it
    if user is None or get_state().users.get(str(user.get_id())) is None:
        return  # unknown to the directory: session_user() shows a page, never a loop
    begin_browser_session(str(user.get_id()), amr)
    continues = next_params(safe_next(request.args.get("next")))
    if continues:
        session[FRESH_LOGIN] = request_digest(continues)


def session_user() -> User | None:
    """The directory's user behind the logged-in session (the host's user object when its
    login manager is in charge), or None when logged out or unknown to the directory."""
    if not current_user.is_authenticated:
        return None
    logged_in = current_user._get_current_object()
    user = logged_in if isinstance(logged_in, User) else get_state().users.get(
        str(logged_in.get_id()))
    return user if user is not None and user.is_active else None


def login_view() -> str:
    """Where people log in: ``UAUTH_LOGIN_VIEW``, else the app's ``LoginManager.login_view``
    (the host's, when it has one), else uauth's own page."""
    configured: str = get_state().config["UAUTH_LOGIN_VIEW"]
    manager = getattr(current_app, "login_manager", None)
    return configured or getattr(manager, "login_view", None) or "uauth.ui.login"


def start_session(user: User, amr: tuple[str, ...] = ("pwd",)) -> None:
    """Log in on uauth's own page (:func:`record_login` creates the session).

    No fixation: the storage session gets a fresh handle, flask-login a fresh identity and
    the form CSRF token is renewed; a host app's other session data is left alone.
    """
    session.pop("csrf_token", None)
    setattr(g, _AMR, amr)
    login_user(user)
    session.permanent = True


def authorization_params() -> MultiDict[str, str]:
    """The authorization request's parameters, from the query and (for POST) the form."""
    params: MultiDict[str, str] = MultiDict()
    for source in (request.args, request.form if request.method == "POST" else MultiDict()):
        for key, value in source.items(multi=True):
            if key not in _UI_FIELDS and not key.startswith(FORM_PREFIX + "-"):
                params.add(key, value)
    return params


def oauth_request(params: MultiDict[str, str]) -> UAuthRequest:
    return UAuthRequest(request.method, request.full_path, request.headers, params,
                        get_state().issuer)


def error_page(title: str, message: str, status: int = 400, error: str | None = None,
               headers: dict[str, str] | None = None) -> ResponseReturnValue:
    """Our error page; should rendering fail too (the layout asks storage who is signed in,
    and storage may be what failed), the same words on a bare page."""
    try:
        body = render_template("uauth/error.html", title=title, message=message, error=error)
    except Exception:
        body = (f"<!doctype html><html lang=\"en\"><title>{escape(title)}</title>"
                f"<h1>{escape(title)}</h1><p>{escape(message)}</p></html>")
    return body, status, headers or {}


def error_response(err: OAuth2Error, params: MultiDict[str, str], client: Any = None
                   ) -> ResponseReturnValue:
    """Redirect the error to the client when its redirect URI is trusted; else a page."""
    if not err.redirect_uri:
        return error_page("This sign-in request cannot be completed",
                          err.description or "The application sent an invalid request.",
                          error=err.error)
    if client is None:  # for its default response mode; the redirect URI proved it exists
        client = get_state().clients.get(params.get("client_id"))
    body = [(k, v) for k, v in err.get_body() if k != "state"]
    if params.get("state"):
        body.append(("state", params["state"]))
    mode = response_mode(params, client, err.redirect_uri)
    return get_state().server.handle_response(*render(err.redirect_uri, body, mode))


def login_redirect(params: MultiDict[str, str]) -> ResponseReturnValue:
    """To the login page, which comes back here. A host app's login page must see a visitor,
    not someone logged in it would wave through, when a request asks for a new login."""
    back = url_for("uauth.ui.authorize") + "?" + urlencode(list(params.items(multi=True)))
    view = login_view()
    if view != "uauth.ui.login" and current_user.is_authenticated:
        forget_login()
    return redirect(login_url(view, back))


def request_digest(params: MultiDict[str, str]) -> str:
    """Names one authorization request, whatever the order of its parameters."""
    items = sorted(params.items(multi=True))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def logged_in_for(params: MultiDict[str, str]) -> bool:
    """True when this session's login was made for this very request: a login that
    ``prompt=login`` or ``max_age`` forced then counts once, instead of forcing another."""
    return session.get(FRESH_LOGIN) == request_digest(params)


def next_params(next_url: str | None) -> MultiDict[str, str]:
    """The authorization request a login page will continue, if that is where it goes."""
    if not next_url:
        return MultiDict()
    parts = urlsplit(next_url)
    if parts.path != url_for("uauth.ui.authorize"):
        return MultiDict()
    return MultiDict(parse_qsl(parts.query, keep_blank_values=True))


@dataclass
class Interaction:
    """One authorization request on its way through the interaction steps."""

    params: MultiDict[str, str]
    grant: Any
    client: Client
    user: User | None
    auth: Authentication | None
    oidc: AuthParams = field(default_factory=AuthParams)

    @property
    def prompts(self) -> frozenset[str]:
        return self.oidc.prompts

    @property
    def scopes(self) -> list[str]:
        return str(self.grant.request.scope).split()

    @property
    def consent_scopes(self) -> list[str]:
        """The granted scopes plus those of claims asked for by name (``claims`` parameter)."""
        return list(dict.fromkeys([*self.scopes, *sorted(self.oidc.claims.scopes)]))


#: A step returns a response to show (a page, a redirect, an error) or None to go on.
Step = Callable[[Interaction], ResponseReturnValue | None]


def login_needed(ix: Interaction) -> str | None:
    """Why the user must log in (again) for this request, or None (OIDC Core §3.1.2.1)."""
    if ix.user is None or ix.auth is None:
        return "no session"
    if ix.prompts & {"login", "select_account"}:  # one account per session: select = log in
        return "prompt"
    if ix.oidc.max_age is not None and get_state().now() - ix.auth.auth_time > ix.oidc.max_age:
        return "max_age"
    if ix.oidc.expected_sub is not None and ix.oidc.expected_sub != subject(ix.user, ix.client):
        return "another user"
    return None


def require_login(ix: Interaction) -> ResponseReturnValue | None:
    """Log in, or log in again when ``prompt``, ``max_age`` or ``id_token_hint`` say so;
    under ``prompt=none`` each of those is a ``login_required`` error instead."""
    reason = login_needed(ix)
    if reason is None:
        return None
    if ix.user is not None and logged_in_for(ix.params):
        if reason == "another user":
            raise LoginRequiredError("The signed-in user is not the one the request names.")
        return None
    if "none" in ix.prompts:
        raise LoginRequiredError("The user must sign in, which prompt=none does not allow.")
    return login_redirect(ix.params)


def require_group(ix: Interaction) -> ResponseReturnValue | None:
    """A client registered with ``--allow-group`` admits only members of those groups: anyone
    else gets a page that says why, and the app gets ``access_denied`` (RFC 6749 §4.1.2.1)."""
    assert ix.user is not None
    if may_sign_in(ix.user, ix.client.allowed_groups):
        return None
    audit(ACCESS_REFUSED, client_id=ix.client.client_id, user_id=ix.user.id,
          reason="not in an allowed group")
    err = AccessDeniedError("The user is not a member of a group allowed to use this client.")
    if "none" in ix.prompts:
        raise err
    params = [("error", err.error), ("error_description", err.description)]
    if ix.params.get("state"):
        params.append(("state", ix.params["state"]))
    params.append(("iss", get_state().issuer))
    mode = response_mode(ix.params, ix.client, ix.grant.redirect_uri)
    back = None if mode == "form_post" else add_params_to_uri(
        ix.grant.redirect_uri, params, fragment=(mode == "fragment"))
    return render_template("uauth/refused.html", client=ix.client, user=ix.user, back=back,
                           action=ix.grant.redirect_uri, params=params), 403


def require_attributes(ix: Interaction) -> ResponseReturnValue | None:
    """Ask, on one form, for every required attribute the user has no value for (the global
    ones and the client's), then let the flow go on where it was."""
    assert ix.user is not None
    state = get_state()
    editor = editable(state.users)
    known = catalogue(state.config["UAUTH_ATTRIBUTES"])
    needed = [name for name in missing(ix.user.profile, [
        *state.config["UAUTH_REQUIRED_ATTRIBUTES"], *ix.client.required_attributes])
              if name in known]
    if not needed or editor is None:  # a host app's own directory keeps its own profiles
        return None
    if "none" in ix.prompts:
        raise InteractionRequiredError("The user must complete their profile first.")
    asked = tuple(known[name] for name in needed)
    answered = request.method == "POST" and any(
        key.startswith(FORM_PREFIX + "-") for key in request.form)
    form = make_form(asked, ix.user.profile, required=needed, submitted=answered)
    if answered and form.validate():
        editor.update_profile(ix.user, submitted(form, asked, ix.user.profile))
        return None
    if answered and form.csrf_token.errors:
        return error_page("This page has expired", "Go back to the application and sign in again.")
    page = render_template("uauth/attributes.html", form=form, client=ix.client, user=ix.user,
                           fields=[form[a.name] for a in asked],
                           params=list(ix.params.items(multi=True)))
    return page, 400 if answered else 200


def require_consent(ix: Interaction) -> ResponseReturnValue | None:
    """Ask unless the client is first-party or the user already allowed these scopes;
    ``prompt=consent`` always asks, ``prompt=none`` makes asking a ``consent_required`` error."""
    state = get_state()
    assert ix.user is not None
    scopes = ix.consent_scopes
    if "consent" not in ix.prompts and (ix.client.first_party or has_consent(
            state.store, ix.user.id, ix.client.client_id, scopes)):
        return None
    if "none" in ix.prompts:
        raise ConsentRequiredError("The user has not allowed this yet, and prompt=none.")
    form = ConsentForm()
    decision = request.form.get("consent") if request.method == "POST" else None
    if decision is None:
        return render_template("uauth/consent.html", form=form, client=ix.client,
                               scopes=[(s, describe_scope(s)) for s in scopes],
                               essential=sorted(ix.oidc.claims.essential),
                               params=list(ix.params.items(multi=True)), user=ix.user)
    if not form.validate_on_submit():
        return error_page("This page has expired",
                          "Go back to the application and sign in again.")
    if decision != "allow":
        audit(CONSENT_DENIED, client_id=ix.client.client_id, user_id=ix.user.id)
        return issue(ix.grant, None, ix.params)
    remember_consent(state.store, ix.user.id, ix.client.client_id, scopes,
                     ttl=state.config["UAUTH_CONSENT_TTL"], now=state.now())
    audit(CONSENT_GIVEN, client_id=ix.client.client_id, user_id=ix.user.id,
          scope=" ".join(scopes))
    return None


#: The interaction, in order. Each step may stop the flow with a page or a redirect.
STEPS: list[Step] = [require_login, require_group, require_attributes, require_consent]


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
    grant.request.auth = ix.auth
    grant.request.requested_claims = ix.oidc.claims.to_record()
    if FRESH_LOGIN in session:
        del session[FRESH_LOGIN]
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    state = get_state()
    next_url = safe_next(request.args.get("next"))
    if login_view() != "uauth.ui.login":
        return redirect(login_url(login_view(), next_url or url_for("uauth.ui.home")))
    continues = next_params(next_url)
    form = LoginForm()
    error = None
    status = 200
    headers: dict[str, str] = {}
    if form.validate_on_submit():
        username = form.username.data
        keys = state.throttle.login_keys(username, request.remote_addr, device_for(
            request.cookies.get(DEVICE_COOKIE), username, current_app.secret_key or ""))
        wait = state.throttle.wait(keys)
        user = None if wait else state.users.authenticate(username, form.password.data)
        if user is not None:
            start_session(user)  # record_login notes the request it continues
            audit(LOGIN_SUCCEEDED, user_id=user.id, client_id=continues.get("client_id"))
            response = redirect(next_url or url_for("uauth.ui.home"))
            set_device_cookie(response, username, current_app.secret_key or "",
                              secure=state.issuer.startswith("https://"),
                              path=state.config["UAUTH_URL_PREFIX"] or "/")
            return response
        if not wait:
            state.metrics.login_failed()
            wait = state.throttle.failed(keys)
            known = state.users.find_by_username(username)  # for the log only, never shown
            audit(LOGIN_FAILED, user_id=known.id if known else None,
                  client_id=continues.get("client_id"), retry_after=wait or None)
            error, status = "Incorrect username or password.", 401
        else:
            audit(LOGIN_THROTTLED, client_id=continues.get("client_id"), retry_after=wait)
        if wait:
            # The same words whether or not the account exists, or the password was right.
            error = (f"{error + ' ' if error else ''}Too many failed attempts: please wait "
                     f"{wait} second{'s' if wait != 1 else ''} before trying again.")
            status, headers = 429, {"Retry-After": str(wait)}
    elif request.method == "POST":
        error = ("This page expired. Please sign in again." if form.csrf_token.errors
                 else "Enter your username and password.")
        status = 400
    else:
        form.username.data = login_hint(continues)
    return render_template("uauth/login.html", form=form, error=error,
                           client=state.clients.get(continues.get("client_id"))), status, \
        headers


@bp.get("/")
def home() -> ResponseReturnValue:
    user = session_user() if authentication() else None
    return render_template("uauth/home.html", user=user, form=LogoutForm())
