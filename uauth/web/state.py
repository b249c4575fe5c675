"""The app's uauth state as the web layer sees it: the core services plus the Authlib server.

:func:`get_state` is the one way to reach it from a request; it belongs to the web layer and the
wiring. Everything below receives what it needs as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast

from flask import Request
from flask import current_app
from flask import request

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


def current_request() -> Request:
    """The request being served, resolved once: every attribute read through Flask's
    ``request`` proxy looks the request up again, which code run on every request avoids."""
    req: Request = cast(Any, request)._get_current_object()
    return req
