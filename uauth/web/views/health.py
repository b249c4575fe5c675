"""Health checks for load balancers: cheap enough to poll every second.

``/healthz`` touches nothing; ``/readyz`` is one storage round trip (``ping``) plus an in-memory
look at the key set, which is re-read from storage at most every ``UAUTH_KEY_CHECK_INTERVAL``.
"""

from __future__ import annotations

from flask import Blueprint
from flask import jsonify
from flask.typing import ResponseReturnValue

from uauth.storage import StorageError
from uauth.web.state import get_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process answers; says nothing about its dependencies."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Storage answers and every enabled algorithm has a key that signs: route traffic here."""
    state = get_state()
    checks = {"keys": "ok" if state.keys.ready() else "missing"}
    try:
        state.store.ping()
        checks["storage"] = "ok"
    except StorageError:
        checks["storage"] = "unavailable"
        state.metrics.storage_error()
    ready = all(value == "ok" for value in checks.values())
    response = jsonify(status="ok" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
