"""The second factor's pages: the sign-in step, TOTP enrolment, recovery codes, removing
factors. Everything here works without JavaScript except the passkey button; the step that
sends people here is :func:`uauth.web.mfa.require_second_factor`.
"""

from __future__ import annotations

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms import PasswordField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import Optional

from uauth.core import totp
from uauth.core.audit import MFA_ENROLLED
from uauth.core.audit import MFA_FAILED
from uauth.core.audit import MFA_REMOVED
from uauth.core.audit import MFA_SUCCEEDED
from uauth.core.audit import MFA_THROTTLED
from uauth.core.audit import RECOVERY_CODES_CREATED
from uauth.core.audit import audit
from uauth.core.factors import Factor
from uauth.core.factors import Overview
from uauth.core.models import User
from uauth.core.passkeys import relying_party
from uauth.core.users import editable
from uauth.web.errors import wait_words
from uauth.web.login import authentication
from uauth.web.login import current_session
from uauth.web.login import safe_next
from uauth.web.login import session_user
from uauth.web.mfa import check_code
from uauth.web.mfa import complete
from uauth.web.mfa import expect_factors
from uauth.web.mfa import needs_second_factor
from uauth.web.mfa import otp_keys
from uauth.web.mfa import passkeys_unavailable
from uauth.web.mfa import policy
from uauth.web.state import get_state

bp = Blueprint("mfa", __name__)

#: The pending TOTP enrolment of this browser (a factor id; the secret stays in storage).
PENDING = "uauth_totp_pending"


class OtpForm(FlaskForm):  # type: ignore[misc]
    otp = StringField("Code", validators=[DataRequired("Enter a code."), Length(max=64)],
                      render_kw={"autocomplete": "one-time-code", "inputmode": "text",
                                 "autocapitalize": "none", "autofocus": True})


class RemoveForm(FlaskForm):  # type: ignore[misc]
    factor = HiddenField(validators=[DataRequired(), Length(max=64)])
    confirm = PasswordField("Your password or a current code",
                            validators=[DataRequired("Confirm with your password or a code."),
                                        Length(max=1024)],
                            render_kw={"autocomplete": "current-password"})


class RecoveryForm(FlaskForm):  # type: ignore[misc]
    """Only its CSRF token: the button asks for new recovery codes."""


class NameForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Name", validators=[Optional(), Length(max=60)])


def _next() -> str:
    return safe_next(request.args.get("next")) or url_for("uauth.ui.home")


def _signed_in() -> User | None:
    return session_user() if authentication() is not None else None


# -- pages ---------------------------------------------------------------------------------

def _second_factor_page(user: User, factors: list[Factor], form: OtpForm,
                        error: str | None = None, status: int = 200,
                        headers: dict[str, str] | None = None) -> ResponseReturnValue:
    return render_template(
        "uauth/second_factor.html", form=form, error=error, user=user,
        has_totp=any(f.type == "totp" for f in factors),
        has_passkey=any(f.type == "passkey" for f in factors) and not passkeys_unavailable(),
        next_url=_next()), status, headers or {}


