"""Authorization responses: query, fragment or form_post, always with ``state`` and ``iss``.

Success and error responses go through :func:`render` so both honour the response mode
(OAuth 2.0 Multiple Response Types; Form Post Response Mode) and carry the issuer (RFC 9207).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import render_template

from uauth.core.models import RESPONSE_MODES

Triple = tuple[int, str, list[tuple[str, str]]]


def returns_token(response_type: str | None) -> bool:
    """True when the response carries an access or ID token (never allowed in a query)."""
    return bool(set((response_type or "").split()) & {"token", "id_token"})


def default_response_mode(response_type: str | None, client: Any = None) -> str:
    """``query`` for ``code``; ``fragment`` for anything returning a token; a client may set
    its own default (never ``query`` for tokens)."""
    preferred = getattr(client, "default_response_mode", None)
    if preferred in RESPONSE_MODES and not (preferred == "query" and returns_token(response_type)):
        return str(preferred)
    return "fragment" if returns_token(response_type) else "query"


def response_mode(data: Any, client: Any = None, redirect_uri: str | None = None) -> str:
    """The mode to answer in: the requested one when it is valid, else the default.

    :param redirect_uri: where the response goes; a form cannot post to a native app's URI,
        so there ``form_post`` (a refused request's, or a client's default) becomes a redirect.
    """
    response_type = data.get("response_type")
    requested = data.get("response_mode")
    if requested in RESPONSE_MODES and not (requested == "query" and returns_token(response_type)):
        mode = str(requested)
    else:
        mode = default_response_mode(response_type, client)
    if mode == "form_post" and redirect_uri and not is_web_uri(redirect_uri):
        return "fragment" if returns_token(response_type) else "query"
    return mode


def is_web_uri(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


def check_response_mode(data: Any, redirect_uri: str) -> None:
    """Refuse unknown modes, tokens in a query, and form_post to a non-web redirect URI."""
    requested = data.get("response_mode")
    if requested is None:
        return
    if requested not in RESPONSE_MODES:
        raise InvalidRequestError("Unsupported response_mode.", redirect_uri=redirect_uri)
    if requested == "query" and returns_token(data.get("response_type")):
        raise InvalidRequestError("response_mode=query cannot carry tokens; use fragment or "
                                  "form_post.", redirect_uri=redirect_uri)
    if requested == "form_post" and not is_web_uri(redirect_uri):
        raise InvalidRequestError("form_post needs an http(s) redirect_uri.",
                                  redirect_uri=redirect_uri)


def render(redirect_uri: str, params: list[tuple[str, str]], mode: str, issuer: str) -> Triple:
    """The response in ``mode``, with ``iss`` (RFC 9207); ``form_post`` is a page of ours."""
    params = [*params, ("iss", issuer)]
    if mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
        body = render_template("uauth/form_post.html", action=redirect_uri, params=params,
                               nonce=nonce)
        return 200, body, [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            ("Content-Security-Policy",
             f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; "
             f"form-action {origin}; frame-ancestors 'none'; base-uri 'none'"),
        ]
    uri = add_params_to_uri(redirect_uri, params, fragment=(mode == "fragment"))
    return 302, "", [("Location", uri), ("Cache-Control", "no-store")]


def authorization_response(grant: Any, redirect_uri: str, params: list[tuple[str, str]]
                           ) -> Triple:
    """A successful authorization response for ``grant``."""
    data = grant.request.payload.data
    if data.get("state"):
        params = [*params, ("state", data["state"])]
    return render(redirect_uri, params, response_mode(data, grant.request.client, redirect_uri),
                  grant.server.state.issuer)
