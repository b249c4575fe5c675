"""The audit trail: one structured log event per security-relevant action.

Events go to the ``uauth.audit`` logger through the same logging set-up as every other line
(:mod:`uauth.ops.logs`, which under ``uauth serve`` writes them to its stream itself:
:func:`write_audit_lines`): as JSON under ``uauth serve``, with the request id, and with ``event``,
``client_id``, ``user_id`` and ``ip`` as fields of their own. They name who and what, never a
secret: no password, code, token, client secret or session handle is ever passed here (grant
ids appear shortened, as in the other logs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps of a str, less its checks
from typing import Any

log = logging.getLogger("uauth.audit")


def _no_context() -> Mapping[str, Any]:
    return {}


#: Fields of the request being served (``ip``), added to every event. Core knows no HTTP: the
#: wiring installs the web layer's source of them (:func:`uauth.web.requestlog.audit_context`);
#: events outside a request (the CLI) carry none.
context_fields: Callable[[], Mapping[str, Any]] = _no_context


def _no_keeper() -> Callable[[dict[str, Any]], None] | None:
    return None


#: Where the app serving this event keeps it for the admin console's audit view
#: (:mod:`uauth.core.audittrail`); the wiring installs the web layer's lookup
#: (:func:`uauth.web.requestlog.audit_keeper`). None: not kept.
event_keeper: Callable[[], Callable[[dict[str, Any]], None] | None] = _no_keeper

#: Writes an event's line itself (message, fields), or answers False to have ``logging`` write
#: it; ``uauth serve``'s writes to its handler's stream (:class:`uauth.ops.logs.DirectLines`).
AuditLineWriter = Callable[[str, dict[str, Any]], bool]
_writer: AuditLineWriter | None = None


def write_audit_lines(writer: AuditLineWriter | None) -> None:
    """Hand this process's audit lines to ``writer`` (None: to ``logging``, the default)."""
    global _writer  # noqa: PLW0603 - one writer per process, as logging's handlers are
    _writer = writer

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
MFA_SUCCEEDED = "mfa.succeeded"
MFA_FAILED = "mfa.failed"
MFA_THROTTLED = "mfa.throttled"
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
MFA_RESET = "mfa.reset"
RECOVERY_CODE_USED = "mfa.recovery_code_used"
RECOVERY_CODES_CREATED = "mfa.recovery_codes_created"
PASSKEY_LOGIN = "passkey.login"
PASSKEY_FAILED = "passkey.failed"
PASSKEY_COUNTER = "passkey.counter_regressed"
ADMIN = "admin"
ACCESS_REFUSED = "access.refused"
PASSWORD_RESET_REQUESTED = "password_reset.requested"
PASSWORD_RESET = "password_reset.completed"
EMAIL_VERIFIED = "email.verified"
MAIL_SENT = "mail.sent"
MAIL_FAILED = "mail.failed"
INVITATION_CREATED = "invitation.created"
INVITATION_ACCEPTED = "invitation.accepted"
SIGNUP_REQUESTED = "signup.requested"
SIGNUP_COMPLETED = "signup.completed"
LINK_REFUSED = "link.refused"
ADMIN_DENIED = "admin.denied"

#: One per token request: in the log lines, but too many to keep in storage for the console.
NOT_KEPT = frozenset({TOKEN_ISSUED, TOKEN_REFRESHED})


def audit(event: str, *, client_id: str | None = None, user_id: str | None = None,
          **detail: Any) -> None:
    """Log one audit event; ``detail`` holds further non-secret fields (``grant``, ...).

    Within an app, the event is also kept in storage for the admin console's audit view
    (:data:`event_keeper`, ``UAUTH_AUDIT_RETENTION``), token issuance excepted.
    """
    keeper = None if event in NOT_KEPT else event_keeper()
    if not log.isEnabledFor(logging.INFO) and keeper is None:
        return
    fields: dict[str, Any] = {"event": event}
    if client_id is not None:
        fields["client_id"] = client_id
    if user_id is not None:
        fields["user_id"] = user_id
    fields.update(context_fields())
    fields.update((k, v) for k, v in detail.items() if v is not None)
    for name, value in fields.items():
        if isinstance(value, str):  # a claimed client id is the caller's text: keep it tame
            value = value[:128]
            # One C call for the common case; a character at a time only for what needs it.
            fields[name] = value if value.isprintable() else "".join(
                ch for ch in value if ch.isprintable())
    if log.isEnabledFor(logging.INFO):
        # Text values are quoted (JSON strings), so a caller's text can never look like another
        # field in the plain-text log: client_id="evil user_id=alice" stays one value.
        text = " ".join(f"{k}={_quoted(v) if isinstance(v, str) else v}"
                        for k, v in fields.items() if k != "event")
        writer = _writer
        if writer is None or not writer(f"{event} {text}", fields):
            # Made and handled directly, as the access line is: ``info`` would also walk the
            # stack for the caller's file and line, which no format of ours shows.
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s",
                                      (event, text), None, "audit", {"audit": fields}))
    if keeper is not None:
        keeper(fields)
