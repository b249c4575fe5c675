"""The back channel: /token, /revoke, /introspect (form-encoded or JSON bodies).

JSON in, JSON out, never a page.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from uauth.core import jsondepth
from uauth.oauth.parameters import Parameters
from uauth.oauth.server import UAuthRequest
from uauth.web.state import current_request
from uauth.web.state import get_state

from .inputs import BadInput
from .inputs import check_params

bp = Blueprint("token", __name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def request_body() -> MultiDict[str, str]:
    """Parameters of a back-channel POST: form-encoded, or a JSON object with string values.

    The JSON form is a compatibility extra for clients that send it; it is read into the
    same parameters, so it can never change what a form-encoded request means.
    """
    req = current_request()
    mimetype = req.mimetype
    if mimetype == "application/x-www-form-urlencoded":
        return Parameters(req.form)
    if mimetype == "application/json":
        try:
            data = jsondepth.loads(req.get_data(cache=True))
        except ValueError:  # also TooDeep: nesting is bounded before parsing (issue 17)
            data = None
        if not isinstance(data, dict):
            raise BadInput("The JSON body must be an object.")
        if not all(isinstance(v, str) for v in data.values()):
            raise BadInput("Every JSON parameter must be a string.")
        check_params(data.items(), get_state().settings.max_param_length, unique=True)
        return Parameters(data)
    raise BadInput("Content-Type must be application/x-www-form-urlencoded or "
                   "application/json.")


def back_channel_request() -> UAuthRequest:
    req = current_request()
    return UAuthRequest("POST", req.full_path, req.headers, request_body(), get_state().issuer)


@bp.post("/token")
def token() -> ResponseReturnValue:
    response: Response = get_state().server.create_token_response(back_channel_request())
    return response


def endpoint_response(name: str) -> ResponseReturnValue:
    """Run one of Authlib's endpoints (revocation, introspection) on a back-channel POST."""
    response: Response = get_state().server.create_endpoint_response(name,
                                                                        back_channel_request())
    return response


@bp.post("/revoke")
def revoke() -> ResponseReturnValue:
    """RFC 7009 token revocation."""
    return endpoint_response("revocation")


@bp.post("/introspect")
def introspect() -> ResponseReturnValue:
    """RFC 7662 token introspection."""
    return endpoint_response("introspection")