@bp.route("/login/second-factor", methods=["GET", "POST"])
def second_factor() -> ResponseReturnValue:
    state = get_state()
    with state.store.batch():  # the session, its user and their factors: one trip
        expect_factors()
        user = _signed_in()
        login = current_session()
        asks = policy() != "off" and (login is None or "mfa" not in login.amr)
        factors = state.factors.of(user.id) if user is not None and asks else []
    if user is None:
        return redirect(url_for("uauth.ui.login", next=_next()))
    if not asks:
        return redirect(_next())
    if not factors:
        return redirect(url_for(".enrol", next=_next()))
    form = OtpForm()
    if not form.validate_on_submit():
        if request.method == "POST":
            error = ("This page expired. Please try again." if form.csrf_token.errors
                     else "Enter the code from your authenticator app, or a recovery code.")
            return _second_factor_page(user, factors, form, error, 400)
        return _second_factor_page(user, factors, form)
    throttle = state.throttle
    keys = otp_keys(user.id)
    wait = throttle.wait(keys)
    if wait:
        audit(MFA_THROTTLED, user_id=user.id, retry_after=wait)
        return _second_factor_page(user, factors, form, wait_words(wait), 429,
                                   {"Retry-After": str(wait)})
    # The time step's (or recovery code's) spend answers first; what follows from it (the
    # factor's last use, the session's second factor, the audit event) goes in one trip.
    with state.store.batch():
        method, left = check_code(user, form.otp.data, factors)
        if method is None:
            wait = throttle.failed(keys)
            audit(MFA_FAILED, user_id=user.id, method="otp", retry_after=wait or None)
            error = "That code is not valid (or was used already)."
            if wait:
                error += " " + wait_words(wait)
                return _second_factor_page(user, factors, form, error, 429,
                                           {"Retry-After": str(wait)})
            return _second_factor_page(user, factors, form, error, 401)
        complete([method])
        audit(MFA_SUCCEEDED, user_id=user.id,
              method="recovery_code" if left is not None else "totp")
    if left is not None:  # a page of its own: the flow may leave for an app next
        return render_template("uauth/recovery_used.html", left=left, next_url=_next())
    return redirect(_next())


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol() -> ResponseReturnValue:
    """Set up an authenticator app: a QR code, the secret in text, a first code to confirm.
    During a sign-in that asks for a second factor, and from the account page."""
    user = _signed_in()
    if user is None:
        return redirect(url_for("uauth.ui.login", next=_next()))
    if policy() == "off":
        return redirect(_next())
    if needs_second_factor(user):  # adding one needs the one you have
        return redirect(url_for(".second_factor", next=request.full_path))
    factors = get_state().factors
    pending = session.get(PENDING)
    factor = factors.get(user.id, pending) if isinstance(pending, str) else None
    if factor is None or factor.active:
        factor, _ = factors.begin_totp(user.id)
        session[PENDING] = factor.id
    form = OtpForm()
    error, status = None, 200
    if form.validate_on_submit():
        if factors.confirm_totp(user.id, factor.id, form.otp.data):
            session.pop(PENDING, None)
            audit(MFA_ENROLLED, user_id=user.id, method="totp")
            complete(["otp"])
            codes = None
            if factors.recovery_left(user.id) == 0:
                codes = factors.new_recovery_codes(user.id)
                audit(RECOVERY_CODES_CREATED, user_id=user.id)
            return render_template("uauth/recovery_codes.html", codes=codes, next_url=_next(),
                                   enrolled=True)
        wait = get_state().throttle.failed(otp_keys(user.id))
        audit(MFA_FAILED, user_id=user.id, method="totp-enrol", retry_after=wait or None)
        error, status = "That code does not match: check the time on your device and "\
            "enter the code it shows now.", 400
    elif request.method == "POST":
        error, status = "This page expired. Please try again.", 400
    secret = factors.secret_of(factor) or ""
    state = get_state()
    uri = totp.provisioning_uri(secret, user.username, relying_party(state.issuer).name)
    return render_template("uauth/enrol.html", form=form, error=error, user=user,
                           secret=secret, qr=totp.qr_svg(uri), uri=uri, next_url=_next(),
                           required=policy() == "required",
                           passkeys=passkeys_unavailable() is None), status, \
        {"Cache-Control": "no-store"}


@bp.post("/account/recovery-codes")
def recovery_codes() -> ResponseReturnValue:
    user = _signed_in()
    if user is None or needs_second_factor(user):
        return redirect(url_for("uauth.account.account"))
    factors = get_state().factors
    if not RecoveryForm().validate_on_submit() or not factors.has_second_factor(user.id):
        flash("That did not work: the page had expired. Please try again.", "error")
        return redirect(url_for("uauth.account.account"))
    codes = factors.new_recovery_codes(user.id)
    audit(RECOVERY_CODES_CREATED, user_id=user.id)
    return render_template("uauth/recovery_codes.html", codes=codes,
                           next_url=url_for("uauth.account.account"), enrolled=False), 200, \
        {"Cache-Control": "no-store"}


@bp.post("/account/factors/remove")
def remove() -> ResponseReturnValue:
    """Remove a passkey or authenticator app, after re-entering the password or a code."""
    user = _signed_in()
    if user is None or needs_second_factor(user):
        return redirect(url_for("uauth.account.account"))
    form = RemoveForm()
    state = get_state()
    if not form.validate_on_submit():
        flash(form.confirm.errors[0] if form.confirm.errors else
              "That did not work: the page had expired. Please try again.", "error")
        return redirect(url_for("uauth.account.account"))
    keys = state.throttle.reauth_keys(user.id, request.remote_addr)
    wait = state.throttle.wait(keys)
    if wait:
        flash(wait_words(wait), "error")
        return redirect(url_for("uauth.account.account"))
    directory = editable(state.users)
    confirmed = (directory is not None and user.password_hash is not None
                 and directory.check_password(user, form.confirm.data))
    if not confirmed:
        confirmed = check_code(user, form.confirm.data)[0] is not None
    if not confirmed:
        state.throttle.failed(keys)
        audit(MFA_FAILED, user_id=user.id, method="remove-confirm")
        flash("That is neither your password nor a current code; nothing was removed.", "error")
        return redirect(url_for("uauth.account.account"))
    factor = state.factors.remove(user.id, form.factor.data)
    if factor is None:
        flash("That sign-in method was already removed.", "error")
    else:
        audit(MFA_REMOVED, user_id=user.id, method=factor.type, factor=factor.id[:8])
        flash(f"“{factor.name}” was removed.")
    return redirect(url_for("uauth.account.account"))


def account_panel(user: User, overview: Overview | None = None) -> dict[str, object]:
    """What the account page shows about passkeys and second factors (``overview``: the
    person's factors as the page already listed them, else read)."""
    seen = overview or get_state().factors.overview(user.id)
    factors = seen.factors
    return {
        "policy": policy(), "factors": factors,
        "passkeys": [f for f in factors if f.type == "passkey"],
        "totps": [f for f in factors if f.type == "totp"],
        "recovery_left": seen.recovery_left,
        "passkeys_unavailable": passkeys_unavailable(),
        "remove": RemoveForm(formdata=None), "recovery": RecoveryForm(formdata=None),
        "name": NameForm(formdata=None),
    }

