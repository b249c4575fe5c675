"""Pushed authorization requests (RFC 9126): the protocol rules over :mod:`uauth.core.par`.

``/authorize`` answers the pushed request a ``request_uri`` names (its other parameters are
ignored, §4), read with the person's session, and spends it with the response; a client
registered with ``require_pushed_authorization_requests`` (or anyone under
``UAUTH_REQUIRE_PAR``) must push (§6). The endpoint itself is :mod:`uauth.web.views.par`.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from werkzeug.datastructures import MultiDict

from uauth.core.models import Client
from uauth.core.par import Pushed
from uauth.core.par import finish_pushed
from uauth.core.par import is_pushed_uri
from uauth.core.settings import Settings
from uauth.storage import Store

from .parameters import Parameters

#: How a client may authenticate at /par: as at /token, public clients included.
PAR_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
#: Body parameters that authenticate the client and are not part of the request pushed.
CREDENTIALS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


class InvalidRequestUriError(OAuth2Error):  # type: ignore[misc]
    """RFC 9101 §7: the request_uri is unknown, expired, used or another client's."""

    error = "invalid_request_uri"


def pushed_request_uri(sent: MultiDict[str, str]) -> str | None:
    """The request_uri of a pushed request ``sent`` names; None: ``sent`` is the request
    itself (or names a request object by reference, RFC 9101)."""
    request_uri = sent.get("request_uri")
    return request_uri if is_pushed_uri(request_uri) else None


def pushed_params(pushed: Pushed | None) -> MultiDict[str, str]:
    """The parameters of the pushed request /authorize answers in place of what was sent (its
    other parameters are ignored, RFC 9126 §4).

    :raises InvalidRequestUriError: none was opened: unknown, expired, already answered, or
        another client's.
    """
    if pushed is None:
        raise InvalidRequestUriError("The request_uri is unknown, expired or already used.")
    return Parameters(pushed.params)


def spend_pushed(store: Store, request_uri: str) -> None:
    """Spend the request_uri as its response is issued.

    :raises InvalidRequestUriError: it was answered already (or has expired meanwhile).
    """
    if not finish_pushed(store, request_uri):
        raise InvalidRequestUriError("The request_uri was already used.")


def check_pushed_required(settings: Settings, client: Client, pushed: str | None,
                          redirect_uri: str) -> None:
    """Refuse a request sent in the query from a client that must push (RFC 9126 §6), or
    anyone under ``UAUTH_REQUIRE_PAR``."""
    if pushed is None and (settings.require_par
                           or client.require_pushed_authorization_requests):
        raise InvalidRequestError("This client must push its authorization requests to the "
                                  "par endpoint (RFC 9126).", redirect_uri=redirect_uri)


def pushable(client: Client, data: MultiDict[str, str]) -> MultiDict[str, str]:
    """The authorization request in a /par body (RFC 9126 §2.1): without the client's
    credentials, with its ``client_id``.

    :raises InvalidRequestError: a pushed ``request_uri``, or another client's ``client_id``.
    """
    params: MultiDict[str, str] = Parameters(
        [(k, v) for k, v in data.items(multi=True) if k not in CREDENTIALS])
    if "request_uri" in params:  # §2.1
        raise InvalidRequestError("request_uri cannot be pushed.")
    if params.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequestError("client_id is not the authenticated client.")
    params["client_id"] = client.client_id
    return params
