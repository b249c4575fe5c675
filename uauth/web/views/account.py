"""/account: a signed-in person's own page: profile, password, and the apps they let in.

Every change is a POST with its own CSRF-protected form, answered by a redirect back to the
page (so a reload never resubmits); a form with errors is shown again with them, inline.
"""

from __future__ import annotations

import datetime
from typing import Any

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from uauth.core.appaccess import end_app_access
from uauth.core.attributes import Attribute
from uauth.core.attributes import catalogue
from uauth.core.attributes import display
from uauth.core.audit import PASSWORD_CHANGED
from uauth.core.audit import audit
from uauth.core.claims import describe_scope
from uauth.core.consents import apps_of
from uauth.core.consents import expect_apps
from uauth.core.consents import revoke_app
from uauth.core.models import User
from uauth.core.resources import CONSENT_PREFIX
from uauth.core.sessions import end
from uauth.core.sessions import of_user
from uauth.core.users import VERIFIED_BY
from uauth.core.users import EditableDirectory
from uauth.core.users import editable
from uauth.web.attribute_forms import make_form
from uauth.web.attribute_forms import submitted
from uauth.web.errors import wait_words
from uauth.web.forms import LogoutForm
from uauth.web.forms import PasswordForm
from uauth.web.forms import RevokeForm
from uauth.web.login import authentication
from uauth.web.login import cookie_user_id
from uauth.web.login import current_session
from uauth.web.login import session_user
from uauth.web.mfa import expect_factors
from uauth.web.mfa import needs_second_factor
from uauth.web.state import get_state
from uauth.web.views.mfa import account_panel
from uauth.web.views.recovery import ConfirmForm
from uauth.web.views.recovery import needs_verifying
from uauth.web.views.recovery import send_verification

bp = Blueprint("account", __name__)

PASSWORD_PREFIX = "pw"
REVOKE_PREFIX = "app"


def _signed_in() -> User | None:
    """The directory's user (not a host app's own user object) of a live login, once it has
    presented its second factor if it has one."""
    user = session_user() if authentication() is not None else None
    return None if user is None or needs_second_factor(user) else user


def _to_login() -> ResponseReturnValue:
    here = url_for("uauth.account.account")
    if authentication() is not None and session_user() is not None:
        return redirect(url_for("uauth.mfa.second_factor", next=here))
    return redirect(url_for("uauth.ui.login", next=here))


def _editable() -> tuple[Attribute, ...]:
    known = catalogue(get_state().settings.attributes)
    return tuple(a for a in known.values() if a.editable)


def _profile_form(user: User, *, submitted: bool) -> FlaskForm:
    return make_form(_editable(), user.profile, submitted=submitted,
                     required=get_state().settings.required_attributes)


def _editor() -> EditableDirectory | None:
    return editable(get_state().users)


def _read_only(user: User, *, everything: bool) -> list[tuple[str, str]]:
    """What the operator keeps in the profile (not editable here, but shared with apps), or
    ``everything`` when the user directory is a host app's that keeps its own profiles."""
    settings = get_state().settings
    known = catalogue(settings.attributes)
    names = [a.name for a in known.values() if everything or not a.editable]
    for scope in settings.custom_scopes.values():
        names.extend(n for n in scope["claims"].values() if n not in known)
    shown = []
    for name in dict.fromkeys(names):
        attribute = known.get(name) or Attribute(name, name.replace("_", " ").capitalize())
        value = display(user.profile, attribute)
        if value:
            shown.append((attribute.label, value))
    return shown


def _badges(user: User) -> dict[str, tuple[str, str]]:
    return {name: (("ok", "verified") if user.profile.get(flag) is True
                   else ("muted", "not verified"))
            for name, flag in VERIFIED_BY.items() if user.profile.get(name)}


def _date(timestamp: int | None) -> str:
    if not timestamp:
        return ""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%-d %b %Y")


def _apps(user: User) -> list[dict[str, Any]]:
    state = get_state()
    store = state.store
    custom = state.settings.custom_scopes
    shown = []
    for app in apps_of(store, user.id, state.now()):
        client = get_state().clients.get(app.client_id)
        if client is None:
            continue
        shown.append({
            "client_id": app.client_id, "name": client.name, "first_party": client.first_party,
            "scopes": [describe_scope(custom, s) for s in app.scopes
                       if s != "openid" and not s.startswith(CONSENT_PREFIX)],
            "since": _date(app.granted_at), "used": _date(app.last_authorized),
        })
    return shown


