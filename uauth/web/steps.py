"""The interaction steps of /authorize: log in, fill in required attributes, consent.

Each step receives the :class:`Interaction` and returns a response to show (a page, a redirect)
or None to go on; under ``prompt=none`` a step that would ask raises the OAuth error instead
(OIDC Core §3.1.2.6).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from functools import partial
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import InteractionRequiredError
from authlib.oidc.core.errors import LoginRequiredError
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_url
from werkzeug.datastructures import MultiDict

from uauth.core.attributes import FORM_PREFIX
from uauth.core.attributes import catalogue
from uauth.core.attributes import missing
from uauth.core.audit import ACCESS_REFUSED
from uauth.core.audit import CONSENT_DENIED
from uauth.core.audit import CONSENT_GIVEN
from uauth.core.audit import audit
from uauth.core.claims import describe_scope
from uauth.core.claims import subject
from uauth.core.consents import consented_scopes
from uauth.core.consents import covers
from uauth.core.consents import expect_consent as expect_consent_of
from uauth.core.consents import remember_consent
from uauth.core.grantlimits import HeldGrant
from uauth.core.grantlimits import expect_session_grant
from uauth.core.grantlimits import session_grant
from uauth.core.groups import may_sign_in
from uauth.core.loopback import is_loopback_only
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.par import Pushed
from uauth.core.resources import consent_entries
from uauth.core.resources import display
from uauth.core.tokens import Authentication
from uauth.core.users import editable
from uauth.oauth.authrequest import AuthParams
from uauth.oauth.grants.issuance import brings_refresh_tokens
from uauth.oauth.par import spend_pushed
from uauth.oauth.responses import response_mode
from uauth.web.attribute_forms import make_form
from uauth.web.attribute_forms import submitted
from uauth.web.errors import error_page
from uauth.web.errors import error_response
from uauth.web.forms import ConsentForm
from uauth.web.login import cookie_sid
from uauth.web.login import cookie_user_id
from uauth.web.login import forget_login
from uauth.web.login import logged_in_for
from uauth.web.login import login_view
from uauth.web.mfa import require_second_factor
from uauth.web.state import get_state


def login_redirect(params: MultiDict[str, str]) -> ResponseReturnValue:
    """To the login page, which comes back here. A host app's login page must see a visitor,
    not someone logged in it would wave through, when a request asks for a new login."""
    back = url_for("uauth.ui.authorize") + "?" + urlencode(list(params.items(multi=True)))
    view = login_view()
    if view != "uauth.ui.login" and current_user.is_authenticated:
        forget_login()
    return redirect(login_url(view, back))


@dataclass(frozen=True)
class ConsentRead:
    """The scopes a person allowed a client, as read (None: never allowed, or expired)."""

    scopes: frozenset[str] | None


@dataclass
class Interaction:
    """One authorization request on its way through the interaction steps."""

    params: MultiDict[str, str]
    grant: Any
    client: Client
    user: User | None
    auth: Authentication | None
    oidc: AuthParams = field(default_factory=AuthParams)
    #: What the browser sent, when it is not ``params``: a pushed request's client_id and
    #: request_uri (RFC 9126), carried through login and consent instead of the parameters.
    wire: MultiDict[str, str] | None = None
    #: The pushed request, spent when the response is issued.
    pushed: Pushed | None = None
    #: Whether the person has a second factor, listed with their session (None: not listed).
    has_factor: bool | None = None
    #: What the person allowed the client, read with their session (None: not read).
    consent: ConsentRead | None = None
    #: The grant the session holds for the client, read with it (None: not read).
    held_grant: HeldGrant | None = None
    #: Whether the response was issued (:func:`answer`): a pushed request is spent then.
    answered: bool = False
    #: Whether the person has just allowed the request on the consent page: the consent and
    #: its audit event are written with the response (:func:`answer`).
    allowed: bool = False

    @property
    def sent(self) -> MultiDict[str, str]:
        return self.params if self.wire is None else self.wire

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

    @property
    def resources(self) -> list[str]:
        """Resources (RFC 8707) the request names, validated by the grant."""
        return list(self.grant.context.resources)

    @property
    def consented(self) -> list[str]:
        """What allowing this request consents to: :attr:`consent_scopes` and its resources."""
        return [*self.consent_scopes, *consent_entries(self.resources)]


def answer(ix: Interaction, user: User | None) -> ResponseReturnValue:
    """The authorization response to ``ix`` (``user`` None: ``access_denied``)."""
    ix.answered = True
    return issue(ix.grant, user, ix.params,
                 ix.pushed.request_uri if ix.pushed is not None else None,
                 partial(remember_allowed, ix) if ix.allowed and user is not None else None)


def remember_allowed(ix: Interaction) -> None:
    """The consent the person has just given (:func:`require_consent`) and its audit event,
    merged with what the request read of their earlier consent (with the session)."""
    state = get_state()
    assert ix.user is not None
    known = None if ix.consent is None else (ix.consent.scopes or frozenset())
    remember_consent(state.store, ix.user.id, ix.client.client_id, ix.consented,
                     ttl=state.settings.consent_ttl, now=state.now(), known=known)
    audit(CONSENT_GIVEN, client_id=ix.client.client_id, user_id=ix.user.id,
          scope=" ".join(ix.consent_scopes))


def issue(grant: Any, user: User | None, params: MultiDict[str, str],
          pushed: str | None = None, remember: Callable[[], None] | None = None
          ) -> ResponseReturnValue:
    """The authorization response; a pushed request's request_uri is spent with it, so one
    pushed request gets one response (RFC 9126 §4), and ``remember`` (the consent just given)
    writes before it. A code's response only writes, so these go in its batch, with the note
    and the code; a front-channel response signs, which must not wait inside a batch's
    transaction (:meth:`Store.batch`)."""
    store = get_state().store
    batched = (pushed is not None or remember is not None) \
        and grant.request.payload.response_type == "code"
    try:
        with store.batch() if batched else nullcontext():
            if remember is not None:
                remember()
            if pushed is not None:
                spend_pushed(store, pushed)
            triple = grant.create_authorization_response(grant.redirect_uri, user)
    except OAuth2Error as err:
        if err.redirect_uri is None:
            err.redirect_uri = grant.redirect_uri
        return error_response(err, params, grant.client)
    return get_state().server.handle_response(*triple)


#: A step returns a response to show (a page, a redirect, an error) or None to go on.
Step = Callable[[Interaction], ResponseReturnValue | None]


def login_needed(ix: Interaction) -> str | None:
    """Why the user must log in (again) for this request, or None (OIDC Core §3.1.2.1)."""
    if ix.user is None or ix.auth is None:
        return "no session"
    if ix.prompts & {"login", "select_account"}:  # one account per session: select = log in
        return "prompt"
    if ix.oidc.max_age == 0:  # OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login
        return "max_age"
    if ix.oidc.max_age is not None and get_state().now() - ix.auth.auth_time > ix.oidc.max_age:
        return "max_age"
    expected = ix.oidc.expected_sub
    if expected is not None and expected != subject(get_state().subjects, ix.user, ix.client):
        return "another user"
    return None


def require_login(ix: Interaction) -> ResponseReturnValue | None:
    """Log in, or log in again when ``prompt``, ``max_age`` or ``id_token_hint`` say so;
    under ``prompt=none`` each of those is a ``login_required`` error instead."""
    reason = login_needed(ix)
    if reason is None:
        return None
    if ix.user is not None and logged_in_for(ix.sent):
        if reason == "another user":
            raise LoginRequiredError("The signed-in user is not the one the request names.")
        return None
    if "none" in ix.prompts:
        raise LoginRequiredError("The user must sign in, which prompt=none does not allow.")
    return login_redirect(ix.sent)


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
    known = catalogue(state.settings.attributes)
    needed = [name for name in missing(ix.user.profile, [
        *state.settings.required_attributes, *ix.client.required_attributes])
              if name in known]
    if not needed:
        return None
    # Asked only now: a check against a runtime protocol costs 4 µs, on every /authorize.
    editor = editable(state.users)
    if editor is None:  # a host app's own directory keeps its own profiles
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
                           params=list(ix.sent.items(multi=True)))
    return page, 400 if answered else 200


def requested_client(params: MultiDict[str, str]) -> tuple[str | None, Client | None]:
    """The request's ``client_id``, and its client when this worker holds it (never a read):
    what the reads ahead below decide on before the session is read."""
    client_id = params.get("client_id")
    return client_id, get_state().clients.cached(client_id) if client_id else None


def expect_consent(params: MultiDict[str, str]) -> str | None:
    """Read the signed-in person's consent to the request's client with their session, in the
    caller's batch, as :func:`~uauth.web.mfa.expect_factors` reads their factors: ``/authorize``
    then waits once for all of them (:func:`listed_consent` takes the answer). Not asked for
    ``prompt=consent`` or a client this worker holds as first party, whose step reads nothing.

    :returns: the client id it asked for, or None."""
    client_id, client = requested_client(params)
    if not client_id or (client is not None and client.first_party):
        return None
    user_id = cookie_user_id()
    if user_id is None or "consent" in params.get("prompt", "").split():
        return None
    expect_consent_of(get_state().store, user_id, client_id)
    return client_id


def expect_held_grant(params: MultiDict[str, str]) -> str | None:
    """Read the grant the browser's session holds for the request's client with the session,
    in the caller's batch (:func:`listed_held_grant` takes the answer): a response without
    refresh tokens reuses it. The session's ``sid`` is the cookie's, before the session is read.
    Not asked for a code that will bring refresh tokens to a client this worker holds: that
    code starts a grant of its own (a pushed request's parameters are not read yet: its code).

    :returns: the client id it asked for, or None."""
    client_id, client = requested_client(params)
    if not client_id or (client is not None and brings_refresh_tokens(
            client, params.get("response_type", "code"), params.get("scope", ""))):
        return None
    sid = cookie_sid()
    if sid is None:
        return None
    expect_session_grant(get_state(), sid, client_id)
    return client_id


def listed_held_grant(auth: Authentication | None, client_id: str | None) -> HeldGrant | None:
    """The grant :func:`expect_held_grant` asked for, with its deny-list entry read after it
    when there is one (None: it did not ask, or no one is signed in); called in its batch."""
    if auth is None or auth.sid is None or client_id is None:
        return None
    return HeldGrant(auth.sid, client_id, session_grant(get_state(), auth.sid, client_id))


def listed_consent(user: User | None, client_id: str | None) -> ConsentRead | None:
    """What ``user`` allowed the client :func:`expect_consent` asked for (None: it did not
    ask, or no one is signed in); called in its batch."""
    if user is None or client_id is None:
        return None
    return ConsentRead(consented_scopes(get_state().store, user.id, client_id))


def require_consent(ix: Interaction) -> ResponseReturnValue | None:
    """Ask unless the client is first-party or the user already allowed these scopes;
    ``prompt=consent`` always asks, ``prompt=none`` makes asking a ``consent_required`` error."""
    state = get_state()
    assert ix.user is not None
    scopes = ix.consent_scopes
    if "consent" not in ix.prompts and (ix.client.first_party or covers(
            ix.consent.scopes if ix.consent is not None else consented_scopes(
                state.store, ix.user.id, ix.client.client_id), ix.consented)):
        return None
    if "none" in ix.prompts:
        raise ConsentRequiredError("The user has not allowed this yet, and prompt=none.")
    form = ConsentForm()
    custom = state.settings.custom_scopes
    decision = request.form.get("consent") if request.method == "POST" else None
    if decision is None:
        return render_template("uauth/consent.html", form=form, client=ix.client,
                               scopes=[(s, describe_scope(custom, s)) for s in scopes],
                               essential=sorted(ix.oidc.claims.essential),
                               params=list(ix.sent.items(multi=True)), user=ix.user,
                               resources=display(state.settings, ix.resources),
                               **client_facts(ix.client, ix.grant.redirect_uri))
    if not form.validate_on_submit():
        return error_page("This page has expired",
                          "Go back to the application and sign in again.")
    if decision != "allow":
        audit(CONSENT_DENIED, client_id=ix.client.client_id, user_id=ix.user.id)
        return answer(ix, None)
    ix.allowed = True  # written with the response
    return None


def client_facts(client: Client, redirect_uri: str) -> dict[str, Any]:
    """What the consent page says about a client that registered itself: its name as it gave
    it, the host its redirect goes to, and whether that is only the person's own machine."""
    return {"self_registered": client.self_registered,
            "redirect_host": urlsplit(redirect_uri).hostname or redirect_uri,
            "loopback_only": is_loopback_only([redirect_uri])}


#: The interaction, in order. Each step may stop the flow with a page or a redirect.
STEPS: list[Step] = [require_login, require_group, require_second_factor, require_attributes,
                     require_consent]
