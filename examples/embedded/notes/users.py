"""The Notes app's own users table, and the adapter that lets uauth use it.

Notes had users before it had an identity provider: a ``users`` table with scrypt password
hashes (werkzeug), a flask-login user class and a login page. :class:`NotesUsers` answers
uauth's small :class:`uauth.users.UserDirectory` protocol from that same table, so the people
who log in to Notes are the people Notes' OpenID clients see.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from flask import current_app
from flask import g
from flask_login import UserMixin
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from uauth.models import User

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    text TEXT NOT NULL
);
"""

#: Spent on unknown emails so a login's timing does not say which accounts exist.
_DUMMY_HASH = generate_password_hash("not a real password")


def db() -> sqlite3.Connection:
    """This request's connection to the app's database (the Flask tutorial's pattern)."""
    if "notes_db" not in g:
        g.notes_db = sqlite3.connect(current_app.config["NOTES_DB"])
        g.notes_db.row_factory = sqlite3.Row
    connection: sqlite3.Connection = g.notes_db
    return connection


def close_db(_: BaseException | None = None) -> None:
    connection = g.pop("notes_db", None)
    if connection is not None:
        connection.close()


@dataclass
class NotesUser(UserMixin):  # type: ignore[misc]
    """What flask-login keeps in ``current_user`` for Notes' own pages."""

    id: int
    email: str
    name: str
    active: bool

    @property
    def is_active(self) -> bool:
        return self.active

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> NotesUser:
        return cls(row["id"], row["email"], row["name"], bool(row["active"]))


def add_user(email: str, name: str, password: str) -> int:
    cursor = db().execute("INSERT INTO users (email, name, password_hash) VALUES (?, ?, ?)",
                          (email, name, generate_password_hash(password)))
    db().commit()
    return int(cursor.lastrowid or 0)


def find_row(email: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db().execute("SELECT * FROM users WHERE email = ?",
                                           (email.strip(),)).fetchone()
    return row


def get_row(user_id: str) -> sqlite3.Row | None:
    if not user_id.isdigit():
        return None
    row: sqlite3.Row | None = db().execute("SELECT * FROM users WHERE id = ?",
                                           (int(user_id),)).fetchone()
    return row


def check_login(email: str, password: str) -> sqlite3.Row | None:
    """The active user with this email and password, in constant time either way."""
    row = find_row(email)
    ok = check_password_hash(row["password_hash"] if row else _DUMMY_HASH, password)
    return row if ok and row is not None and row["active"] else None


def as_uauth_user(row: sqlite3.Row) -> User:
    """One Notes user as uauth sees them: ``id`` matches ``NotesUser.get_id()``."""
    return User(id=str(row["id"]), username=row["email"], disabled=not row["active"],
                profile={"name": row["name"], "email": row["email"], "email_verified": True})


class NotesUsers:
    """uauth's user directory, answered from Notes' own users table."""

    def get(self, user_id: str) -> User | None:
        row = get_row(user_id)
        return as_uauth_user(row) if row else None

    def find_by_username(self, username: str) -> User | None:
        row = find_row(username)
        return as_uauth_user(row) if row else None

    def authenticate(self, username: str, password: str) -> User | None:
        row = check_login(username, password)
        return as_uauth_user(row) if row else None
