"""The OAuth request as the front channel reads it: parameters from the query and our forms."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from uauth.core.attributes import FORM_PREFIX
from uauth.oauth.parameters import Parameters
from uauth.oauth.server import UAuthRequest
from uauth.web.state import current_request
from uauth.web.state import get_state

#: Form fields of our own pages that are not part of an authorization request.
_UI_FIELDS = {"csrf_token", "consent"}


def authorization_params() -> MultiDict[str, str]:
    """The authorization request's parameters, from the query and (for POST) the form."""
    req = current_request()
    params = Parameters()
    for source in (req.args, req.form if req.method == "POST" else MultiDict()):
        for key, value in source.items(multi=True):
            if key not in _UI_FIELDS and not key.startswith(FORM_PREFIX + "-"):
                params.add(key, value)
    return params


def oauth_request(params: MultiDict[str, str]) -> UAuthRequest:
    req = current_request()
    return UAuthRequest(req.method, req.full_path, req.headers, params, get_state().issuer)
