"""Forgot your password, reset it from a link, and confirm an email address from a link.

Links work once and expire (:mod:`uauth.core.links`). The "forgot" page answers the same words,
status and (near enough) time whether or not the address or username is known: the lookup
happens, the mail is queued for the mail thread, and the page does not wait for it. Following a
link shows a page with a button; only the button's POST uses the link up, so a mail scanner
that fetches links burns nothing.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length

from uauth.core.audit import EMAIL_VERIFIED
from uauth.core.audit import LINK_REFUSED
from uauth.core.audit import PASSWORD_RESET
from uauth.core.audit import PASSWORD_RESET_REQUESTED
from uauth.core.audit import audit
from uauth.core.consents import apps_of
from uauth.core.consents import revoke_app
from uauth.core.links import issue
from uauth.core.links import peek
from uauth.core.links import redeem
from uauth.core.models import User
from uauth.core.records import RESET
from uauth.core.records import VERIFY
from uauth.core.reset import find_accounts
from uauth.core.reset import normal_email
from uauth.core.reset import within_limit
from uauth.core.sessions import end_all
from uauth.core.state import State
from uauth.core.users import EditableDirectory
from uauth.core.users import editable
from uauth.storage import Record
from uauth.web.errors import error_page
from uauth.web.forms import confirm_password_field
from uauth.web.forms import new_password_field
from uauth.web.login import authentication
from uauth.web.login import session_user
from uauth.web.outbox import absolute
from uauth.web.outbox import render_mail
from uauth.web.outbox import send
from uauth.web.state import get_state

bp = Blueprint("recovery", __name__)


class ForgotForm(FlaskForm):  # type: ignore[misc]
    identifier = StringField(
        "Username or email address",
        validators=[DataRequired("Enter your username or email address."), Length(max=320)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "autofocus": True})


class ResetForm(FlaskForm):  # type: ignore[misc]
    new_password = new_password_field()
    confirm = confirm_password_field()
    sign_out_apps = BooleanField("Also take away the access of every app I allowed")


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """Only its CSRF token: the page's button confirms."""


def mail_ready(state: State) -> bool:
    return state.mailer.configured and editable(state.users) is not None


