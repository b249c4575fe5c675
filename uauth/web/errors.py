"""One place for errors: OAuth JSON error bodies for machines, readable HTML pages for people.

A bad client or redirect URI never redirects (an HTML page); an error the client may see goes
back to its redirect URI in the response mode it asked for (RFC 6749 §4.1.2.1, RFC 9207).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Response
from flask import json
from flask import render_template
from flask.typing import ResponseReturnValue
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from uauth.oauth.responses import render
from uauth.oauth.responses import response_mode
from uauth.web.state import get_state

#: Headers of every token-endpoint answer, errors included (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def wait_words(seconds: int) -> str:
    """What a throttled person reads, on every page that counts failures (the same words
    whether or not the account exists)."""
    return (f"Too many failed attempts: please wait {seconds} second{'s' if seconds != 1 else ''}"
            " before trying again.")


def error_page(title: str, message: str, status: int = 400, error: str | None = None,
               headers: dict[str, str] | None = None) -> ResponseReturnValue:
    """Our error page; should rendering fail too (the layout asks storage who is signed in,
    and storage may be what failed), the same words on a bare page."""
    try:
        body = render_template("uauth/error.html", title=title, message=message, error=error)
    except Exception:
        body = (f"<!doctype html><html lang=\"en\"><title>{escape(title)}</title>"
                f"<h1>{escape(title)}</h1><p>{escape(message)}</p></html>")
    return body, status, headers or {}


def error_response(err: OAuth2Error, params: MultiDict[str, str], client: Any = None
                   ) -> ResponseReturnValue:
    """Redirect the error to the client when its redirect URI is trusted; else a page."""
    if not err.redirect_uri:
        return error_page("This sign-in request cannot be completed",
                          err.description or "The application sent an invalid request.",
                          error=err.error)
    if client is None:  # for its default response mode; the redirect URI proved it exists
        client = get_state().clients.get(params.get("client_id"))
    body = [(k, v) for k, v in err.get_body() if k != "state"]
    if params.get("state"):
        body.append(("state", params["state"]))
    mode = response_mode(params, client, err.redirect_uri)
    state = get_state()
    return state.server.handle_response(*render(err.redirect_uri, body, mode, state.issuer))


def oauth_error(error: str, description: str, status: int = 400,
                headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": error, "error_description": description})
    return Response(body, status=status, mimetype="application/json",
                    headers={**NO_STORE, **(headers or {})})
