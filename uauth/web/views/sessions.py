"""/account/sessions: a person's own login sessions, each of which they can end."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from uauth.core.appaccess import end_app_access
from uauth.core.consents import expect_apps
from uauth.core.sessions import clients_by_session
from uauth.core.sessions import end
from uauth.core.sessions import end_all
from uauth.core.sessions import expect_sessions
from uauth.core.sessions import of_user
from uauth.web.errors import error_page
from uauth.web.forms import SessionsForm
from uauth.web.login import authentication
from uauth.web.login import cookie_user_id
from uauth.web.login import current_session
from uauth.web.login import end_browser_session
from uauth.web.login import session_user
from uauth.web.mfa import expect_factors
from uauth.web.mfa import listed_factor
from uauth.web.mfa import needs_second_factor
from uauth.web.state import get_state
from uauth.web.useragent import describe

bp = Blueprint("sessions", __name__)


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.route("/account/sessions", methods=["GET", "POST"])
def account_sessions() -> ResponseReturnValue:
    here = url_for("uauth.sessions.account_sessions")
    state = get_state()
    # The session, its user, their second factors, their sessions and apps: one trip.
    with state.store.batch():
        expect_factors()
        user_id = cookie_user_id()
        if user_id is not None:
            expect_sessions(state, user_id)
            expect_apps(state.store, user_id)
        login = current_session() if current_user.is_authenticated else None
        user = session_user() if login is not None else None
        if login is None or user is None:
            return redirect(url_for("uauth.ui.login", next=here))
        has_factor = listed_factor(user, authentication())
        sessions = of_user(state, login.user_id)
        by_session = clients_by_session(state, login.user_id)
    if needs_second_factor(user, has_factor):  # as on /account: a password alone is not enough
        return redirect(url_for("uauth.mfa.second_factor", next=here))
    form = SessionsForm()
    if form.validate_on_submit():
        if form.everywhere.data:
            end_all(state, login.user_id)
            if form.end_app_access.data:
                end_app_access(state, login.user_id)
            end_browser_session()
            return render_template("uauth/logged_out.html", client=None)
        target = next((s for s in sessions if s.sid == form.sid.data), None)
        if target is not None and target.key == login.key:
            end_browser_session()
            return render_template("uauth/logged_out.html", client=None)
        if target is not None:
            end(state, target, user)
        return redirect(here)
    if form.is_submitted():
        return error_page("This page has expired", "Reload the page and try again.")
    rows: list[dict[str, Any]] = []
    for item in sessions:
        clients = [state.clients.get(cid) for cid in by_session.get(item.sid, [])]
        rows.append({"sid": item.sid, "current": item.key == login.key,
                     "started": when(item.auth_time), "last_seen": when(item.last_seen),
                     "user_agent": describe(item.user_agent), "raw_agent": item.user_agent,
                     "clients": [c.name for c in clients if c is not None]})
    return render_template("uauth/sessions.html", form=form, rows=rows, user=user)
