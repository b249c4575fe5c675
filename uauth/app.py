"""The standalone provider: an instance folder, its config, and :class:`UAuth` on a new app."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import ClassVar

from flask import Config
from flask import Flask
from flask import Request
from flask import Response
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface
from flask.sessions import SessionMixin
from itsdangerous import TimestampSigner
from itsdangerous.encoding import want_bytes

from uauth.core.settings import from_environ
from uauth.extension import UAuth
from uauth.ops.cli import run_cli
from uauth.ops.instance import init_instance
from uauth.ops.instance import read_secret_key
from uauth.ops.instance import resolve_instance_path
from uauth.storage import Clock
from uauth.storage import Store
from uauth.storage.filemodes import warn_if_exposed
from uauth.web.state import current_request
from uauth.web.views import BACK_CHANNEL
from uauth.web.views import missing


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    instance_path: str | os.PathLike[str] | None = None,
) -> Flask:
    """Build the standalone provider.

    Settings are layered: defaults, ``<instance>/config.py``, ``UAUTH_*`` environment
    variables, then ``config``. A missing instance folder is initialised (secret key, signing
    key, commented config), so the first ``gunicorn wsgi:app`` just works.

    :param config: settings that win over every other source (tests, scripts).
    :param store: a ready storage backend instead of ``UAUTH_STORAGE``.
    :param clock: time source for tokens and storage expiry (tests).
    :param instance_path: the instance folder; default ``$UAUTH_INSTANCE`` or ``./instance``.
    """
    path = resolve_instance_path(instance_path)
    init_instance(path)
    app = Flask("uauth", instance_path=str(path), instance_relative_config=True)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(from_environ())
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = read_secret_key(path)
    UAuth(app, store=store, clock=clock)
    warn_if_exposed(path, sqlite_files(app.extensions["uauth"].store))
    missing.register(app)  # our 404 and 405: the standalone provider owns its app
    standalone_session(app.config)
    app.session_interface = CookieSessions()
    return app


def main() -> None:
    """The ``uauth`` command: the ops CLI, given this module's :func:`create_app` to build the
    standalone app with (ops sits below the wiring and never imports it)."""
    run_cli(create_app)


def standalone_session(config: Config) -> None:
    """Session cookie settings of the standalone provider, which owns its app.

    Only here: an app that embeds uauth keeps its own session settings, and uauth bounds its
    logins by ``UAUTH_SESSION_TTL`` from the recorded login time instead. Runs after
    :class:`UAuth` has validated the ``UAUTH_*`` values it reads.
    """
    # Flask predefines these keys (name "session", SameSite None), so setdefault would never
    # apply: replace Flask's own defaults, keep anything an operator configured.
    if config.get("SESSION_COOKIE_NAME") in (None, "session"):
        config["SESSION_COOKIE_NAME"] = "uauth_session"
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    secure = config["UAUTH_ISSUER"].startswith("https://")
    config["SESSION_COOKIE_SECURE"] = config.get("SESSION_COOKIE_SECURE") or secure
    config["PERMANENT_SESSION_LIFETIME"] = config["UAUTH_SESSION_TTL"]
    # The cookie lives as long as the login may (UAUTH_SESSION_TTL, absolute); re-signing it on
    # every request would only cost CPU, since idle expiry is kept in storage (sessions.py).
    config["SESSION_REFRESH_EACH_REQUEST"] = False


class _PlainJSON(TaggedJSONSerializer):
    """The session's values are strings, booleans and numbers (flask-login's, flask-wtf's and
    uauth's), so plain JSON will do; Flask's tagged JSON checks every value against every tag
    type on every request. Untagged values read the same in both, so cookies stay valid."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def loads(self, value: str | bytes) -> Any:
        return json.loads(value)


class _KeyOnceSigner(TimestampSigner):
    """itsdangerous derives the cookie's signing key (an HMAC of the secret and the salt) again
    for every cookie it checks or signs; it is the same as long as the secret is, so a worker
    derives it once per secret."""

    _derived: ClassVar[dict[tuple[object, ...], bytes]] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        entry = (secret, self.salt, self.key_derivation, self.digest_method)
        derived = self._derived.get(entry)
        if derived is None:
            if len(self._derived) >= 16:  # only a test making apps by the hundred gets here
                self._derived.clear()
            derived = self._derived[entry] = super().derive_key(secret)
        return derived


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once, not for every
    request (Flask builds a new one each time it opens or saves a session), and its key derived
    once (:class:`_KeyOnceSigner`). HMAC-SHA1 as Flask signs, with ``hashlib.sha1`` itself: given
    Flask's lazy wrapper, ``hmac`` takes its pure-Python path instead of OpenSSL's."""

    serializer = _PlainJSON()
    digest_method = staticmethod(hashlib.sha1)

    def __init__(self) -> None:
        self._built: tuple[tuple[object, ...], Any] | None = None

    def get_signing_serializer(self, app: Flask) -> Any:
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        built = self._built
        if built is None or built[0] != keys:
            serializer = super().get_signing_serializer(app)
            if serializer is not None:
                serializer.signer = _KeyOnceSigner
            built = self._built = (keys, serializer)
        return built[1]

    def open_session(self, app: Flask, req: Request) -> SecureCookieSession | None:
        """Without a ``Cookie`` header (every machine's request) the session is new and empty;
        Flask would parse the absent header and build the signing serializer to learn that.
        Without a secret key, Flask's answer stands (its null session)."""
        if "HTTP_COOKIE" not in req.environ and app.secret_key:
            return self.session_class()
        return super().open_session(app, req)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """A machine's request (/token, /userinfo and the rest of ``BACK_CHANNEL``) has no
        browser session: unless it changed one, there is nothing to save, and its response does
        not vary on ``Cookie`` (which flask-login's remember-me hook, reading the session on
        every request, would otherwise add): 20-40 µs less a userinfo request in-process."""
        if current_request().blueprint in BACK_CHANNEL and not session.modified:
            return
        super().save_session(app, session, response)


def sqlite_files(store: Store) -> list[Path]:
    """The SQLite database and its WAL files, when that is the backend (start-up mode check)."""
    # Deferred like uauth.storage.open_store does: only a SQLite deployment loads sqlite-utils.
    from uauth.storage.sqlite import SQLiteStore

    if not isinstance(store, SQLiteStore):
        return []
    return [store.path, *(store.path.with_name(store.path.name + s) for s in ("-wal", "-shm"))]
