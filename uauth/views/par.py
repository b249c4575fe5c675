"""The pushed authorization request endpoint (RFC 9126 §2): ``POST /par``.

The client authenticates as at /token; the request is validated as /authorize would (client,
redirect URI, response type, scope, PKCE, OpenID parameters) and any error answered here, as
JSON, since nothing is redirected from a back-channel call.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import Blueprint
from flask import Response
from flask import json
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from ..authrequest import parse_auth_params
from ..extension import get_state
from ..par import push
from ..responses import check_response_mode
from ..server import UAuthRequest
from .request_objects import expand_request_object
from .token import NO_STORE
from .token import back_channel_request

bp = Blueprint("par", __name__)

#: How a client may authenticate at /par: as at /token, public clients included.
PAR_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
#: Body parameters that authenticate the client and are not part of the request pushed.
_CREDENTIALS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


@bp.post("/par")
def par() -> ResponseReturnValue:
    state = get_state()
    oauth = back_channel_request()
    try:
        client = state.server.authenticate_client(oauth, PAR_AUTH_METHODS, endpoint="par")
        params: MultiDict[str, str] = MultiDict(
            [(k, v) for k, v in oauth.payload.data.items(multi=True) if k not in _CREDENTIALS])
        if "request_uri" in params:  # §2.1
            raise InvalidRequestError("request_uri cannot be pushed.")
        if params.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id is not the authenticated client.")
        params["client_id"] = client.client_id
        params = expand_request_object(state, params)
        grant = state.server.get_consent_grant(
            UAuthRequest("GET", request.path, request.headers, params, state.issuer),
            end_user=None)
        check_response_mode(params, grant.redirect_uri)
        parse_auth_params(state, params, grant.client, grant.redirect_uri)
    except OAuth2Error as err:
        body = {k: v for k, v in err.get_body() if k != "state"}
        extra = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        return Response(json.dumps(body), status=err.status_code, mimetype="application/json",
                        headers={**extra, **NO_STORE})
    ttl = int(state.config["UAUTH_PAR_TTL"])
    request_uri = push(state.store, client.client_id, params, ttl)
    return Response(json.dumps({"request_uri": request_uri, "expires_in": ttl}), status=201,
                    mimetype="application/json", headers=NO_STORE)
