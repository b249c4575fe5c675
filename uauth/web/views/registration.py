"""Dynamic client registration (RFC 7591) and management (RFC 7592): JSON in, JSON out.

The protocol lives in :mod:`uauth.oauth.registration`; with ``UAUTH_REGISTRATION = "off"`` these
endpoints do not exist (404).
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask import abort
from flask import request
from flask.typing import ResponseReturnValue

from uauth.core import jsondepth
from uauth.oauth.registration import JsonRequest
from uauth.web.errors import oauth_error
from uauth.web.state import get_state

bp = Blueprint("registration", __name__)


def _json_request(client_id: str | None = None) -> JsonRequest | Response:
    state = get_state()
    if state.settings.registration == "off":
        abort(404)
    data: object = {}
    if request.method in ("POST", "PUT"):
        if request.mimetype != "application/json":
            return oauth_error("invalid_client_metadata",
                               "Send the client metadata as application/json.")
        try:  # nesting bounded before parsing (a deep document is a clean error, not a 500)
            data = jsondepth.loads(request.get_data(cache=True))
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return oauth_error("invalid_client_metadata",
                               "The body must be a JSON object of client metadata.")
    made = JsonRequest(request.method, state.issuer + request.path, request.headers,
                       dict(data) if isinstance(data, dict) else {}, client_id)
    made.remote_addr = request.remote_addr
    return made


@bp.post("/register")
def register() -> ResponseReturnValue:
    made = _json_request()
    if isinstance(made, Response):
        return made
    response: Response = get_state().server.create_endpoint_response("client_registration",
                                                                       made)
    return response


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def configure(client_id: str) -> ResponseReturnValue:
    made = _json_request(client_id)
    if isinstance(made, Response):
        return made
    response: Response = get_state().server.create_endpoint_response("client_configuration",
                                                                       made)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
