"""/authorize: parse and validate the request, run the interaction steps, then issue.

Views parse, call and render; the protocol rules live in ``uauth.oauth``, the steps in
:mod:`uauth.web.steps`, errors in :mod:`uauth.web.errors`. A pushed request (RFC 9126,
:mod:`uauth.oauth.par`) and a request object (RFC 9101, :mod:`uauth.web.request_objects`)
are replaced by their parameters first (a pushed request's once it is read, with the
person's session); errors in the request's shape found before Authlib reads it go to the
client when the request names a trusted redirect URI.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from flask import session
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from uauth.core.models import Client
from uauth.core.par import Pushed
from uauth.core.par import expect_pushed
from uauth.core.par import keep_pushed
from uauth.core.par import open_pushed
from uauth.oauth.authrequest import parse_auth_params
from uauth.oauth.grants.context import IssueContext
from uauth.oauth.par import check_pushed_required
from uauth.oauth.par import pushed_params
from uauth.oauth.par import pushed_request_uri
from uauth.oauth.responses import check_response_mode
from uauth.web.errors import error_page
from uauth.web.errors import error_response
from uauth.web.login import FRESH_LOGIN
from uauth.web.login import authentication
from uauth.web.login import session_user
from uauth.web.mfa import expect_factors
from uauth.web.mfa import listed_factor
from uauth.web.oauth_request import authorization_params
from uauth.web.oauth_request import oauth_request
from uauth.web.request_objects import expand_request_object
from uauth.web.state import get_state
from uauth.web.steps import STEPS
from uauth.web.steps import Interaction
from uauth.web.steps import answer
from uauth.web.steps import expect_consent
from uauth.web.steps import expect_held_grant
from uauth.web.steps import listed_consent
from uauth.web.steps import listed_held_grant
from uauth.web.views.inputs import BadInput
from uauth.web.views.inputs import check_text
from uauth.web.views.ui import bp

#: Parameters an authorization request may not repeat (RFC 6749 §3.1); RFC 8707 ``resource``
#: may.
_REPEATABLE = frozenset({"resource"})


def trusted_redirect_uri(params: MultiDict[str, str]) -> tuple[Client, str] | None:
    """The client and redirect URI an early error may go to: one ``client_id`` naming a client
    and one ``redirect_uri`` it registered, both in the request itself (RFC 6749 §4.1.2.1).
    Anything less gets a page."""
    ids, uris = params.getlist("client_id"), params.getlist("redirect_uri")
    if len(ids) != 1 or len(uris) != 1:
        return None
    client = get_state().clients.get(ids[0])
    if client is None or not client.check_redirect_uri(uris[0]):
        return None
    return client, uris[0]


def redirect_error(err: OAuth2Error, params: MultiDict[str, str]) -> ResponseReturnValue | None:
    """Send an error found before Authlib reads the request to the client, when the request
    names a trusted redirect URI; ``state`` goes back only when sent once and readable."""
    trusted = trusted_redirect_uri(params)
    if trusted is None:
        return None
    client, err.redirect_uri = trusted
    states = params.getlist("state")
    try:
        if len(states) == 1:
            check_text("state", states[0], get_state().settings.max_param_length)
            kept = states
        else:
            kept = []
    except BadInput:
        kept = []
    safe: MultiDict[str, str] = MultiDict(
        [(k, v) for k, v in params.items(multi=True) if k != "state"]
        + [("state", v) for v in kept])
    return error_response(err, safe, client)


def redirect_bad_input(exc: BadInput) -> ResponseReturnValue | None:
    """Unreadable input at /authorize (:mod:`.inputs`) for a trusted client and redirect URI:
    redirected as ``invalid_request``, or ``invalid_scope`` for a scope outside RFC 6749's
    scope-token grammar (§3.3); None: show the page."""
    err_class = InvalidScopeError if exc.param == "scope" else InvalidRequestError
    return redirect_error(err_class(str(exc)), authorization_params())


def early_error(params: MultiDict[str, str]) -> ResponseReturnValue | None:
    """Errors in a request's shape, redirected to a trusted redirect URI: a repeated parameter
    (RFC 6749 §3.1) and a missing ``response_type`` (``invalid_request``, §4.1.2.1)."""
    repeated = next((k for k in params if k not in _REPEATABLE and len(params.getlist(k)) > 1),
                    None)
    if repeated is not None:
        name = "".join(ch for ch in repeated[:40] if ch.isascii() and (ch.isalnum() or ch in "_-."))
        return redirect_error(InvalidRequestError(f"The parameter {name or '(unnamed)'} is "
                                                  "repeated."), params)
    if not params.get("response_type"):
        return redirect_error(InvalidRequestError("response_type is required."), params)
    return None


def answered_params(wire: MultiDict[str, str], pushed: str | None, opened: Pushed | None
                    ) -> MultiDict[str, str] | ResponseReturnValue:
    """The request /authorize answers: what was sent, or the pushed request it names, with its
    request object's parameters in; or the response to an error in its shape, redirected when
    the request names a trusted redirect URI."""
    try:
        sent = wire if pushed is None else pushed_params(opened)
        params = expand_request_object(get_state(), sent)
    except OAuth2Error as err:
        redirected = redirect_error(err, wire)
        return redirected if redirected is not None else error_response(err, wire)
    early = early_error(params)
    return early if early is not None else params


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    state = get_state()
    wire = authorization_params()
    pushed = pushed_request_uri(wire)
    params = wire  # a pushed request is read with the session, below
    if pushed is None:
        answered = answered_params(wire, None, None)
        if not isinstance(answered, MultiDict):
            return answered
        params = answered
    # The pushed request, the session, its user, their factors and consent: one trip.
    with state.store.batch():
        if pushed is not None:
            expect_pushed(state.store, pushed)
        expect_factors()
        consent_of = expect_consent(params)  # a pushed request's client_id is sent too
        held_of = expect_held_grant(params)
        signed_in = current_user.is_authenticated
        known = session_user() if signed_in else None
        auth = authentication() if known is not None else None
        user = known if auth else None
        has_factor = listed_factor(user, auth)
        consent = listed_consent(user, consent_of)
        held = listed_held_grant(auth, held_of)
        opened = (open_pushed(state.store, pushed, wire.get("client_id"))
                  if pushed is not None else None)
    if pushed is not None:
        answered = answered_params(wire, pushed, opened)
        if not isinstance(answered, MultiDict):
            return answered
        params = answered
    if signed_in and known is None:
        return error_page("This account cannot sign in to applications",
                          "You are signed in, but not with an account this provider knows.",
                          403)
    if not params.get("client_id"):  # Authlib would complain of the response_type first
        return error_page("This sign-in request cannot be completed",
                          "The request does not say which application it is for: client_id "
                          "is missing.", error="invalid_request")
    try:
        # Authlib refuses repeated parameters (RFC 6749 §3.1) early_error could not redirect.
        grant = state.server.get_consent_grant(oauth_request(params), end_user=user)
        check_response_mode(params, grant.redirect_uri)
        check_pushed_required(state.settings, grant.client, pushed, grant.redirect_uri)
        oidc = parse_auth_params(state, params, grant.client, grant.redirect_uri)
    except OAuth2Error as err:
        return error_response(err, params)
    ix = Interaction(params=params, grant=grant, client=grant.client, user=user, auth=auth,
                     oidc=oidc, wire=wire if pushed else None, pushed=opened,
                     has_factor=has_factor, consent=consent, held_grant=held)
    try:
        for step in STEPS:
            response = step(ix)
            if response is not None:
                if opened is not None and not ix.answered:  # the person has pages ahead
                    keep_pushed(state.store, opened)
                return response
    except OAuth2Error as err:
        if err.redirect_uri is None:
            err.redirect_uri = grant.redirect_uri
        return error_response(err, params, ix.client)
    grant.context = IssueContext(auth=ix.auth, requested_claims=ix.oidc.claims.to_record(),
                                 resources=ix.resources, held_grant=ix.held_grant)
    if FRESH_LOGIN in session:
        del session[FRESH_LOGIN]
    return answer(ix, ix.user)