def _page(user: User, *, profile: FlaskForm | None = None, password: FlaskForm | None = None,
          status: int = 200, headers: dict[str, str] | None = None,
          apps: list[dict[str, Any]] | None = None, mfa: dict[str, object] | None = None
          ) -> ResponseReturnValue:
    """The account page; ``apps`` and ``mfa`` as the caller already read them, else read."""
    editing = _editor() is not None
    if editing:
        profile = profile or _profile_form(user, submitted=False)
        password = password or PasswordForm(prefix=PASSWORD_PREFIX, formdata=None)
    return render_template(
        "uauth/account.html", user=user, editable=editing, profile=profile,
        profile_fields=[profile[a.name] for a in _editable()] if profile else [],
        badges=_badges(user), read_only=_read_only(user, everything=not editing),
        password=password,
        revoke=RevokeForm(prefix=REVOKE_PREFIX, formdata=None),
        apps=_apps(user) if apps is None else apps,
        sessions_url=url_for("uauth.sessions.account_sessions"), logout=LogoutForm(formdata=None),
        mfa=account_panel(user) if mfa is None else mfa, date=_date,
        verify_form=ConfirmForm(prefix="verify", formdata=None) if editing and needs_verifying(
            get_state(), user) else None,
    ), status, headers or {}


@bp.get("/account")
def account() -> ResponseReturnValue:
    state = get_state()
    # The session, its user, their second factors and their apps: one trip.
    with state.store.batch():
        expect_factors()
        user_id = cookie_user_id()
        if user_id is not None:
            expect_apps(state.store, user_id)
        user = session_user() if authentication() is not None else None
        overview = state.factors.overview(user.id) if user is not None else None
        apps = _apps(user) if user is not None else None
    if user is None or overview is None or needs_second_factor(user, bool(overview.factors)):
        return _to_login()
    return _page(user, apps=apps, mfa=account_panel(user, overview))


@bp.post("/account/profile")
def profile() -> ResponseReturnValue:
    user, editor = _signed_in(), _editor()
    if user is None or editor is None:
        return _to_login() if user is None else redirect(url_for(".account"))
    form = _profile_form(user, submitted=True)
    if not form.validate_on_submit():
        return _page(user, profile=form, status=400)
    changed = editor.update_profile(user, submitted(form, _editable(), user.profile))
    flash("Your profile was saved." if changed else "Nothing to save: your profile is unchanged.")
    if "email" in changed and send_verification(get_state(), user):
        flash(f"We sent a link to {user.profile['email']}: follow it to confirm the address.")
    return redirect(url_for(".account"))


@bp.post("/account/password")
def password() -> ResponseReturnValue:
    user, users = _signed_in(), _editor()
    if user is None or users is None:
        return _to_login() if user is None else redirect(url_for(".account"))
    form = PasswordForm(prefix=PASSWORD_PREFIX)
    if form.validate_on_submit():
        throttle = get_state().throttle
        keys = throttle.reauth_keys(user.id, request.remote_addr)
        wait = throttle.wait(keys)
        if not wait and users.check_password(user, form.current_password.data):
            users.set_password(user, form.new_password.data)
            audit(PASSWORD_CHANGED, user_id=user.id)
            # whoever else holds a session of this account (maybe why it changes) is signed out
            here = current_session()
            others = [s for s in of_user(get_state(), user.id) if here is None or s.key != here.key]
            for login in others:
                end(get_state(), login, user)
            apps = (end_app_access(get_state(), user.id) if form.end_app_access.data else 0)
            flash("Your password was changed" + (
                "; your other sessions were signed out" if others else "") + (
                "; no app has access to your account any more" if apps else "") + ".")
            return redirect(url_for(".account"))
        if not wait:
            wait = throttle.failed(keys)
            form.current_password.errors.append("That is not your current password.")
        if wait:
            form.current_password.errors.append(wait_words(wait))
            return _page(user, password=form, status=429, headers={"Retry-After": str(wait)})
    return _page(user, password=form, status=400)


@bp.post("/account/apps")
def revoke() -> ResponseReturnValue:
    user = _signed_in()
    if user is None:
        return _to_login()
    form = RevokeForm(prefix=REVOKE_PREFIX)
    client_id = request.form.get("client_id", "")
    client = get_state().clients.get(client_id)
    if not form.validate_on_submit() or client is None:
        flash("That did not work: the page had expired. Please try again.", "error")
        return redirect(url_for(".account"))
    revoke_app(get_state(), user.id, client.client_id)
    flash(f"{client.name} no longer has access to your account.")
    return redirect(url_for(".account"))
