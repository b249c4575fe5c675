"""uauth instance configuration: uncomment and change what you need.

Loaded after the built-in defaults and before UAUTH_* environment variables.
Flask settings (e.g. SESSION_COOKIE_NAME) may be set here too.
"""

# Issuer identifier: the public base URL of the provider (https except on loopback).
# UAUTH_ISSUER = 'http://localhost:5000'

# Storage URL: memory://, sqlite:///path (sqlite:////abs/path), redis://host:port/db or redis+sentinel://host:port,host:port/service/db, redis+cluster://host:port,host:port or postgresql://user:pass@host:5432/db; {instance} is the instance folder.
# UAUTH_STORAGE = 'sqlite:///{instance}/uauth.db'

# Prefix of every Redis key uauth writes.
# UAUTH_REDIS_PREFIX = 'uauth:'

# Path under which the provider's endpoints are mounted, e.g. /auth (empty: the root).
# UAUTH_URL_PREFIX = ''

# Seconds an authorization code stays redeemable.
# UAUTH_CODE_TTL = 60

# Seconds an access token is valid (expires_in).
# UAUTH_ACCESS_TOKEN_TTL = 7200

# Seconds an ID token is valid.
# UAUTH_ID_TOKEN_TTL = 3600

# Absolute lifetime in seconds of a refresh-token family; rotation never extends it.
# UAUTH_REFRESH_TOKEN_TTL = 2592000

# Seconds a refresh token may go unused before it expires.
# UAUTH_REFRESH_TOKEN_IDLE_TTL = 1209600

# Seconds after a rotation in which a retry with the old refresh token gets the same new one back instead of revoking the grant (0: never).
# UAUTH_REFRESH_REUSE_GRACE = 0

# Require PKCE from every client, confidential ones included.
# UAUTH_REQUIRE_PKCE = False

# Require pushed authorization requests (RFC 9126) from every client.
# UAUTH_REQUIRE_PAR = False

# Seconds a pushed request's request_uri stays usable at /authorize (RFC 9126).
# UAUTH_PAR_TTL = 60

# Seconds a device code and its user code stay usable (RFC 8628 expires_in).
# UAUTH_DEVICE_CODE_TTL = 600

# Seconds a device must wait between polls of /token (RFC 8628 interval).
# UAUTH_DEVICE_POLL_INTERVAL = 5

# Global switch for PKCE 'plain'; when true, only clients allowed it may use it.
# UAUTH_ALLOW_PLAIN_PKCE = True

# Default signing algorithm of ID tokens; a client may register another (id_token_signed_response_alg).
# UAUTH_SIGNING_ALG = 'RS256'

# Signing algorithm of access tokens (RFC 9068 JWTs), for every client.
# UAUTH_ACCESS_TOKEN_ALG = 'RS256'

# Access token format of new clients (`--access-token-format` overrides it per client): jwt (RFC 9068, verifiable with the JWKS alone) or opaque (a random reference to claims in storage: no signature to compute, but only introspection or the embedding app can check it). Clients registered before keep theirs.
# UAUTH_ACCESS_TOKEN_FORMAT = 'jwt'

# Algorithms with a signing key (published in the JWKS, listed in discovery) out of RS256 PS256 ES256 EdDSA; RS256 and the two defaults above are always included.
# UAUTH_SIGNING_ALGS = ['RS256']

# Days a signing key signs before a new one takes over automatically (0: never).
# UAUTH_KEY_ROTATION_DAYS = 30

# Seconds a new signing key is published in the JWKS before it signs anything.
# UAUTH_KEY_PREPUBLISH = 86400

# Seconds a worker reuses a client it looked up; a removed client stops working on every worker within this time (0: look it up on every request).
# UAUTH_CLIENT_CACHE_TTL = 5

# Seconds between a worker's checks for keys rotated by another process or host.
# UAUTH_KEY_CHECK_INTERVAL = 5

# Absolute lifetime in seconds of a login session at the provider.
# UAUTH_SESSION_TTL = 1209600

# Seconds a login session may go unused before it ends (checked on the next visit).
# UAUTH_SESSION_IDLE_TTL = 604800

# Seconds to wait for a client's back-channel logout endpoint to answer, per attempt.
# UAUTH_BACKCHANNEL_TIMEOUT = 5

# Hosts uauth may call although they resolve to a loopback, private or other internal address (back-channel logout, sector identifier URIs), and which may use plain http; e.g. a development receiver on 127.0.0.1. Empty: public https hosts only.
# UAUTH_FETCH_ALLOWED_HOSTS = []

# Extra attempts (with backoff) at a back-channel logout that failed with a network or 5xx error.
# UAUTH_BACKCHANNEL_RETRIES = 2

# Seconds a remembered consent lasts.
# UAUTH_CONSENT_TTL = 31536000

# Scopes this provider knows; clients are limited to a subset.
# UAUTH_SCOPES = ['openid', 'profile', 'email', 'address', 'phone', 'groups', 'offline_access']

# Cache-Control max-age in seconds for discovery and JWKS documents.
# UAUTH_DISCOVERY_MAX_AGE = 300

# Endpoint or URL of the login page uauth sends people to (gets ?next=); empty: the app's LoginManager.login_view (a host app's own page), else uauth's.
# UAUTH_LOGIN_VIEW = ''

# Profile attributes beyond the built-in standard ones: a list of {name, label, type (text, email, phone, date, choice), choices, pattern, max_length, help, editable}.
# UAUTH_ATTRIBUTES = []

# Attribute names every user must fill in before returning to any app (clients can require more with --require-attribute).
# UAUTH_REQUIRED_ATTRIBUTES = []

