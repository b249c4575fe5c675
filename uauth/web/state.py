"""The app's uauth state as the web layer sees it: the core services plus the Authlib server.

:func:`get_state` is the one way to reach it from a request; it belongs to the web layer and the
wiring. Everything below receives what it needs as arguments.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast

import flask.globals
from flask import Flask
from flask import Request
from flask import current_app
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from flask.ctx import AppContext
from flask.ctx import RequestContext

from uauth.core.state import State
from uauth.oauth.server import UAuthServer


@dataclass
class AppState(State):
    """:class:`~uauth.core.state.State` and the Authlib server bound to it."""

    server: UAuthServer = field(init=False)


#: Flask's context variables (its names since 2.2), read directly: a read through Flask's
#: ``current_app`` or ``request`` proxy goes through Werkzeug's ``LocalProxy``, 1.7 µs a
#: :func:`get_state` against 0.27 µs, and get_state runs about twenty times a flow. A Flask
#: without them gets the proxies.
_APP_CONTEXT: ContextVar[AppContext] | None = getattr(flask.globals, "_cv_app", None)
_REQUEST_CONTEXT: ContextVar[RequestContext] | None = getattr(flask.globals, "_cv_request", None)


def app_or_none() -> Flask | None:
    """The current app, or None outside an app context."""
    if _APP_CONTEXT is not None:
        ctx = _APP_CONTEXT.get(None)
        return None if ctx is None else ctx.app
    return cast(Any, current_app)._get_current_object() if has_app_context() else None


def request_or_none() -> Request | None:
    """The request being served, or None outside one (an audit event from the CLI, say)."""
    if _REQUEST_CONTEXT is not None:
        ctx = _REQUEST_CONTEXT.get(None)
        return None if ctx is None else ctx.request
    return cast(Any, request)._get_current_object() if has_request_context() else None


def get_state() -> AppState:
    """The current app's uauth state, with a helpful error outside an initialised app."""
    app = app_or_none()
    try:
        # Outside an app context, the proxy raises Flask's own error.
        state: AppState = (current_app if app is None else app).extensions["uauth"]
    except KeyError:
        raise RuntimeError(
            "uauth is not initialised here; call UAuth(app) or uauth.init_app(app)"
        ) from None
    return state


def current_request() -> Request:
    """The request being served, resolved once: every attribute read through Flask's
    ``request`` proxy looks the request up again, which code run on every request avoids."""
    req = request_or_none()
    if req is None:  # the proxy raises Flask's own error
        req = cast(Any, request)._get_current_object()
    return req


def request_globals() -> Any:
    """Flask's ``g`` for this request, resolved once (see :func:`current_request`)."""
    ctx = None if _APP_CONTEXT is None else _APP_CONTEXT.get(None)
    return cast(Any, g)._get_current_object() if ctx is None else ctx.g
