"""Notes: a small Flask app with its own users and login page that embeds uauth.

``create_app()`` is an ordinary app factory. uauth is one more extension: it mounts the
provider under ``/auth`` (issuer ``http://127.0.0.1:5001/auth``), uses Notes' users table and
login page, leaves Notes' CSRF protection and session alone, and protects Notes' own API
(``/api/notes``) with the access tokens it issues.

Run it with ``make example`` (``make example PORT=5002``) from the repository root.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from uauth.core.clients import Registration
from uauth.core.clients import list_clients
from uauth.core.clients import register_client
from uauth.extension import get_state

from . import users
from .views import api
from .views import pages
from .views import uauth

login_manager = LoginManager()
login_manager.login_view = "pages.login"
csrf = CSRFProtect()

DEMO_EMAIL = "alice@example.com"
DEMO_PASSWORD = "wonderland-demo"
DEMO_CLIENT = "Notes CLI"
DEMO_REDIRECT = "http://127.0.0.1:8399/cb"


@login_manager.user_loader  # type: ignore[untyped-decorator]
def load_user(user_id: str) -> users.NotesUser | None:
    row = users.get_row(user_id)
    return users.NotesUser.from_row(row) if row else None


def create_app(config: Mapping[str, Any] | None = None,
               instance_path: str | os.PathLike[str] | None = None) -> Flask:
    instance_path = instance_path or os.environ.get("NOTES_INSTANCE")
    app = Flask(__name__, instance_path=str(instance_path) if instance_path else None)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=_secret_key(instance),
        NOTES_DB=str(instance / "notes.db"),
        # uauth: everything under /auth, and the issuer says so.
        UAUTH_ISSUER="http://127.0.0.1:5001/auth",
        UAUTH_URL_PREFIX="/auth",
        UAUTH_SCOPES=["openid", "profile", "email", "offline_access", "notes"],
    )
    app.config.from_prefixed_env("NOTES")  # e.g. NOTES_UAUTH_ISSUER=https://notes.example.com/auth
    app.config.update(config or {})

    login_manager.init_app(app)
    uauth.init_app(app)  # finds Notes' LoginManager: its login page is the one people see
    csrf.init_app(app)   # set up after uauth on purpose: uauth's endpoints stay exempt
    csrf.exempt(api)     # bearer tokens, not cookies: CSRF does not apply to the API
    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api")
    app.teardown_appcontext(users.close_db)
    app.cli.add_command(demo)
    with app.app_context():
        users.db().executescript(users.SCHEMA)
    return app


def _secret_key(instance: Path) -> str:
    path = instance / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@click.command("demo")
def demo() -> None:
    """Create the demo user and the demo OpenID client (once), and say how to use them."""
    from flask import current_app

    with contextlib.suppress(sqlite3.IntegrityError):  # made on an earlier run
        users.add_user(DEMO_EMAIL, "Alice Liddell", DEMO_PASSWORD)
    store = get_state().store
    client = next((c for c in list_clients(store) if c.name == DEMO_CLIENT), None)
    if client is None:
        client, _ = register_client(store, Registration(
            name=DEMO_CLIENT, redirect_uris=[DEMO_REDIRECT], public=True,
            scope="openid profile email notes"))
    issuer = current_app.config["UAUTH_ISSUER"]
    click.echo(f"issuer:       {issuer} ({issuer}/.well-known/openid-configuration)")
    click.echo(f"demo login:   {DEMO_EMAIL} / {DEMO_PASSWORD}")
    click.echo(f"demo client:  {client.client_id} (public, PKCE), redirect {DEMO_REDIRECT}")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(issuer))  # NOTES_UAUTH_ISSUER's, if set
    click.echo(f"notes app:    {origin}/")
    click.echo(f"protected API: GET/POST {origin}/api/notes (scope 'notes')")
