"""Notes' pages (its own login) and its API, which accepts the access tokens uauth issues."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user
from flask_login import logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms import PasswordField
from wtforms import TextAreaField
from wtforms.validators import DataRequired
from wtforms.validators import Length

from uauth import UAuth
from uauth import current_token

from .users import NotesUser
from .users import NotesUsers
from .users import check_login
from .users import db

#: The provider, embedded. Module level like any extension; its state lives on each app.
uauth = UAuth(users=NotesUsers())

pages = Blueprint("pages", __name__)
api = Blueprint("api", __name__)


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class NoteForm(FlaskForm):  # type: ignore[misc]
    text = TextAreaField("New note", validators=[DataRequired(), Length(max=2000)])


def local_path(target: str | None) -> str | None:
    """``next`` may only lead back into this app (it is how uauth's /authorize resumes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@pages.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    next_url = local_path(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url or url_for("pages.index"))
    error = None
    if form.validate_on_submit():
        row = check_login(form.email.data, form.password.data)
        if row is not None:
            login_user(NotesUser.from_row(row))
            return redirect(next_url or url_for("pages.index"))
        error = "Wrong email or password."
    return render_template("login.html", form=form, error=error), 401 if error else 200


@pages.post("/logout")
@login_required  # type: ignore[untyped-decorator]
def logout() -> ResponseReturnValue:
    logout_user()
    return redirect(url_for("pages.index"))


@pages.route("/", methods=["GET", "POST"])
def index() -> ResponseReturnValue:
    form = NoteForm()
    if current_user.is_authenticated and form.validate_on_submit():
        db().execute("INSERT INTO notes (user_id, text) VALUES (?, ?)",
                     (current_user.id, form.text.data))
        db().commit()
        return redirect(url_for("pages.index"))
    notes = _notes_of(current_user.id) if current_user.is_authenticated else []
    return render_template("index.html", form=form, notes=notes)


def _notes_of(user_id: int) -> list[dict[str, Any]]:
    rows = db().execute("SELECT id, text FROM notes WHERE user_id = ? ORDER BY id",
                        (user_id,)).fetchall()
    return [dict(row) for row in rows]


@api.get("/notes")
@uauth.require_token(scope="notes")
def list_notes() -> ResponseReturnValue:
    """The notes of the person the access token speaks for."""
    user = current_token.user
    if user is None:  # a client's own token (client credentials) speaks for nobody's notes
        return {"error": "this API needs a token issued for a person"}, 403
    return {"user": user.username, "client_id": current_token.client_id,
            "notes": _notes_of(int(user.id))}


@api.post("/notes")
@uauth.require_token(scope="notes")
def add_note() -> ResponseReturnValue:
    if current_token.user is None:
        return {"error": "this API needs a token issued for a person"}, 403
    data = request.get_json(silent=True)
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > 2000:
        return {"error": "send JSON {\"text\": \"...\"} (1-2000 characters)"}, 400
    cursor = db().execute("INSERT INTO notes (user_id, text) VALUES (?, ?)",
                          (int(current_token.user.id), text))
    db().commit()
    return {"id": cursor.lastrowid, "text": text}, 201
