"""The Flask extension: ``UAuth(app)`` or ``UAuth()`` + ``init_app(app)``.

All state lives in ``app.extensions["uauth"]`` (a :class:`State`), never on the extension object
or in module globals, so two apps in one process never share anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask
from flask import current_app
from flask_login import LoginManager

from . import config as settings
from .instance import KEYS_DIR
from .keys import KeySet
from .storage import Clock
from .storage import Store
from .storage import open_store
from .storage import system_clock

if TYPE_CHECKING:
    from .backchannel import Backchannel
    from .server import UAuthServer
    from .users import StoreUsers


@dataclass
class State:
    """Everything one app's provider needs, built once per worker in :meth:`UAuth.init_app`."""

    issuer: str
    store: Store
    keys: KeySet
    clock: Clock
    config: dict[str, Any]
    #: Documents that only change with the key set (discovery, JWKS), built on first use.
    cache: dict[str, Any] = field(default_factory=dict)
    users: StoreUsers = field(init=False)
    server: UAuthServer = field(init=False)
    backchannel: Backchannel = field(init=False)

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
    :param store: use this storage instead of opening ``UAUTH_STORAGE`` (tests, embedding).
    :param clock: time source; tests inject one to expire things without sleeping.
    """

    def __init__(self, app: Flask | None = None, *, store: Store | None = None,
                 clock: Clock | None = None) -> None:
        self._store_override = store
        self._clock = clock or system_clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if "uauth" in app.extensions:
            raise RuntimeError("uauth is already set up on this app; reuse that UAuth instance")
        settings.apply_defaults(app.config)
        settings.validate(app.config, instance_path=app.instance_path)
        config = {k: v for k, v in app.config.items() if k.startswith("UAUTH_")}
        store = self._store_override or open_store(
            config["UAUTH_STORAGE"], redis_prefix=config["UAUTH_REDIS_PREFIX"], clock=self._clock
        )
        keys = KeySet.ensure(Path(app.instance_path) / KEYS_DIR, [config["UAUTH_SIGNING_ALG"]])
        state = State(
            issuer=config["UAUTH_ISSUER"], store=store, keys=keys, clock=self._clock, config=config
        )
        from .backchannel import Backchannel
        from .server import build_server
        from .users import StoreUsers

        state.users = StoreUsers(store, self._clock)
        state.server = build_server(state)
        state.backchannel = Backchannel(state)
        app.extensions["uauth"] = state
        self._init_login(app)
        self._init_session(app)
        from .cli import register as register_cli
        from .views import register_blueprints

        register_blueprints(app, config["UAUTH_URL_PREFIX"])
        register_cli(app)

    @staticmethod
    def _init_login(app: Flask) -> None:
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

    @staticmethod
    def _init_session(app: Flask) -> None:
        secure = app.config["UAUTH_ISSUER"].startswith("https://")
        app.config.setdefault("SESSION_COOKIE_NAME", "uauth_session")
        app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
        # Flask's own default is None (no attribute), so setdefault would never apply.
        app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
        app.config["SESSION_COOKIE_SECURE"] = app.config.get("SESSION_COOKIE_SECURE") or secure
        app.config["PERMANENT_SESSION_LIFETIME"] = app.config["UAUTH_SESSION_TTL"]
