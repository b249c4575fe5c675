"""/login (uauth's own page, throttled against password guessing) and the home page."""

from __future__ import annotations

from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import login_url

from uauth.core.audit import LOGIN_FAILED
from uauth.core.audit import LOGIN_SUCCEEDED
from uauth.core.audit import LOGIN_THROTTLED
from uauth.core.audit import audit
from uauth.core.throttle import DEVICE_COOKIE
from uauth.core.throttle import DEVICE_MAX_AGE
from uauth.core.throttle import device_for
from uauth.core.throttle import new_device_cookie
from uauth.core.users import expect_username
from uauth.oauth.authrequest import login_hint
from uauth.web.errors import wait_words
from uauth.web.forms import LoginForm
from uauth.web.forms import LogoutForm
from uauth.web.login import authentication
from uauth.web.login import login_batch
from uauth.web.login import login_view
from uauth.web.login import next_params
from uauth.web.login import safe_next
from uauth.web.login import session_user
from uauth.web.login import start_session
from uauth.web.mfa import after_password
from uauth.web.mfa import passkeys_offered
from uauth.web.state import get_state
from uauth.web.views.ui import bp


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
        with state.store.batch():  # the name's index with the throttle's blocks: one trip
            expect_username(state.users, username)
            wait = state.throttle.wait(keys)
            user = None if wait else state.users.authenticate(username, form.password.data)
        if user is not None:
            with login_batch(user.id):  # the session, the audit event, the factors: one trip
                start_session(user)  # record_login notes the request it continues
                audit(LOGIN_SUCCEEDED, user_id=user.id, client_id=continues.get("client_id"))
                target = after_password(user, next_url)
            response = redirect(target)
            response.set_cookie(DEVICE_COOKIE, new_device_cookie(username,
                                                                 current_app.secret_key or ""),
                                max_age=DEVICE_MAX_AGE, secure=state.issuer.startswith("https://"),
                                httponly=True, samesite="Lax",
                                path=state.settings.url_prefix or "/")
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
            error = f"{error + ' ' if error else ''}{wait_words(wait)}"
            status, headers = 429, {"Retry-After": str(wait)}
    elif request.method == "POST":
        error = ("This page expired. Please sign in again." if form.csrf_token.errors
                 else "Enter your username and password.")
        status = 400
    else:
        form.username.data = login_hint(continues)
    # After a wrong password the name stays filled in: the cursor goes where the retry is.
    focus_password = bool(error and form.username.data)
    return render_template("uauth/login.html", form=form, error=error,
                           focus_password=focus_password,
                           client=state.clients.get(continues.get("client_id")),
                           passkeys=passkeys_offered(), next_url=next_url), status, headers


@bp.get("/")
def home() -> ResponseReturnValue:
    user = session_user() if authentication() else None
    return render_template("uauth/home.html", user=user, form=LogoutForm())
