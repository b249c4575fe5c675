"""/metrics: Prometheus text format, only when ``UAUTH_METRICS`` is on.

Protect it with ``UAUTH_METRICS_TOKEN`` (a bearer token, compared in constant time) or by not
routing it through the public proxy; with metrics off it does not exist (404).
"""

from __future__ import annotations

import hmac

from flask import Blueprint
from flask import Response
from flask import request
from flask.typing import ResponseReturnValue

from uauth.core.metrics import Metrics
from uauth.web.state import get_state

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    state = get_state()
    if not isinstance(state.metrics, Metrics):  # off: nothing here, and no OAuth error either
        return Response("Not Found\n", status=404, mimetype="text/plain")
    expected = state.settings.metrics_token
    if expected:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.strip().encode(), expected.encode()):
            return Response("", status=401, headers={
                "WWW-Authenticate": 'Bearer realm="uauth-metrics"', "Cache-Control": "no-store"})
    body, content_type = state.metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
