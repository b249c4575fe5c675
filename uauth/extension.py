"""The Flask extension: ``UAuth(app)`` or ``UAuth()`` + ``init_app(app)``.

All state lives in ``app.extensions["uauth"]`` (a :class:`State`), never on the extension object
or in module globals, so two apps in one process never share anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from typing import TypeVar

from flask import Flask
from flask_login import LoginManager
from flask_login import user_loaded_from_cookie
from flask_login import user_logged_in
from flask_login import user_logged_out
from werkzeug.middleware.proxy_fix import ProxyFix

from uauth.core import audit
from uauth.core import cimd
from uauth.core import settings
from uauth.core.audittrail import keeper
from uauth.core.backchannel import Backchannel
from uauth.core.claims import SubjectIndex
from uauth.core.clients import ClientCache
from uauth.core.factors import SEAL_INFO
from uauth.core.factors import Factors
from uauth.core.fetcher import from_settings as fetcher_from_settings
from uauth.core.keyring import KeyRing
from uauth.core.keyring import Policy
from uauth.core.keys import KeySealError
from uauth.core.keys import sealer
from uauth.core.metrics import build_metrics
from uauth.core.state import State
from uauth.core.throttle import Throttle
from uauth.core.users import StoreUsers
from uauth.core.users import UserDirectory
from uauth.core.users import expect_user
from uauth.oauth.server import build_server
from uauth.ops.cli import register as register_cli
from uauth.ops.instance import KEYS_DIR
from uauth.ops.instance import SALT_FILE
from uauth.storage import Clock
from uauth.storage import Store
from uauth.storage import open_store
from uauth.storage import system_clock
from uauth.web.login import current_session
from uauth.web.login import record_login
from uauth.web.login import record_logout
from uauth.web.outbox import build_mailer
from uauth.web.protected_resource import ProtectedResource
from uauth.web.protected_resource import declare
from uauth.web.requestlog import audit_context
from uauth.web.requestlog import audit_keeper
from uauth.web.resource import ResourceProtector
from uauth.web.resource import local_access_token
from uauth.web.state import AppState
from uauth.web.state import get_state
from uauth.web.views import register_blueprints
from uauth.web.views.discovery import build_metadata

__all__ = ["AppState", "State", "UAuth", "get_state"]

F = TypeVar("F", bound=Callable[..., Any])


class UAuth:
    """The provider as a Flask extension.

    :param app: initialise immediately on this app.
    :param users: where users live (:class:`~uauth.core.users.UserDirectory`); default: uauth's own
        directory in its storage.
    :param store: use this storage instead of opening ``UAUTH_STORAGE`` (tests, embedding).
    :param clock: time source; tests inject one to expire things without sleeping.
    """

    def __init__(self, app: Flask | None = None, *, users: UserDirectory | None = None,
                 store: Store | None = None, clock: Clock | None = None) -> None:
        self._users = users
        self._store_override = store
        self._clock = clock or system_clock
        self._protector = ResourceProtector(local_access_token)
        self._apps: list[Flask] = []
        self._resources: list[ProtectedResource] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if "uauth" in app.extensions:
            raise RuntimeError("uauth is already set up on this app; reuse that UAuth instance")
        if not app.config.get("SECRET_KEY"):
            raise settings.ConfigError("SECRET_KEY is not set; uauth signs its login session and "
                                       "form CSRF tokens with it")
        settings.apply_defaults(app.config)
        settings.validate(app.config, instance_path=app.instance_path)
        config = settings.Settings.from_config(app.config)
        store = self._store_override or open_store(
            config.storage, redis_prefix=config.redis_prefix, clock=self._clock
        )
        keys = self._keyring(app, store, config)
        state = AppState(
            issuer=config.issuer, store=store, keys=keys, clock=self._clock, settings=config,
            metrics=build_metrics(config.metrics),
        )
        keys.listeners.append(state.cache.clear)

        state.users = self._users if self._users is not None else StoreUsers(store, self._clock)
        state.subjects = SubjectIndex(store, Path(app.instance_path) / SALT_FILE)
        state.clients = ClientCache(store, config.client_cache_ttl)
        state.factors = Factors(store, sealer(_secrets(app), info=SEAL_INFO), self._clock)
        state.fetch_json = fetcher_from_settings(config, timeout=5.0, max_bytes=64 * 1024,
                                                 clock=self._clock).fetch_json
        state.clients.resolver = functools.partial(cimd.lookup, state)
        state.server = build_server(state)
        state.server.discovery = functools.partial(build_metadata, state)
        state.throttle = Throttle(state)
        state.backchannel = Backchannel(state)
        state.mailer = build_mailer(app, config)
        state.keep_audit = keeper(store, self._clock, config.audit_retention)
        app.extensions["uauth"] = state
        audit.context_fields = audit_context
        audit.event_keeper = audit_keeper
        self._init_login(app)
        register_blueprints(app, config.url_prefix)
        _exempt_from_csrf(app)
        register_cli(app)
        self._apps.append(app)
        for declared in self._resources:
            declared.serve_metadata(app)
        proxies = config.trusted_proxies
        if proxies:
            app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)

    def _keyring(self, app: Flask, store: Store, config: settings.Settings) -> KeyRing:
        ring = KeyRing(
            store, sealer(_secrets(app)),
            Policy.from_settings(config), self._clock,
            check_interval=config.key_check_interval,
            legacy_dir=Path(app.instance_path) / KEYS_DIR,
        )
        try:
            ring.start()
        except KeySealError as exc:
            raise settings.ConfigError(str(exc)) from None
        return ring

    def require_token(self, scope: str | Iterable[str] | None = None, *,
                      audience: str | None = None) -> Callable[[F], F]:
        """Protect a view of the host app with the access tokens this provider issues.

        The view runs only for a valid, unrevoked access token (``typ: at+jwt``, our keys,
        ``iss``, ``aud``, ``exp``) granted every scope in ``scope`` (space-separated); it finds
        the token and its user in :data:`uauth.current_token`. Otherwise the answer is 401 or
        403 with an RFC 6750 ``WWW-Authenticate`` challenge.

        :param audience: require this ``aud`` (a resource registered with ``--audience`` and
            asked for with ``resource=``) instead of the issuer.
        """
        if audience is None:
            return self._protector.require_token(scope)
        return ResourceProtector(functools.partial(local_access_token, audience=audience),
                                 realm=self._protector.realm).require_token(scope)

    def protected_resource(self, resource: str, *, scopes: Iterable[str] | None = None,
                           name: str | None = None) -> ProtectedResource:
        """Declare a resource (RFC 8707 URI) the host app serves: uauth serves its RFC 9728
        metadata, and its ``require_token`` accepts only tokens for it, with 401 challenges
        naming the metadata (see :mod:`uauth.web.protected_resource`).

        :param scopes: scopes the resource accepts (default: its ``UAUTH_RESOURCES`` entry).
        :param name: a display name (default: its ``UAUTH_RESOURCES`` entry).
        """
        declared = declare(resource, scopes=scopes, name=name, realm=self._protector.realm)
        self._resources.append(declared)
        for app in self._apps:
            declared.serve_metadata(app)
        return declared

    @staticmethod
    def _init_login(app: Flask) -> None:
        """Use the host's flask-login ``LoginManager`` when it has one, else install ours.

        Either way every login (ours, the host's, a remember-me cookie) records the login time
        in the session: it becomes ``auth_time`` and bounds the session (``UAUTH_SESSION_TTL``).
        """
        user_logged_in.connect(record_login, app)
        user_loaded_from_cookie.connect(record_login, app)
        user_logged_out.connect(record_logout, app)
        if getattr(app, "login_manager", None) is not None:
            return
        manager = LoginManager(app)
        manager.login_view = "uauth.ui.login"
        manager.session_protection = None  # sessions are regenerated at login instead

        @manager.user_loader  # type: ignore[untyped-decorator]
        def load_user(user_id: str) -> Any:
            # The signed cookie alone is not enough: its session must be live in storage, so
            # a logout anywhere (another worker, host, or the CLI) logs this browser out.
            state = get_state()
            with state.store.batch():  # the user is read with the session: one round trip
                expect_user(state.users, user_id)
                login = current_session()
                if login is None or login.user_id != user_id:
                    return None
                user = state.users.get(user_id)
            return user if user is not None and user.is_active else None


def _secrets(app: Flask) -> list[str | bytes]:
    """``SECRET_KEY`` then its fallbacks: what sealed records are sealed and opened with."""
    return [app.config["SECRET_KEY"], *(app.config.get("SECRET_KEY_FALLBACKS") or [])]


def _exempt_from_csrf(app: Flask) -> None:
    """Keep the host's ``CSRFProtect`` off uauth's endpoints, whenever it is set up.

    Relying parties POST authorization requests and clients call the back channel without any
    cookie, so a global CSRF check would break both; uauth's own page forms are FlaskForms that
    check their CSRF token themselves, so nothing loses protection. ``CSRFProtect`` may be set
    up after uauth in a factory: the hook catches that before its first check runs.
    """
    done: list[object] = []

    def exempt() -> None:
        csrf = app.extensions.get("csrf")
        if csrf is None or csrf in done:
            return
        for name, blueprint in app.blueprints.items():
            if name.split(".", 1)[0] == "uauth":
                csrf.exempt(blueprint)
        done.append(csrf)

    exempt()
    app.before_request(exempt)