# Second factors: off; optional (people may add passkeys and TOTP, and who has one uses it); required (everyone enrols one at their next sign-in). docs/signing-in.md.
# UAUTH_MFA = 'optional'

# Passkeys' relying party ID: empty for the issuer's host, or a parent domain of it (passkeys then work on every host under it).
# UAUTH_WEBAUTHN_RP_ID = ''

# Profile attributes released as claims: {scope: {description, claims: {claim: attribute} or [claim, ...]}}; new scopes join UAUTH_SCOPES and discovery.
# UAUTH_CUSTOM_SCOPES = {}

# Resources (RFC 8707) tokens may be asked for: {uri: {name, scopes: [...]}}; the scopes join UAUTH_SCOPES. Self-registered clients may ask for any of them; others for their --audience values.
# UAUTH_RESOURCES = {}

# Dynamic client registration (RFC 7591) at /register: off, token (needs an initial access token from `uauth registration token create`) or open (anyone, within the policy below).
# UAUTH_REGISTRATION = 'off'

# Scopes an openly registered client may ask for, besides every UAUTH_RESOURCES scope.
# UAUTH_REGISTRATION_SCOPES = ['openid', 'profile', 'email', 'offline_access']

# Open registrations allowed per IP address and hour.
# UAUTH_REGISTRATION_RATE = 10

# Seconds after which a dynamically registered client that got no token is removed by `uauth client prune`.
# UAUTH_REGISTRATION_UNUSED_TTL = 2592000

# Client ID metadata documents (an https URL as client_id): off, allowlist (only hosts in UAUTH_CIMD_HOSTS) or on (any public https host).
# UAUTH_CIMD = 'allowlist'

# Hosts whose client ID metadata documents are accepted under UAUTH_CIMD = allowlist.
# UAUTH_CIMD_HOSTS = []

# Subject type of new clients: pairwise (a different sub per sector, OIDC Core 8.1) or public (the same sub everywhere).
# UAUTH_DEFAULT_SUBJECT_TYPE = 'pairwise'

# Number of reverse proxies in front of uauth whose X-Forwarded-For/-Proto/-Host and X-Request-ID headers are trusted (0: none).
# UAUTH_TRUSTED_PROXIES = 0

# Largest request body uauth's endpoints read (larger: 413 invalid_request).
# UAUTH_MAX_BODY_BYTES = 65536

# Longest value, in characters, of any one request parameter (longer: invalid_request).
# UAUTH_MAX_PARAM_LENGTH = 8192

# Throttle failed logins (per account and per IP address) and failed client authentication (per client and IP address, and per IP address).
# UAUTH_THROTTLE = True

# Seconds over which failures are counted, from the first one; also the longest a lock lasts.
# UAUTH_THROTTLE_WINDOW = 900

# Failures per account (or client) in a window before each further attempt must wait.
# UAUTH_THROTTLE_FREE_FAILURES = 5

# Failures per account (or client) in a window that lock it until the window ends.
# UAUTH_THROTTLE_LOCK_FAILURES = 20

# Failures from one IP address in a window before each further attempt must wait.
# UAUTH_THROTTLE_IP_FREE_FAILURES = 20

# Failures from one IP address in a window that lock it until the window ends.
# UAUTH_THROTTLE_IP_LOCK_FAILURES = 100

# Longest wait in seconds between attempts before a lock (it doubles from 1 s).
# UAUTH_THROTTLE_MAX_DELAY = 60

# Serve Prometheus metrics at /metrics.
# UAUTH_METRICS = False

# If set, /metrics requires 'Authorization: Bearer <this token>'.
# UAUTH_METRICS_TOKEN = ''

# Log lines as JSON objects (json) or plain text (text); set up by uauth serve and wsgi.py.
# UAUTH_LOG_FORMAT = 'json'

# Outgoing mail server: smtp://host:25, smtp://user:pass@host:587?starttls=true or smtps://host:465 (empty: no mail; password reset, verification and invitation mails are off).
# UAUTH_SMTP_URL = ''

# SMTP password, when it is not in UAUTH_SMTP_URL (keep it in the environment).
# UAUTH_SMTP_PASSWORD = ''

# Sender of uauth's mails, e.g. 'Example ID <id@example.com>' (required with UAUTH_SMTP_URL).
# UAUTH_MAIL_FROM = ''

# Seconds to wait for the mail server, per attempt.
# UAUTH_MAIL_TIMEOUT = 10

# Extra attempts (with backoff) at a mail the server could not take.
# UAUTH_MAIL_RETRIES = 2

# Seconds a password reset link stays usable (it works once).
# UAUTH_RESET_TTL = 1800

# Seconds an email verification link (and an open sign-up waiting for it) stays usable.
# UAUTH_VERIFY_TTL = 172800

# Seconds an invitation stays usable, unless it names its own expiry.
# UAUTH_INVITE_TTL = 604800

# Mails (reset, verification, sign-up) one address or account gets per hour at most; an IP address may ask for ten times as many.
# UAUTH_MAIL_LIMIT = 3

# Who may create an account: off (admins only), invite (with an invitation) or open (anyone, after verifying their email address).
# UAUTH_SIGNUP = 'off'

# With UAUTH_SIGNUP=open: email domains allowed to sign up (empty: any).
# UAUTH_SIGNUP_DOMAINS = []

# Seconds audit events are kept in storage for the admin console's audit view (0: not kept; the audit log lines are unaffected).
# UAUTH_AUDIT_RETENTION = 2592000

# Seconds an admin's re-entered password counts for dangerous console actions (removing an app, resetting second factors).
# UAUTH_REAUTH_TTL = 300

# Lowest level logged: DEBUG, INFO, WARNING or ERROR (INFO logs one line per request).
# UAUTH_LOG_LEVEL = 'INFO'
