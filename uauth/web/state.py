"""The app's uauth state as the web layer sees it: the core services plus the Authlib server.

:func:`get_state` is the one way to reach it from a request; it belongs to the web layer and the
wiring. Everything below receives what it needs as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from flask import current_app

from uauth.core.state import State
from uauth.oauth.server import UAuthServer


@dataclass
class AppState(State):
    """:class:`~uauth.core.state.State` and the Authlib server bound to it."""

    server: UAuthServer = field(init=False)


def get_state() -> AppState:
    """The current app's uauth state, with a helpful error outside an initialised app."""
    try:
        state: AppState = current_app.extensions["uauth"]
    except KeyError:
        raise RuntimeError(
            "uauth is not initialised here; call UAuth(app) or uauth.init_app(app)"
        ) from None
    return state
