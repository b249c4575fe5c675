"""404 and 405 of the standalone provider, in uauth's format instead of Flask's bare pages.

Routing errors happen before any blueprint is chosen, so they reach the app's handlers, not
the blueprints' (:mod:`uauth.web.views`). A method the back-channel endpoints (``/token``,
``/revoke``, ``/introspect``, ``/userinfo``, discovery, health) do not take is answered in JSON
with ``Allow``, as a client library reads it; a person gets a styled page. An app that embeds
uauth keeps its own 404 and 405 handling.
"""

from __future__ import annotations

from flask import Flask
from flask import current_app
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound
from werkzeug.routing import RoutingException

from uauth.web.errors import error_page
from uauth.web.errors import oauth_error
from uauth.web.views import BACK_CHANNEL
from uauth.web.views import PAGE_CSP


def _endpoint_for(methods: list[str]) -> str | None:
    """The endpoint the path belongs to, found with a method it does accept."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in methods:
        try:
            endpoint, _ = adapter.match(method=method)
        except (HTTPException, RoutingException):
            continue
        return str(endpoint)
    return None


def _back_channel(endpoint: str | None) -> bool:
    return endpoint is not None and endpoint.rpartition(".")[0] in BACK_CHANNEL


def _headers(status: int, allow: list[str] | None) -> dict[str, str]:
    headers = {"X-Content-Type-Options": "nosniff"}
    if allow:
        headers["Allow"] = ", ".join(allow)
    return headers


def method_not_allowed(exc: MethodNotAllowed) -> ResponseReturnValue:
    allowed = sorted(exc.valid_methods or [])
    headers = _headers(405, allowed)
    if _back_channel(_endpoint_for(allowed)):
        return oauth_error("invalid_request", "method not allowed", 405, headers)
    return error_page(
        "This address does not take that request",
        f"{request.method} is not how this page is used; it takes {', '.join(allowed)}.",
        405, None, {**headers, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})


def not_found(exc: NotFound) -> ResponseReturnValue:
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == \
            "application/json":
        return oauth_error("invalid_request", "not found", 404, _headers(404, None))
    return error_page("Page not found",
                      "There is nothing at this address. Check the link, or go back to the "
                      "application you came from.", 404, None,
                      {**_headers(404, None), "Content-Security-Policy": PAGE_CSP,
                       "X-Frame-Options": "DENY"})


def register(app: Flask) -> None:
    app.register_error_handler(404, not_found)
    app.register_error_handler(405, method_not_allowed)
