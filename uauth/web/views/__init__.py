"""Blueprints. All endpoints are namespaced under ``uauth.``, e.g. ``url_for("uauth.ui.login")``.

Cross-cutting behaviour of our blueprints only (never the host app's): a request id, an access
log line and metrics per request, input limits (:mod:`.inputs`), CORS for registered browser
origins on the endpoints SPAs call, security headers, one answer to a storage outage (503,
nothing half-done), and one to anything unexpected (500 without a stack trace, logged with the
request id).
"""

from __future__ import annotations

import logging

from flask import Blueprint
from flask import Flask
from flask import Request
from flask import Response
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from uauth.storage import StorageError
from uauth.web import requestlog as logs
from uauth.web.errors import error_page
from uauth.web.errors import oauth_error
from uauth.web.state import current_request
from uauth.web.state import get_state

from . import account
from . import admin
from . import authorize
from . import device
from . import discovery
from . import health
from . import inputs
from . import login  # noqa: F401  (registers /login and / on the ui blueprint)
from . import logout
from . import metrics
from . import mfa
from . import par
from . import passkeys
from . import recovery
from . import registration
from . import sessions
from . import signup
from . import token
from . import ui
from . import userinfo

log = logging.getLogger("uauth")

bp = Blueprint("uauth", __name__, template_folder="../../templates",
               static_folder="../../static/uauth", static_url_path="/static/uauth")
for child in (account.bp, ui.bp, discovery.bp, health.bp, metrics.bp, token.bp,
              userinfo.bp, logout.bp, sessions.bp, par.bp, device.api, device.bp,
              mfa.bp, passkeys.bp, registration.bp, recovery.bp, signup.bp, admin.bp):
    bp.register_blueprint(child)

#: Endpoints a browser-based client calls cross-origin (and only these get CORS).
CORS_ENDPOINTS = {
    "uauth.token.token", "uauth.token.revoke", "uauth.userinfo.userinfo", "uauth.discovery.jwks",
    "uauth.discovery.openid_configuration", "uauth.discovery.oauth_authorization_server",
}
#: Blueprints that answer machines: JSON errors, never pages.
BACK_CHANNEL = {"uauth.token", "uauth.userinfo", "uauth.discovery", "uauth.health",
                "uauth.metrics", "uauth.par", "uauth.device_authorization",
                "uauth.registration"}
#: Blueprints whose parameters may not repeat (RFC 6749 §3.2) and that read Basic credentials.
STRICT_PARAMS = {"uauth.token", "uauth.userinfo", "uauth.par", "uauth.device_authorization"}
#: Blueprints that authenticate clients (Basic credentials checked before Authlib reads them).
CLIENT_AUTH = {"uauth.token", "uauth.par", "uauth.device_authorization"}
#: Baseline policy for our pages: no scripts at all, nothing framed, nothing leaked. No
#: ``form-action``: Chrome applies it to the redirect that follows a form POST, which would
#: block the login and consent pages' redirects back to the client.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'none'")
#: Pages with a passkey button: the same, plus uauth's own script (never inline) and its
#: fetches to the passkey endpoints.
SCRIPT_CSP = PAGE_CSP + "; script-src 'self'; connect-src 'self'"
SCRIPT_PAGES = {"uauth.ui.login", "uauth.account.account", "uauth.mfa.second_factor",
                "uauth.mfa.enrol", "uauth.signup.add_passkey"}
HSTS = "max-age=31536000"


@bp.context_processor
def _page_links() -> dict[str, bool]:
    """What the login page may offer: a reset link (mail is set up), sign-up (allowed)."""
    state = get_state()
    return {"can_reset": recovery.mail_ready(state),
            "can_signup": state.settings.signup == "open" and recovery.mail_ready(state)}


