"""Creating an account: from an invitation (``/invite/<token>``), or by open sign-up.

``UAUTH_SIGNUP``: ``off`` (only admins create accounts; invitations still work), ``invite``
(the same, and the sign-up page says so), ``open`` (anyone whose address is in
``UAUTH_SIGNUP_DOMAINS``, when set). Open sign-up stores nothing but a pending request until the
person follows the link mailed to them: the account exists only once the address is proven.
"""

from __future__ import annotations

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms import PasswordField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Email
from wtforms.validators import EqualTo
from wtforms.validators import Length

from uauth.core.audit import INVITATION_ACCEPTED
from uauth.core.audit import SIGNUP_COMPLETED
from uauth.core.audit import SIGNUP_REQUESTED
from uauth.core.audit import audit
from uauth.core.invitations import Invitation
from uauth.core.invitations import InvitationError
from uauth.core.invitations import accept
from uauth.core.invitations import find
from uauth.core.links import Issued
from uauth.core.links import issue
from uauth.core.links import peek
from uauth.core.links import redeem
from uauth.core.records import SIGNUP
from uauth.core.reset import normal_email
from uauth.core.reset import within_limit
from uauth.core.state import State
from uauth.core.users import HASHER
from uauth.core.users import UserExists
from uauth.core.users import editable
from uauth.web.errors import error_page
from uauth.web.login import authentication
from uauth.web.login import session_user
from uauth.web.login import start_session
from uauth.web.mfa import passkeys_unavailable
from uauth.web.outbox import absolute
from uauth.web.outbox import render_mail
from uauth.web.outbox import send
from uauth.web.state import get_state
from uauth.web.views.recovery import ConfirmForm
from uauth.web.views.recovery import mail_ready
from uauth.web.views.recovery import refused_link

bp = Blueprint("signup", __name__)

_NEW_PASSWORD = [DataRequired("Choose a password."),
                 Length(min=8, max=1024, message="Use 8 to 1024 characters.")]


class AccountForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username", validators=[DataRequired("Choose a username."),
                                                   Length(max=150)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none"})
    password = PasswordField("Password", validators=_NEW_PASSWORD,
                             render_kw={"autocomplete": "new-password"},
                             description="At least 8 characters.")
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired("Repeat the password."),
                                        EqualTo("password", message="The two passwords differ.")],
                            render_kw={"autocomplete": "new-password"})