def send_reset_link(state: State, user: User) -> str:
    """Create a reset link for ``user``, queue its mail, and return the link (the CLI and
    the console show it to an operator who asked for it)."""
    ttl = state.settings.reset_ttl
    link = issue(state.store, RESET, {"user_id": user.id}, ttl=ttl, now=state.now())
    url = absolute(state, "uauth.recovery.reset", token=link.token)
    if user.profile.get("email"):
        send(state, render_mail("reset", str(user.profile["email"]), user_id=user.id, url=url,
                                user=user, minutes=ttl // 60))
    return url


def needs_verifying(state: State, user: User) -> bool:
    """An unconfirmed address, and a way to confirm it."""
    return bool(user.profile.get("email")) and user.profile.get("email_verified") is not True \
        and state.mailer.configured


def send_verification(state: State, user: User) -> bool:
    """Mail a link that confirms the user's current email address; False without one."""
    email = user.profile.get("email")
    if not email or not state.mailer.configured:
        return False
    ttl = state.settings.verify_ttl
    link = issue(state.store, VERIFY, {"user_id": user.id, "email": email}, ttl=ttl,
                 now=state.now())
    url = absolute(state, "uauth.recovery.verify", token=link.token)
    return send(state, render_mail("verify", str(email), user_id=user.id, url=url, user=user,
                                   hours=ttl // 3600))


def refused_link(kind: str) -> ResponseReturnValue:
    audit(LINK_REFUSED, kind=kind)
    return error_page("This link cannot be used",
                      "It has expired, was already used, or is not a link we sent. "
                      "Ask for a new one.", 400, "invalid_link")


@bp.route("/forgot", methods=["GET", "POST"])
def forgot() -> ResponseReturnValue:
    state = get_state()
    if not mail_ready(state):
        return error_page("Password reset is not available",
                          "This service cannot send email, so passwords cannot be reset here. "
                          "Ask whoever runs it to reset yours.", 404)
    form = ForgotForm()
    if not form.validate_on_submit():
        return render_template("uauth/forgot.html", form=form), 400 if form.errors else 200
    identifier = form.identifier.data.strip()
    ip = request.remote_addr
    keys = [f"address:{normal_email(identifier)}", f"ip:{ip}"]
    if within_limit(state.store, keys, state.settings.mail_limit):
        # Who the request names is found on the mail thread: the answer below takes the same
        # time whether or not an account matches (a lookup by address reads every user).
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state.mailer.run(functools.partial(_mail_reset_links, app,
                                           identifier, ip))
    else:
        audit(PASSWORD_RESET_REQUESTED, outcome="throttled")
    # The same page whether or not an account was found, throttled or mailed.
    return render_template("uauth/message.html", title="Check your email",
                           message="If an account matches what you entered, we have sent a link "
                           "to its email address. It works once and expires soon.")


def _mail_reset_links(app: Flask, identifier: str, ip: str | None) -> None:
    """On the mail thread: a reset link for each account ``identifier`` names (throttled per
    account), in a request context on the issuer's origin so links can be built."""
    with app.app_context():
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(get_state().issuer))
    with app.test_request_context(base_url=origin):
        state = get_state()
        accounts = [u for u in find_accounts(state.users, identifier)
                    if within_limit(state.store, [f"user:{u.id}"],
                                    state.settings.mail_limit)]
        for user in accounts:
            send_reset_link(state, user)
            audit(PASSWORD_RESET_REQUESTED, user_id=user.id, ip=ip)
        if not accounts:
            audit(PASSWORD_RESET_REQUESTED, outcome="no account", ip=ip)


def _link_account(state: State, kind: str, token: str
                  ) -> tuple[Record, User, EditableDirectory] | None:
    """A link's record (still unused), the account it names, and the directory that can change
    that account; None when any is missing, and the page refuses the link."""
    users = editable(state.users)
    record = peek(state.store, kind, token)
    user = state.users.get(record["user_id"]) if record else None
    if record is None or user is None or users is None:
        return None
    return record, user, users


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseReturnValue:
    state = get_state()
    found = _link_account(state, RESET, token)
    if found is None:
        return refused_link(RESET)
    record, user, users = found
    if not user.is_active or user.updated_at > int(record.get("created_at", 0)):
        # A disabled account; or one changed since the link was made (its password reset with
        # another link, say): an older link must not undo that.
        return refused_link(RESET)
    form = ResetForm()
    if not form.validate_on_submit():
        return render_template("uauth/reset.html", form=form, user=user), \
            400 if form.errors else 200
    if redeem(state.store, RESET, token) is None:  # another tab was quicker
        return refused_link(RESET)
    users.set_password(user, form.new_password.data)
    ended = end_all(state, user.id)
    apps = 0
    if form.sign_out_apps.data:
        for app in apps_of(state.store, user.id, state.now()):
            revoke_app(state, user.id, app.client_id)
            apps += 1
    audit(PASSWORD_RESET, user_id=user.id, sessions=ended, apps=apps)
    return render_template("uauth/message.html", title="Your password was changed",
                           message="You can sign in with your new password now. Every other "
                           "session of your account was signed out"
                           + (", and the apps you allowed no longer have access." if apps
                              else "."),
                           link=(url_for("uauth.ui.login"), "Sign in"))


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str) -> ResponseReturnValue:
    state = get_state()
    found = _link_account(state, VERIFY, token)
    if found is None:
        return refused_link(VERIFY)
    record, user, users = found
    if user.profile.get("email") != record["email"]:
        return error_page("This link is for an older address",
                          "Your account's email address changed since this link was sent. "
                          "Ask for a new link on your account page.", 400, "invalid_link")
    form = ConfirmForm()
    if not form.validate_on_submit():
        return render_template("uauth/confirm.html", form=form, title="Confirm your email address",
                               message=f"Confirm that {record['email']} is the email address of "
                               f"the account {user.username}.", button="Confirm")
    if redeem(state.store, VERIFY, token) is None:
        return refused_link(VERIFY)
    users.update_profile(user, {"email": record["email"], "email_verified": True})
    audit(EMAIL_VERIFIED, user_id=user.id)
    return render_template("uauth/message.html", title="Email address confirmed",
                           message=f"{record['email']} is confirmed.",
                           link=(url_for("uauth.account.account"), "Go to your account"))


@bp.post("/account/verify-email")
def resend_verification() -> ResponseReturnValue:
    user = session_user() if authentication() is not None else None
    if user is None:
        return redirect(url_for("uauth.ui.login", next=url_for("uauth.account.account")))
    state = get_state()
    form = ConfirmForm(prefix="verify")
    if not form.validate_on_submit():
        flash("That did not work: the page had expired. Please try again.", "error")
    elif not within_limit(state.store, [f"user:{user.id}"], state.settings.mail_limit):
        flash("We sent several links already; please wait a while before asking again.", "error")
    elif send_verification(state, user):
        flash(f"We sent a link to {user.profile.get('email')}: follow it to confirm the address.")
    else:
        flash("This service cannot send email right now.", "error")
    return redirect(url_for("uauth.account.account"))
