"""Every kind of record uauth keeps in storage: its key, its lifetime, and the module that
writes it. The one map of what the database holds; the modules import their kinds from here.

Keys of secrets are digests (``hash_key``), never the raw value. A "group" is the ``grant_id``
a record is saved under: ``Store.revoke_grant`` and ``Store.grant_records`` act on a group.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecordKind:
    """One kind of stored record."""

    #: The kind as the Store sees it (``Store.save(kind, key, ...)``).
    name: str
    #: What the key is made of.
    key: str
    #: How long a record lives (the TTL it is saved with).
    lifetime: str
    #: The module that writes it.
    module: str
    #: The group it is saved in, if any.
    group: str = ""


CODE = "authorization_code"
ACCESS = "access_token"
REFRESH = "refresh_token"
ROTATED = "refresh_token_rotated"
REVOKED = "revoked"
SESSION = "session"
ENDED = "session_ended"
CONSENT = "consent"
APP_GRANT = "app_grant"
CLIENT = "client"
CLIENT_ORIGIN = "client_origin"
ORIGIN = "cors_origin"
USER = "user"
USERNAME = "username"
SUBJECT = "subject"
SETTING = "setting"
KEYSET = "keyset"
FAILURES = "throttle"
BLOCK = "throttle_block"
GROUP = "group"
AUDIT_EVENT = "audit_event"
MAIL_COUNTER = "mail_counter"
RESET = "reset_link"
VERIFY = "verify_link"
INVITE = "invitation"
SIGNUP = "signup_link"
FACTOR = "factor"
PASSKEY = "passkey"
RECOVERY_CODE = "recovery_code"
TOTP_USED = "totp_used"
CHALLENGE = "webauthn_challenge"
SESSION_GRANT = "session_grant"
EMAIL = "user_email"
PUSHED = "pushed_request"
DEVICE_CODE = "device_code"
USER_CODE = "device_user_code"
DEVICE_POLL = "device_poll"
INITIAL_TOKEN = "registration_token"
INITIAL_TOKEN_USES = "registration_token_uses"
REGISTRATION_RATE = "registration_rate"
CLIENT_USED = "client_used"
ASSERTION_JTI = "client_assertion_jti"

RECORDS: tuple[RecordKind, ...] = (
    RecordKind(CODE, "hash_key(code)", "UAUTH_CODE_TTL; kept after its one use (consume) until "
               "then, so a replay is recognised", "uauth.core.codes", "the grant id"),
    RecordKind(ACCESS, "hash_key(token)", "the opaque access token's own lifetime "
               "(UAUTH_ACCESS_TOKEN_TTL) + a minute, so a late use hears "
               "'expired'; deleted when revoked", "uauth.core.opaque", "the grant id"),
    RecordKind(REFRESH, "hash_key(token)", "UAUTH_REFRESH_TOKEN_IDLE_TTL, never past the "
               "family's UAUTH_REFRESH_TOKEN_TTL", "uauth.core.refresh", "the grant id"),
    RecordKind(ROTATED, "hash_key(presented token)", "what the presented token had left "
               "(its successor, for a retry within UAUTH_REFRESH_REUSE_GRACE)",
               "uauth.core.refresh", "the grant id"),
    RecordKind(REVOKED, "jti:<access token id> or grant:<grant id>", "until the token would "
               "have expired; for a grant, max(UAUTH_ACCESS_TOKEN_TTL, UAUTH_REFRESH_TOKEN_TTL)",
               "uauth.core.tokens"),
    RecordKind(SESSION, "hash_key(cookie handle)", "UAUTH_SESSION_TTL from login, ended "
               "earlier when idle UAUTH_SESSION_IDLE_TTL", "uauth.core.sessions",
               "sessions-of:<user id>"),
    RecordKind(ENDED, "hash_key(cookie handle)", "what the ended session had left",
               "uauth.core.sessions"),
    RecordKind(CONSENT, "<user id>:<client id>", "UAUTH_CONSENT_TTL", "uauth.core.consents",
               "apps-of:<user id>"),
    RecordKind(APP_GRANT, "<user id>:<client id>:<grant id>; a refresh-token family's "
               "<user id>/<client id digest>/<start>/<grant id>", "as long as the grant's tokens "
               "(and its session, for logout)", "uauth.core.consents", "apps-of:<user id>"),
    RecordKind(CLIENT, "client id", "forever (until `uauth client remove`)",
               "uauth.core.clients"),
    RecordKind(CLIENT_ORIGIN, "<origin> <client id>", "forever (as its client)",
               "uauth.core.clients", "origins-of:<origin>"),
    RecordKind(ORIGIN, "origin", "forever; read only, written by uauth before CLIENT_ORIGIN",
               "uauth.core.clients"),
    RecordKind(USER, "user id", "forever", "uauth.core.users"),
    RecordKind(USERNAME, "canonical username", "forever (as its user)", "uauth.core.users"),
    RecordKind(SUBJECT, "pairwise sub", "forever", "uauth.core.claims"),
    RecordKind(SETTING, "pairwise_salt; email_index (the email index is built)", "forever",
               "uauth.core.claims, uauth.core.emailindex"),
    RecordKind(KEYSET, "current, version or lock", "forever (lock: a few seconds)",
               "uauth.core.keyring"),
    RecordKind(FAILURES, "login:/login-ip:/reauth:/client:/client-ip:/device-code:/device-code-ip: "
               "+ digest or address",
               "UAUTH_THROTTLE_WINDOW from the first failure (Store.incr)",
               "uauth.core.throttle"),
    RecordKind(BLOCK, "as FAILURES", "the delay it imposes", "uauth.core.throttle"),
    RecordKind(GROUP, "group name", "forever (until removed)", "uauth.core.groups"),
    RecordKind(AUDIT_EVENT, "<milliseconds, 15 digits>-<random>: sorts by time",
               "UAUTH_AUDIT_RETENTION", "uauth.core.audittrail"),
    RecordKind(MAIL_COUNTER, "hash_key(address:/user:/ip: + value)", "an hour from the first "
               "mail (Store.incr)", "uauth.core.reset"),
    RecordKind(RESET, "hash_key(link token)", "UAUTH_RESET_TTL; deleted when used",
               "uauth.core.links"),
    RecordKind(VERIFY, "hash_key(link token)", "UAUTH_VERIFY_TTL; deleted when used",
               "uauth.core.links"),
    RecordKind(INVITE, "hash_key(link token)", "UAUTH_INVITE_TTL or the invitation's own; "
               "deleted when used or withdrawn", "uauth.core.invitations"),
    RecordKind(SIGNUP, "hash_key(link token)", "UAUTH_VERIFY_TTL; deleted when used (the "
               "account exists from then on)", "uauth.core.links"),
    RecordKind(FACTOR, "random factor id", "forever (until removed or `uauth user mfa reset`); "
               "a TOTP enrolment awaiting its first code: PENDING_TTL", "uauth.core.factors",
               "factors-of:<user id>"),
    RecordKind(PASSKEY, "base64url credential id", "as its factor", "uauth.core.factors",
               "factors-of:<user id>"),
    RecordKind(RECOVERY_CODE, "hash_key(<user id>:<code>)", "until used (consume) or replaced",
               "uauth.core.factors", "factors-of:<user id>"),
    RecordKind(TOTP_USED, "hash_key(<user id>:<time step>)", "four time steps (Store.add: a "
               "code is accepted once)", "uauth.core.factors"),
    RecordKind(CHALLENGE, "hash_key(ceremony id in the browser's session)",
               "passkeys.CHALLENGE_TTL; consumed once", "uauth.core.factors"),
    RecordKind(EMAIL, "<canonical email address> <user id>", "forever (as its user's address)",
               "uauth.core.emailindex", "email:<canonical email address>"),
    RecordKind(SESSION_GRANT, "<sid>:<client id>", "UAUTH_SESSION_TTL; removed with its grant",
               "uauth.core.grantlimits", "the grant id"),
    RecordKind(PUSHED, "hash_key(request_uri)", "UAUTH_PAR_TTL until first used at /authorize, "
               "then the interaction (30 min); deleted when the response is issued",
               "uauth.core.par"),
    RecordKind(DEVICE_CODE, "hash_key(device code)", "UAUTH_DEVICE_CODE_TTL + 5 min (so a late "
               "poll hears expired_token)", "uauth.core.device"),
    RecordKind(USER_CODE, "hash_key(normalised user code)", "UAUTH_DEVICE_CODE_TTL; consumed by "
               "the person's decision", "uauth.core.device"),
    RecordKind(DEVICE_POLL, "hash_key(device code)", "as its device code", "uauth.core.device"),
    RecordKind(INITIAL_TOKEN, "hash_key(initial access token)", "its --expires (`uauth "
               "registration token create`)", "uauth.core.registration"),
    RecordKind(INITIAL_TOKEN_USES, "hash_key(initial access token)", "as its token "
               "(Store.incr: registrations made with it)", "uauth.core.registration"),
    RecordKind(REGISTRATION_RATE, "client address", "an hour from the first open registration "
               "(Store.incr)", "uauth.oauth.registration"),
    RecordKind(CLIENT_USED, "client id", "forever (as its dynamic client); when it last got a "
               "token, for `uauth client prune`", "uauth.core.registration"),
    RecordKind(ASSERTION_JTI, "hash_key(<client id>\\x00<jti>)", "until the client assertion "
               "could no longer verify (its exp + leeway; Store.add: used once)",
               "uauth.oauth.client_assertion"),
)
