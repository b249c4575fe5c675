"""The device authorization grant's two endpoints (RFC 8628): ``POST /device_authorization``
for the device (JSON), and ``/device``, the page where a signed-in person enters the user code
(or arrives with it from ``verification_uri_complete``), sees the app and the scopes, and
allows or denies. Wrong codes count against the person and the address
(:mod:`uauth.core.throttle`). The records are :mod:`uauth.core.device`, the protocol
:mod:`uauth.oauth.grants.device_code`.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import login_url
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length

from uauth.core.audit import ACCESS_REFUSED
from uauth.core.audit import CONSENT_DENIED
from uauth.core.audit import CONSENT_GIVEN
from uauth.core.audit import audit
from uauth.core.claims import describe_scope
from uauth.core.device import DeviceGrant
from uauth.core.device import decide
from uauth.core.device import expect_user_code
from uauth.core.device import find_by_user_code
from uauth.core.device import normalize_user_code
from uauth.core.groups import may_sign_in
from uauth.core.models import User
from uauth.web.errors import error_page
from uauth.web.errors import wait_words
from uauth.web.login import authentication
from uauth.web.login import login_view
from uauth.web.login import session_user
from uauth.web.mfa import expect_factors
from uauth.web.mfa import listed_factor
from uauth.web.mfa import second_factor_before
from uauth.web.state import get_state

from .token import back_channel_request

api = Blueprint("device_authorization", __name__)
bp = Blueprint("device", __name__)


class UserCodeForm(FlaskForm):  # type: ignore[misc]
    """The user code as typed; a second form on the same page posts ``decision``."""

    user_code = StringField("Code", validators=[Length(max=32)],
                            render_kw={"autocomplete": "off", "autocapitalize": "characters",
                                       "spellcheck": "false", "autofocus": True})


@api.post("/device_authorization")
def device_authorization() -> ResponseReturnValue:
    """RFC 8628 §3.1: the device asks for a device code and a user code."""
    response: Response = get_state().server.create_endpoint_response(
        "device_authorization", back_channel_request())
    return response


def _lookup(user: User, typed: str) -> tuple[tuple[str, DeviceGrant] | None, str | None, int]:
    """The pending request a typed code names, else why not and the seconds to wait."""
    state = get_state()
    throttle = state.throttle
    keys = throttle.user_code_keys(user.id, request.remote_addr)
    with state.store.batch():  # the code's pointer is read with the throttle's blocks
        expect_user_code(state.store, typed)
        wait = throttle.wait(keys)
        if wait:
            return None, wait_words(wait), wait
        found = find_by_user_code(state.store, typed) if normalize_user_code(typed) else None
    if found is None:
        wait = throttle.failed(keys)
        return None, "That code is not valid, or it has expired or been used.", wait
    return found, None, 0


@bp.route("/device", methods=["GET", "POST"])
def device() -> ResponseReturnValue:
    state = get_state()
    with state.store.batch():  # the session, its user and their factors: one trip
        expect_factors()
        auth = authentication()
        user = session_user() if auth else None
        has_factor = listed_factor(user, auth)
    if user is None or auth is None:
        return redirect(login_url(login_view(), request.full_path.rstrip("?")))
    if has_factor:  # whoever has a second factor presents it here too
        return redirect(url_for("uauth.mfa.second_factor", next=request.full_path.rstrip("?")))
    form = UserCodeForm()
    typed = (request.form.get("user_code") if request.method == "POST"
             else request.args.get("user_code")) or ""
    if request.method == "POST" and not form.validate_on_submit():
        return error_page("This page has expired", "Enter the code from your device again.")
    if not typed:
        return render_template("uauth/device.html", form=form, client=None, error=None)
    found, error, wait = _lookup(user, typed)
    if found is None:
        headers = {"Retry-After": str(wait)} if wait else {}
        return render_template("uauth/device.html", form=form, client=None, error=error), \
            429 if wait else 400, headers
    device_key, grant = found
    client = state.clients.get(grant.client_id)
    if client is None:
        return error_page("This device cannot be connected", "The app is no longer registered.")
    step = second_factor_before(user, list(auth.amr), client_requires=client.require_mfa,
                                back=url_for(".device", user_code=typed), has_factor=has_factor)
    if step is not None:  # UAUTH_MFA=required or a client that requires it, as at /authorize
        return step
    if not may_sign_in(user, client.allowed_groups):  # a client that admits only some groups
        with state.store.batch():  # the decision's record with the audit event
            decide(state.store, device_key, grant, user_id=None, auth_time=auth.auth_time,
                   amr=list(auth.amr), now=state.now())  # the device hears access_denied
            audit(ACCESS_REFUSED, client_id=client.client_id, user_id=user.id,
                  reason="not in an allowed group")
        return render_template("uauth/refused.html", client=client, user=user), 403
    decision = request.form.get("decision") if request.method == "POST" else None
    if decision is None:
        custom = state.settings.custom_scopes
        scopes = [(s, describe_scope(custom, s)) for s in grant.scope.split()]
        code = normalize_user_code(typed) or ""
        return render_template("uauth/device.html", form=form, client=client, user=user,
                               user_code=f"{code[:4]}-{code[4:]}", scopes=scopes)
    allowed = decision == "allow"
    with state.store.batch():  # the decision's record with its audit event, after the spend
        decided = decide(state.store, device_key, grant, user_id=user.id if allowed else None,
                         auth_time=auth.auth_time, amr=list(auth.amr), now=state.now())
        if decided:
            audit(CONSENT_GIVEN if allowed else CONSENT_DENIED, client_id=client.client_id,
                  user_id=user.id, scope=grant.scope if allowed else None)
    if not decided:
        return error_page("This code was already used", "Start again on your device.")
    return render_template("uauth/device.html", form=form, client=client,
                           done="approved" if allowed else "denied")