@bp.before_request
def _start() -> None:
    req = current_request()
    settings = get_state().settings
    logs.start_request(req, bool(settings.trusted_proxies))
    req.max_content_length = settings.max_body_bytes
    req.max_form_parts = inputs.MAX_PARAMS
    blueprint = req.blueprint
    inputs.check_request(req, settings.max_param_length, unique=blueprint in STRICT_PARAMS,
                         basic=blueprint in CLIENT_AUTH)


@bp.after_request
def _finish(response: Response) -> Response:
    """Runs for every request our blueprints answer (Flask walks nested blueprints), after
    their own hooks: the headers, then the access line and the metrics, which time the whole."""
    req = current_request()
    state = get_state()
    endpoint = req.endpoint
    if endpoint in CORS_ENDPOINTS:
        _cors(req, response)
    _security_headers(response, endpoint, state.issuer.startswith("https://"))
    elapsed = logs.finish_request(req, response)
    state.metrics.request(endpoint or "-", req.method, response.status_code, elapsed)
    return response


def _security_headers(response: Response, endpoint: str | None, https: bool) -> None:
    """Each header unless the view set its own. One pass over the response's headers, not a
    ``setdefault`` each (each is a case-insensitive scan)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    wanted = [("X-Content-Type-Options", "nosniff")]
    if https:
        wanted.append(("Strict-Transport-Security", HSTS))
    if response.mimetype == "text/html":
        wanted += [("Content-Security-Policy", SCRIPT_CSP if endpoint in SCRIPT_PAGES
                    else PAGE_CSP), ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "no-referrer")]
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)


def _cors(req: Request, response: Response) -> None:
    origin = req.headers.get("Origin")
    if response.headers.getlist("Vary"):  # ``in`` builds and catches an exception when absent
        response.vary.add("Origin")
    else:  # the usual case, without parsing and re-serialising a Vary header
        response.headers["Vary"] = "Origin"
    if not origin:
        return
    try:
        allowed = get_state().clients.origin_allowed(origin)
    except StorageError:
        return
    if not allowed:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if req.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"


@bp.errorhandler(StorageError)
def _storage_down(exc: StorageError) -> ResponseReturnValue:
    log.error("storage failure: %s", exc)
    get_state().metrics.storage_error()
    if request.blueprint in BACK_CHANNEL:
        return oauth_error("temporarily_unavailable",
                                 "The service is temporarily unavailable; try again shortly.",
                                 503, {"Retry-After": "5"})
    return error_page("Temporarily unavailable", "We cannot reach our storage right "
                                "now. Please try again in a moment; nothing you did was lost.",
                                503, "temporarily_unavailable", {"Retry-After": "5"})


def _failure(status: int, error: str, title: str, message: str,
             headers: dict[str, str] | None = None) -> ResponseReturnValue:
    """JSON on the back channel, a page on pages."""
    if request.blueprint in BACK_CHANNEL:
        return oauth_error(error, message, status, headers)
    return error_page(title, message, status, error, headers)


@bp.errorhandler(inputs.BadInput)
def _bad_input(exc: inputs.BadInput) -> ResponseReturnValue:
    if request.endpoint == "uauth.ui.authorize":
        redirected = authorize.redirect_bad_input(exc)
        if redirected is not None:
            return redirected
    headers = {"WWW-Authenticate": 'Basic realm="uauth"'} if exc.status == 401 else None
    return _failure(exc.status, exc.error, "This request cannot be read", str(exc), headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    """HTTP errors keep their status, in our format; anything else is our bug: logged with
    the request id and answered 500 ``server_error``, never with a stack trace."""
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status < 400:
            return exc
        if status == 413:
            return _failure(413, "invalid_request", "This request is too large",
                            "The request body is too large.")
        if status < 500:
            return _failure(status, "invalid_request", exc.name,
                            "The request could not be handled.")
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return _failure(500, "server_error", "Something went wrong",
                    "An unexpected error occurred; it has been logged. Please try again.")


def register_blueprints(app: Flask, url_prefix: str) -> None:
    app.register_blueprint(bp, url_prefix=url_prefix or None)
