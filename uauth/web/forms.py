"""WTForms forms; flask-wtf adds a CSRF token to each one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms import HiddenField
from wtforms import PasswordField
from wtforms import StringField
from wtforms import SubmitField
from wtforms.validators import DataRequired
from wtforms.validators import EqualTo
from wtforms.validators import Length
from wtforms.validators import Optional


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username or email", validators=[DataRequired(), Length(max=150)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class ConsentForm(FlaskForm):  # type: ignore[misc]
    """Two buttons named ``consent``; the one pressed says ``allow`` or ``deny``."""


class LogoutForm(FlaskForm):  # type: ignore[misc]
    """Only its CSRF token: the page's own button confirms the sign-out."""


class SessionsForm(FlaskForm):  # type: ignore[misc]
    """A button per session, named ``sid`` with the session's public id, or ``everywhere``."""

    sid = HiddenField(validators=[Optional(), Length(max=64)])
    everywhere = SubmitField("Sign out everywhere")
    end_app_access = BooleanField(
        "Also end app access: every app must ask again, even those allowed offline access",
        default=False)


def new_password_field() -> PasswordField:
    """A new password, as changing one and resetting a forgotten one ask for it: the same
    rule and words on both pages. A call per form, so each form's fields keep their order."""
    return PasswordField(
        "New password", validators=[DataRequired("Choose a new password."),
                                    Length(min=8, max=1024, message="Use 8 to 1024 characters.")],
        render_kw={"autocomplete": "new-password"}, description="At least 8 characters.")


def confirm_password_field() -> PasswordField:
    """The new password again, to equal the form's ``new_password``."""
    return PasswordField(
        "Repeat the new password",
        validators=[DataRequired("Repeat the new password."),
                    EqualTo("new_password", message="The two new passwords differ.")],
        render_kw={"autocomplete": "new-password"})


class PasswordForm(FlaskForm):  # type: ignore[misc]
    """Changing a password needs the current one: a session left open is not enough."""

    current_password = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password."),
                                        Length(max=1024)],
        render_kw={"autocomplete": "current-password"})
    new_password = new_password_field()
    confirm = confirm_password_field()
    end_app_access = BooleanField(
        "Also end app access: every app must ask again, even those allowed offline access",
        default=False)


class RevokeForm(FlaskForm):  # type: ignore[misc]
    """One button per app, named ``client_id``; the one pressed names the app to revoke."""
