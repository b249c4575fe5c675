"""Glue between request objects (:mod:`uauth.oauth.request_object`) and the views that accept
them, /authorize and /par: the object's parameters replace the request's, checked like any
input (:mod:`uauth.web.views.inputs`)."""

from __future__ import annotations

from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from werkzeug.datastructures import MultiDict

from uauth.core.state import State
from uauth.oauth.request_object import decode_request_object
from uauth.oauth.request_object import request_parameters
from uauth.web.views.inputs import BadInput
from uauth.web.views.inputs import check_params


def expand_request_object(state: State, sent: MultiDict[str, str]) -> MultiDict[str, str]:
    """``sent`` with its ``request`` object's parameters in (RFC 9101 §5); ``sent`` itself
    when it has none, or names no client (the client check then shows its page).

    :raises InvalidRequestObjectError: the object does not verify or holds bad input.
    """
    raw = sent.get("request")
    client = state.clients.get(sent.get("client_id")) if raw is not None else None
    if raw is None or client is None:
        return sent
    params = request_parameters(sent, decode_request_object(raw, client, state.issuer,
                                                            state.now()))
    try:
        check_params(params.items(multi=True), state.settings.max_param_length, unique=False)
    except BadInput as exc:
        raise InvalidRequestObjectError(str(exc)) from None
    return params
