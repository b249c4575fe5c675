"""The audit trail: one structured log event per security-relevant action.

Events go to the ``uauth.audit`` logger through the same logging set-up as every other line
(:mod:`uauth.logs`): as JSON under ``uauth serve``, with the request id, and with ``event``,
``client_id``, ``user_id`` and ``ip`` as fields of their own. They name who and what, never a
secret: no password, code, token, client secret or session handle is ever passed here (grant
ids appear shortened, as in the other logs).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import has_request_context
from flask import request

log = logging.getLogger("uauth.audit")

LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
LOGOUT = "logout"
CONSENT_GIVEN = "consent.given"
CONSENT_DENIED = "consent.denied"
CONSENT_REVOKED = "consent.revoked"
TOKEN_ISSUED = "token.issued"
TOKEN_REFRESHED = "token.refreshed"
TOKEN_REVOKED = "token.revoked"
CLIENT_AUTH_FAILED = "client_auth.failed"
CLIENT_AUTH_THROTTLED = "client_auth.throttled"
REPLAY_DETECTED = "replay.detected"
BACKCHANNEL_DROPPED = "backchannel.dropped"
FAMILY_REVOKED = "family.revoked"
PASSWORD_CHANGED = "password.changed"
ADMIN = "admin"


def audit(event: str, *, client_id: str | None = None, user_id: str | None = None,
          **detail: Any) -> None:
    """Log one audit event; ``detail`` holds further non-secret fields (``grant``, ...)."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {"event": event}
    if client_id is not None:
        fields["client_id"] = client_id
    if user_id is not None:
        fields["user_id"] = user_id
    if has_request_context():
        fields["ip"] = request.remote_addr
    fields.update((k, v) for k, v in detail.items() if v is not None)
    for name, value in fields.items():
        if isinstance(value, str):  # a claimed client id is the caller's text: keep it tame
            fields[name] = "".join(ch for ch in value[:128] if ch.isprintable())
    # Text values are quoted (JSON strings), so a caller's text can never look like another
    # field in the plain-text log: client_id="evil user_id=alice" stays one value.
    text = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}"
                    for k, v in fields.items() if k != "event")
    log.info("%s %s", event, text, extra={"audit": fields})
