"""The pushed authorization request endpoint (RFC 9126 §2): ``POST /par``.

The client authenticates as at /token; the request is validated as /authorize would (client,
redirect URI, response type, scope, PKCE, OpenID parameters) and any error answered here, as
JSON, since nothing is redirected from a back-channel call. The records are
:mod:`uauth.core.par`, the rules :mod:`uauth.oauth.par`.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import Blueprint
from flask import Response
from flask import json
from flask import request
from flask.typing import ResponseReturnValue

from uauth.core.par import push
from uauth.oauth.authrequest import parse_auth_params
from uauth.oauth.par import PAR_AUTH_METHODS
from uauth.oauth.par import pushable
from uauth.oauth.responses import check_response_mode
from uauth.oauth.server import UAuthRequest
from uauth.web.request_objects import expand_request_object
from uauth.web.state import get_state

from .token import NO_STORE
from .token import back_channel_request

bp = Blueprint("par", __name__)


@bp.post("/par")
def par() -> ResponseReturnValue:
    state = get_state()
    oauth = back_channel_request()
    try:
        client = state.server.authenticate_client(oauth, PAR_AUTH_METHODS, endpoint="par")
        params = expand_request_object(state, pushable(client, oauth.payload.data))
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
    ttl = state.settings.par_ttl
    request_uri = push(state.store, client.client_id, params.items(multi=True), ttl)
    return Response(json.dumps({"request_uri": request_uri, "expires_in": ttl}), status=201,
                    mimetype="application/json", headers=NO_STORE)
