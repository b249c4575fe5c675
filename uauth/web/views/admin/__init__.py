"""The admin console at ``/admin``: people, invitations, groups, apps, registration tokens,
keys and the audit trail.

Only signed-in people with the admin role see it; everyone else gets the plain 404 of a page
that does not exist (and an audit event). Unless ``UAUTH_MFA`` is off, an admin's session must
have used a second factor (they are sent to present one, or to set one up). Every change is a
POST with a CSRF token, audited as ``admin`` with the admin as ``actor``; dangerous ones
(removing an app or a person, resetting second factors) ask for the admin's password again
(``UAUTH_REAUTH_TTL``). Server-rendered, no scripts, usable on a phone, like every other page.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired
from wtforms.validators import Length

from uauth.core.audit import ADMIN
from uauth.core.audit import ADMIN_DENIED
from uauth.core.audit import audit
from uauth.core.audittrail import Query
from uauth.core.audittrail import event_names
from uauth.core.audittrail import search
from uauth.core.models import User
from uauth.core.people import mfa_available
from uauth.core.users import StoreUsers
from uauth.web.login import authentication
from uauth.web.login import current_session
from uauth.web.login import safe_next
from uauth.web.login import session_user
from uauth.web.state import get_state

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: Session key: when this admin last re-entered their password (Unix seconds).
REAUTH = "uauth_admin_reauth"
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


class ActionForm(FlaskForm):  # type: ignore[misc]
    """Only a CSRF token: the console's buttons and plain fields are read from the form."""


class ReauthForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField("Your password", validators=[DataRequired("Enter your password."),
                                                          Length(max=1024)],
                             render_kw={"autocomplete": "current-password", "autofocus": True})


def admin() -> User:
    """The admin using the console (the guard has checked)."""
    return cast(User, g.uauth_admin)


def directory() -> StoreUsers:
    users = get_state().users
    if not isinstance(users, StoreUsers):
        abort(404)  # a host app's directory: it manages its own people
    return users


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    user = session_user() if authentication() is not None else None
    if user is None or not user.admin or not isinstance(get_state().users, StoreUsers):
        audit(ADMIN_DENIED, user_id=user.id if user else None, path=request.path[:100])
        abort(404)  # never a hint of what is here
    login = current_session()
    if mfa_available(get_state()) and (login is None or "mfa" not in login.amr):
        # Admins sign in with a second factor: present it now, or set one up first (the
        # second-factor page sends a person without one to enrol).
        back = request.full_path.rstrip("?") if request.method == "GET" else url_for(".people")
        return redirect(url_for("uauth.mfa.second_factor", next=back))
    g.uauth_admin = user
    return None


@bp.context_processor
def _layout() -> dict[str, Any]:
    return {"action_form": ActionForm(formdata=None), "when": when,
            "admin_user": g.get("uauth_admin")}


def when(timestamp: int | float | None) -> str:
    if not timestamp:
        return ""
    moment = datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def checked() -> bool:
    """The POST carries a valid CSRF token; otherwise flash why and say no."""
    if ActionForm().validate_on_submit():
        return True
    flash("That did not work: the page had expired. Please try again.", "error")
    return False


def act(action: str, **fields: Any) -> None:
    """Audit one change made in the console, with the admin as actor."""
    who = admin()
    audit(ADMIN, action=action, actor=who.username, actor_id=who.id, via="console", **fields)


def fresh_reauth() -> bool:
    done = session.get(REAUTH)
    ttl = get_state().settings.reauth_ttl
    return isinstance(done, int) and 0 <= get_state().now() - done <= ttl


def dangerous(view: F) -> F:
    """The view runs only after the admin re-entered their password (recently)."""
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if not fresh_reauth():
            # A POST to …/<id>/remove comes back to …/<id>, whose button the admin presses again
            back = request.path.rsplit("/", 1)[0] if request.method == "POST" else \
                request.full_path
            nxt = safe_next(back) or url_for(".people")
            flash("Enter your password again to do this.")
            return redirect(url_for(".reauth", next=nxt))
        return view(*args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return cast(F, wrapper)


@bp.route("/reauth", methods=["GET", "POST"])
def reauth() -> ResponseReturnValue:
    state = get_state()
    form = ReauthForm()
    nxt = safe_next(request.args.get("next")) or url_for(".people")
    if form.validate_on_submit():
        keys = state.throttle.reauth_keys(admin().id, request.remote_addr)
        wait = state.throttle.wait(keys)
        if not wait and directory().check_password(admin(), form.password.data):
            session[REAUTH] = state.now()
            act("reauth")
            return redirect(nxt)
        if not wait:
            wait = state.throttle.failed(keys)
            form.password.errors.append("That is not your password.")
        if wait:
            form.password.errors.append(f"Too many failed attempts: wait {wait} s.")
        return render_template("uauth/admin/reauth.html", form=form), 401
    return render_template("uauth/admin/reauth.html", form=form)


@bp.get("/", strict_slashes=False)
def index() -> ResponseReturnValue:
    return redirect(url_for(".people"))


@bp.get("/audit")
def audit_view() -> ResponseReturnValue:
    store = get_state().store
    args = request.args
    query = Query(text=args.get("q", "")[:100], event=args.get("event", "")[:64],
                  user_id=args.get("user_id", "")[:64], client_id=args.get("client_id", "")[:128])
    events = search(store, query)
    return render_template("uauth/admin/audit.html", events=events, query=query,
                           event_names=event_names(store),
                           retention=get_state().settings.audit_retention // 86400)


@bp.route("/keys", methods=["GET", "POST"])
def keys() -> ResponseReturnValue:
    state = get_state()
    if request.method == "POST" and checked():
        added = state.keys.rotate(list(state.settings.signing_algs))
        act("keys.rotate", kids=" ".join(key.kid for key in added))
        flash(f"Added {len(added)} new key(s): published now, signing after the "
              "pre-publication time.")
        return redirect(url_for(".keys"))
    return render_template("uauth/admin/keys.html", rows=state.keys.describe())


def register() -> None:
    # Deferred on purpose: the page modules import this package's blueprint and helpers.
    from . import apps
    from . import people
    from . import registration

    apps.register(bp)
    people.register(bp)
    registration.register(bp)


register()
