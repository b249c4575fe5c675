"""The Flask extension: ``UAuth(app)`` or ``UAuth()`` + ``init_app(app)``.

All state lives in ``app.extensions["uauth"]`` (a :class:`State`), never on the extension object
or in module globals, so two apps in one process never share anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from flask import Flask
from flask import current_app
from flask_login import LoginManager
from flask_login import user_loaded_from_cookie
from flask_login import user_logged_in
from flask_login import user_logged_out

from . import config as settings
from .instance import KEYS_DIR
from .instance import SALT_FILE
from .keyring import KeyRing
from .keyring import Policy
from .keys import KeySealError
from .keys import sealer
from .metrics import NullMetrics
from .metrics import build_metrics
from .storage import Clock
from .storage import Store
from .storage import open_store
from .storage import system_clock

if TYPE_CHECKING:
    from .backchannel import Backchannel
    from .claims import SubjectIndex
    from .clients import ClientCache
    from .mail import Mailer
    from .server import UAuthServer
    from .throttle import Throttle
    from .users import UserDirectory

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """Everything one app's provider needs, built once per worker in :meth:`UAuth.init_app`."""

    issuer: str
    store: Store
    #: The shared signing keys; a :class:`~uauth.keys.KeySet` kept fresh from storage.
    keys: KeyRing
    clock: Clock
    config: dict[str, Any]
    #: Documents that only change with the key set (discovery, JWKS), built on first use.
    cache: dict[str, Any] = field(default_factory=dict)
    #: Prometheus counters, or a stand-in that does nothing when ``UAUTH_METRICS`` is off.
    metrics: NullMetrics = field(default_factory=NullMetrics)
    users: UserDirectory = field(init=False)
    server: UAuthServer = field(init=False)
    backchannel: Backchannel = field(init=False)
    #: Pairwise subjects: the instance salt and the sub -> user index cache (claims.py).
    subjects: SubjectIndex = field(init=False)
    #: Failure counters for logins and client authentication (throttle.py).
    throttle: Throttle = field(init=False)
    #: Clients this worker looked up recently (clients.ClientCache).
    clients: ClientCache = field(init=False)
    #: Outgoing mail (mail.Mailer): reset, verification, invitation and sign-up links.
    mailer: Mailer = field(init=False)
    #: Saves each audit event for the console's audit view (audittrail.py); None: not kept.
    keep_audit: Callable[[dict[str, Any]], None] | None = None

    def now(self) -> int:
        return int(self.clock())


def get_state() -> State:
    """The current app's uauth state, with a helpful error outside an initialised app."""
    try:
        state: State = current_app.extensions["uauth"]
    except KeyError:
        raise RuntimeError(
            "uauth is not initialised here; call UAuth(app) or uauth.init_app(app)"
        ) from None
    return state


class UAuth:
    """The provider as a Flask extension.

    :param app: initialise immediately on this app.
    :param users: where users live (:class:`~uauth.users.UserDirectory`); default: uauth's own
        directory in its storage.
    :param store: use this storage instead of opening ``UAUTH_STORAGE`` (tests, embedding).
    :param clock: time source; tests inject one to expire things without sleeping.
    """

    def __init__(self, app: Flask | None = None, *, users: UserDirectory | None = None,
                 store: Store | None = None, clock: Clock | None = None) -> None:
        from .resource import ResourceProtector
        from .resource import local_access_token

        self._users = users
        self._store_override = store
        self._clock = clock or system_clock
        self._protector = ResourceProtector(local_access_token)
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
        config = {k: v for k, v in app.config.items() if k.startswith("UAUTH_")}
        store = self._store_override or open_store(
            config["UAUTH_STORAGE"], redis_prefix=config["UAUTH_REDIS_PREFIX"], clock=self._clock
        )
        keys = self._keyring(app, store, config)
        state = State(
            issuer=config["UAUTH_ISSUER"], store=store, keys=keys, clock=self._clock, config=config,
            metrics=build_metrics(config["UAUTH_METRICS"]),
        )
        from .backchannel import Backchannel
        from .claims import SubjectIndex
        from .clients import ClientCache
        keys.listeners.append(state.cache.clear)
        from .server import build_server
        from .users import StoreUsers

        state.users = self._users if self._users is not None else StoreUsers(store, self._clock)
        state.subjects = SubjectIndex(store, Path(app.instance_path) / SALT_FILE)
        state.clients = ClientCache(store, config["UAUTH_CLIENT_CACHE_TTL"])
        state.server = build_server(state)
        from .throttle import Throttle

        state.throttle = Throttle(state)
        state.backchannel = Backchannel(state)
        from .audittrail import keeper
        from .outbox import build_mailer

        state.mailer = build_mailer(app, config)
        state.keep_audit = keeper(store, self._clock, config["UAUTH_AUDIT_RETENTION"])
        app.extensions["uauth"] = state
        self._init_login(app)
        from .cli import register as register_cli
        from .views import register_blueprints

        register_blueprints(app, config["UAUTH_URL_PREFIX"])
        _exempt_from_csrf(app)
        register_cli(app)
        proxies = config["UAUTH_TRUSTED_PROXIES"]
        if proxies:
            from werkzeug.middleware.proxy_fix import ProxyFix

            app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)

    def _keyring(self, app: Flask, store: Store, config: dict[str, Any]) -> KeyRing:
        secret = app.config["SECRET_KEY"]  # init_app refused to start without one
        ring = KeyRing(
            store, sealer([secret, *(app.config.get("SECRET_KEY_FALLBACKS") or [])]),
            Policy.from_config(config), self._clock,
            check_interval=config["UAUTH_KEY_CHECK_INTERVAL"],
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
        from .resource import ResourceProtector
        from .resource import local_access_token

        return ResourceProtector(functools.partial(local_access_token, audience=audience),
                                 realm=self._protector.realm).require_token(scope)

    @staticmethod
    def _init_login(app: Flask) -> None:
        """Use the host's flask-login ``LoginManager`` when it has one, else install ours.

        Either way every login (ours, the host's, a remember-me cookie) records the login time
        in the session: it becomes ``auth_time`` and bounds the session (``UAUTH_SESSION_TTL``).
        """
        from .sessions import record_logout
        from .views.authorize import record_login

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
            from .sessions import current_session

            # The signed cookie alone is not enough: its session must be live in storage, so
            # a logout anywhere (another worker, host, or the CLI) logs this browser out.
            login = current_session()
            if login is None or login.user_id != user_id:
                return None
            user = get_state().users.get(user_id)
            return user if user is not None and user.is_active else None


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