class PasskeyAccountForm(FlaskForm):  # type: ignore[misc]
    """An invitee who signs up with a passkey instead of a password: only a username here;
    the passkey is made on the next page, signed in to the new account."""

    username = StringField("Username", validators=[DataRequired("Choose a username."),
                                                   Length(max=150)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none"})


def passkeys_offered() -> bool:
    """Passkeys are on (``UAUTH_MFA`` is not off) and the issuer can have them (a domain)."""
    return get_state().settings.mfa != "off" and passkeys_unavailable() is None


class SignupForm(AccountForm):
    email = EmailField("Email address",
                       validators=[DataRequired("Enter your email address."), Length(max=320),
                                   Email("Enter an email address such as you@example.com.",
                                         check_deliverability=False)],
                       render_kw={"autocomplete": "email"})


def send_invitation(state: State, issued: Issued, invitation: Invitation) -> str:
    """Queue the invitation mail; returns the link."""
    url = absolute(state, "uauth.signup.invitation", token=issued.token)
    send(state, render_mail("invite", invitation.email, url=url, invitation=invitation,
                            issuer=state.issuer, days=max(1, (invitation.expires_at
                                                              - invitation.created_at) // 86400)))
    return url


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invitation(token: str) -> ResponseReturnValue:
    state = get_state()
    users = editable(state.users)
    found = find(state.store, token)
    if found is None or users is None:
        return refused_link("invitation")
    with_passkey = passkeys_offered()
    chose_passkey = with_passkey and request.form.get("method") == "passkey"
    form = AccountForm(formdata=None if chose_passkey else request.form or None)
    passkey_form = PasskeyAccountForm(prefix="pk", formdata=request.form if chose_passkey
                                      else None)
    for each in (form, passkey_form):
        if found.username:
            each.username.data = found.username
            each.username.render_kw = {**each.username.render_kw, "readonly": True}
    error = None
    chosen = passkey_form if chose_passkey else form
    if request.method == "POST" and chosen.validate():
        try:
            user = accept(state.store, users, token, username=chosen.username.data,
                          password=None if chose_passkey else form.password.data,
                          now=state.now())
        except InvitationError as exc:
            error = str(exc)
        else:
            audit(INVITATION_ACCEPTED, user_id=user.id, invited_by=found.created_by or None,
                  method="passkey" if chose_passkey else "password")
            # The single-use link is the proof of this first sign-in; with a passkey chosen,
            # the session has no method yet until the passkey is made on the next page.
            start_session(user, () if chose_passkey else ("pwd",))
            if chose_passkey:
                return redirect(url_for(".add_passkey"))
            return redirect(url_for("uauth.account.account"))
    status = 400 if (error or chosen.errors) else 200
    return render_template("uauth/invite.html", form=form, passkey_form=passkey_form,
                           with_passkey=with_passkey, invitation=found, error=error), status


@bp.get("/welcome/passkey")
def add_passkey() -> ResponseReturnValue:
    """Make the passkey of an account just created from an invitation (passkeys.js)."""
    user = session_user() if authentication() is not None else None
    if user is None:
        return redirect(url_for("uauth.ui.login"))
    return render_template("uauth/invite_passkey.html", user=user, form=ConfirmForm())


def _domain_allowed(state: State, email: str) -> bool:
    domains = state.settings.signup_domains
    return not domains or email.rsplit("@", 1)[-1].lower() in domains


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> ResponseReturnValue:
    state = get_state()
    mode = state.settings.signup
    if mode != "open" or editable(state.users) is None or not mail_ready(state):
        return error_page("Accounts are made by invitation" if mode == "invite" else
                          "Sign-up is closed",
                          "Ask whoever runs this service for an invitation." if mode == "invite"
                          else "Ask whoever runs this service to create an account for you.",
                          404)
    form = SignupForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data.strip()
        name = form.username.data.strip()
        limit = state.settings.mail_limit
        # Every attempt counts per IP address first, so the "taken" answer cannot be used to
        # list the usernames that exist faster than the throttle allows.
        if not within_limit(state.store, [f"ip:{request.remote_addr}"], limit):
            error = "Too many sign-ups from here: try again in an hour."
        elif not _domain_allowed(state, email):
            form.email.errors.append("Accounts here are for addresses at "
                                     + ", ".join(state.settings.signup_domains) + ".")
        elif state.users.find_by_username(name) is not None:
            form.username.errors.append("This username is taken; choose another.")
        elif not within_limit(state.store, [f"address:{normal_email(email)}"], limit):
            error = "Too many sign-ups for this address: try again in an hour."
        else:
            ttl = state.settings.verify_ttl
            issued = issue(state.store, SIGNUP, {
                "username": name, "email": email,
                "password_hash": HASHER.hash(form.password.data)}, ttl=ttl, now=state.now())
            url = absolute(state, "uauth.signup.confirm", token=issued.token)
            send(state, render_mail("signup", email, url=url, username=name,
                                    hours=ttl // 3600))
            audit(SIGNUP_REQUESTED, username=name)
            return render_template("uauth/message.html", title="Check your email",
                                   message=f"We sent a link to {email}. Follow it to finish "
                                   "creating your account; until then it does not exist.")
    status = 400 if (error or form.errors) else 200
    return render_template("uauth/signup.html", form=form, error=error), status


@bp.route("/signup/<token>", methods=["GET", "POST"])
def confirm(token: str) -> ResponseReturnValue:
    state = get_state()
    users = editable(state.users)
    record = peek(state.store, SIGNUP, token)
    if record is None or users is None or state.settings.signup != "open":
        return refused_link("signup")
    form = ConfirmForm()
    if not form.validate_on_submit():
        return render_template("uauth/confirm.html", form=form, title="Finish signing up",
                               message=f"Create the account {record['username']} for "
                               f"{record['email']}.", button="Create my account")
    if state.users.find_by_username(record["username"]) is not None:
        return error_page("This username was taken meanwhile",
                          "Someone chose it before you confirmed. Please sign up again with "
                          "another username.", 409)
    if redeem(state.store, SIGNUP, token) is None:
        return refused_link("signup")
    try:
        user = users.create(record["username"], None,  # type: ignore[attr-defined]
                            {"email": record["email"], "email_verified": True})
    except (UserExists, ValueError):
        return error_page("This username was taken meanwhile",
                          "Please sign up again with another username.", 409)
    user.password_hash = record["password_hash"]
    users.save(user)  # type: ignore[attr-defined]
    audit(SIGNUP_COMPLETED, user_id=user.id)
    start_session(user)
    return redirect(url_for("uauth.account.account"))
