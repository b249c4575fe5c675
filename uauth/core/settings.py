"""Every ``UAUTH_*`` setting, its default, its meaning, and its validation.

One place on purpose: docs/configuration.md's table is generated from :data:`SETTINGS`
(``uauth config-doc``), and start-up fails early with a message that names the key and the fix.

Precedence (lowest first): these defaults, the instance ``config.py``, ``UAUTH_*`` environment
variables, then a mapping passed to :func:`uauth.create_app`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import MutableMapping
from dataclasses import dataclass
from dataclasses import fields
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from uauth.core.attributes import Attribute
from uauth.core.attributes import DefinitionError
from uauth.core.attributes import catalogue
from uauth.core.attributes import parse_definition
from uauth.core.claims import parse_custom_scopes
from uauth.core.keys import SUPPORTED_ALGS
from uauth.core.mail import MailConfigError
from uauth.core.mail import parse_smtp_url
from uauth.core.resources import parse_resources
from uauth.storage.redis_urls import parse_cluster_url
from uauth.storage.redis_urls import parse_sentinel_url


class ConfigError(ValueError):
    """A setting has a value uauth cannot run with; the message names the key and the fix."""


Validator = Callable[[str, Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    doc: str
    validate: Validator | None = None


def _whole_number(minimum: int) -> Validator:
    """A whole number >= ``minimum``: an int, or text that is one (environment variables)."""
    wanted = "a positive whole number" if minimum > 0 else "0 or a positive whole number"

    def check(name: str, value: Any, _: Mapping[str, Any]) -> int:
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        if number is None or number < minimum:
            raise ConfigError(f"{name} must be {wanted} (seconds where it is a time), "
                              f"got {value!r}")
        return number

    return check


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _boolean(name: str, value: Any, _: Mapping[str, Any]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (RFC 8252 §7.3 counts these)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _issuer(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(
            f"{name} must be an absolute http(s) URL such as https://id.example.com, got {text!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not contain a query or fragment (OIDC Discovery §3)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{name} uses http on the non-loopback host {parts.hostname!r}; "
            "use https (http is only allowed for 127.0.0.1, [::1] and localhost)"
        )
    return text.rstrip("/")


STORAGE_SCHEMES = ("memory", "sqlite", "redis", "rediss", "unix", "redis+sentinel",
                   "redis+cluster", "rediss+cluster", "postgresql", "postgres")


def _storage(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value).strip()
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in STORAGE_SCHEMES:
        raise ConfigError(
            f"{name} has an unknown storage scheme {scheme or text!r}; use memory://, "
            "sqlite:///path/to/uauth.db, redis://host:6379/0, "
            "redis+sentinel://host:26379,host2:26379/service/0, "
            "redis+cluster://host:7000,host2:7000 or postgresql://user@host:5432/db"
        )
    if scheme == "redis+sentinel":
        try:
            parse_sentinel_url(text)
        except ValueError as exc:
            raise ConfigError(
                f"{name}: {exc}; e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
            ) from None
    if scheme in ("redis", "rediss"):
        _redis_url(name, text)
    if scheme in ("redis+cluster", "rediss+cluster"):
        try:
            parse_cluster_url(text)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}; e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
                              ) from None
    if scheme in ("postgresql", "postgres") and not urlsplit(text).path.strip("/"):
        raise ConfigError(f"{name} must name a database: postgresql://user@host:5432/uauth")
    if scheme == "sqlite" and (not text.startswith("sqlite:///") or text == "sqlite:///"):
        raise ConfigError(
            f"{name} must be sqlite:///relative/path.db or sqlite:////absolute/path.db, "
            f"got {text!r}"
        )
    return text


def _redis_url(name: str, text: str) -> None:
    """Port and database number, checked before anything connects (never echoing a password)."""
    parts = urlsplit(text)
    where = f"{parts.scheme}://{parts.hostname or ''}"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == -1 or port == 0:
        shown = parts.netloc.rpartition("@")[2]
        raise ConfigError(f"{name}: the port in {parts.scheme}://{shown} is not a number from "
                          "1 to 65535; e.g. redis://127.0.0.1:6379/0")
    db = parts.path.strip("/")
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if key == "db":
            db = value
    if db and not db.isdigit():
        raise ConfigError(f"{name}: the database in {where}:{port or 6379}/{db} must be a "
                          f"number (0 to 15 on a default Redis server), got {db!r}")


def validate_storage_url(url: str, instance_path: str, name: str = "--to") -> str:
    """A storage URL given outside the config (``uauth migrate --to``), checked the same way."""
    return _storage(name, url.replace("{instance}", instance_path), {})


def _url_prefix(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value or "").strip()
    if text and (not text.startswith("/") or text.endswith("/")):
        raise ConfigError(
            f"{name} must be empty or start with '/' and not end with one, got {text!r}")
    return text


def _login_view(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value or "").strip()
    if text and any(ch.isspace() for ch in text):
        raise ConfigError(f"{name} must be an endpoint such as auth.login or a URL, got {text!r}")
    return text


def _signing_alg(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value).strip()
    if text not in SUPPORTED_ALGS:
        raise ConfigError(f"{name} must be one of {', '.join(SUPPORTED_ALGS)}, got {text!r}")
    return text


def _signing_algs(name: str, value: Any, config: Mapping[str, Any]) -> list[str]:
    """The enabled algorithms: those listed, the two defaults, and always RS256 (OIDC Core
    §15.1, Discovery §3), in the order of :data:`uauth.core.keys.SUPPORTED_ALGS`."""
    listed = set(_str_list(name, value, config))
    unknown = sorted(listed - set(SUPPORTED_ALGS))
    if unknown:
        raise ConfigError(f"{name} may list {', '.join(SUPPORTED_ALGS)}; unknown: "
                          f"{', '.join(unknown)}")
    enabled = listed | {"RS256", config["UAUTH_SIGNING_ALG"], config["UAUTH_ACCESS_TOKEN_ALG"]}
    return [alg for alg in SUPPORTED_ALGS if alg in enabled]


def _prepublish(name: str, value: Any, config: Mapping[str, Any]) -> int:
    seconds: int = _non_negative_int(name, value, config)
    days = config["UAUTH_KEY_ROTATION_DAYS"]
    if days and seconds >= days * 86400:
        raise ConfigError(f"{name} ({seconds} s) must be shorter than UAUTH_KEY_ROTATION_DAYS "
                          f"({days} days): a key is published before it signs, not after")
    return seconds


_LOG_FORMATS = ("json", "text")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _choice(choices: tuple[str, ...]) -> Validator:
    def check(name: str, value: Any, _: Mapping[str, Any]) -> str:
        text = str(value).strip()
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {text!r}")

    return check


def _str_list(name: str, value: Any, _: Mapping[str, Any]) -> list[str]:
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ConfigError(f"{name} must be a list of strings or a space-separated string")


def _attributes(name: str, value: Any, _: Mapping[str, Any]) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of attribute definitions (mappings)")
    try:
        parsed = tuple(parse_definition(item) for item in value)
    except DefinitionError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    names = [a.name for a in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{name} defines an attribute twice")
    return parsed


def _required_attributes(name: str, value: Any, config: Mapping[str, Any]) -> tuple[str, ...]:
    names = _str_list(name, value, config)
    known = catalogue(config["UAUTH_ATTRIBUTES"])
    for item in names:
        if item not in known:
            raise ConfigError(
                f"{name} names the unknown attribute {item!r}; use one of "
                f"{', '.join(known)} or define it in UAUTH_ATTRIBUTES")
        if not known[item].editable:
            raise ConfigError(f"{name}: {item!r} is not editable, so people could never fill it")
    return tuple(dict.fromkeys(names))


def _custom_scopes(name: str, value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's scopes; they are known scopes too (:attr:`Settings.known_scopes`), which
    this validator leaves to the settings object instead of growing ``UAUTH_SCOPES``."""
    try:
        return parse_custom_scopes(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _resources(name: str, value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The resources (RFC 8707); their scopes are known scopes too
    (:attr:`Settings.known_scopes`)."""
    try:
        return parse_resources(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


SUBJECT_TYPES = ("pairwise", "public")
#: Access tokens a client may get: RFC 9068 JWTs, or opaque references to stored claims.
ACCESS_TOKEN_FORMATS = ("jwt", "opaque")


def _subject_type(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value).strip()
    if text not in SUBJECT_TYPES:
        raise ConfigError(f"{name} must be pairwise or public, got {text!r}")
    return text


SIGNUP_MODES = ("off", "invite", "open")


def _smtp_url(name: str, value: Any, _: Mapping[str, Any]) -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    try:
        parse_smtp_url(text, "")
    except MailConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return text


def _mail_from(name: str, value: Any, config: Mapping[str, Any]) -> str:
    text = str(value or "").strip()
    if config.get("UAUTH_SMTP_URL") and not text:
        raise ConfigError(f"{name} must be set when UAUTH_SMTP_URL is: the address uauth's "
                          "mails come from, e.g. 'Example ID <id@example.com>'")
    if text and ("@" not in text or any(ch in text for ch in "\r\n")):
        raise ConfigError(f"{name} must be an address such as 'uauth <id@example.com>', "
                          f"got {text!r}")
    return text


def _domains(name: str, value: Any, config: Mapping[str, Any]) -> list[str]:
    domains = [d.strip().lstrip("@").lower() for d in _str_list(name, value, config)]
    for domain in domains:
        if not domain or "." not in domain or "@" in domain:
            raise ConfigError(f"{name} lists email domains such as example.com, got {domain!r}")
    return domains


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "UAUTH_ISSUER",
        "http://localhost:5000",
        "Issuer identifier: the public base URL of the provider (https except on loopback).",
        _issuer,
    ),
    Setting(
        "UAUTH_STORAGE",
        "sqlite:///{instance}/uauth.db",
        "Storage URL: memory://, sqlite:///path (sqlite:////abs/path), redis://host:port/db or "
        "redis+sentinel://host:port,host:port/service/db, redis+cluster://host:port,host:port "
        "or postgresql://user:pass@host:5432/db; {instance} is the instance folder.",
        _storage,
    ),
    Setting("UAUTH_REDIS_PREFIX", "uauth:", "Prefix of every Redis key uauth writes."),
    Setting(
        "UAUTH_URL_PREFIX",
        "",
        "Path under which the provider's endpoints are mounted, e.g. /auth (empty: the root).",
        _url_prefix,
    ),
    Setting("UAUTH_CODE_TTL", 60, "Seconds an authorization code stays redeemable.", _positive_int),
    Setting(
        "UAUTH_ACCESS_TOKEN_TTL", 7200, "Seconds an access token is valid (expires_in).",
        _positive_int,
    ),
    Setting("UAUTH_ID_TOKEN_TTL", 3600, "Seconds an ID token is valid.", _positive_int),
    Setting(
        "UAUTH_REFRESH_TOKEN_TTL",
        30 * 24 * 3600,
        "Absolute lifetime in seconds of a refresh-token family; rotation never extends it.",
        _positive_int,
    ),
    Setting(
        "UAUTH_REFRESH_TOKEN_IDLE_TTL",
        14 * 24 * 3600,
        "Seconds a refresh token may go unused before it expires.",
        _positive_int,
    ),
    Setting(
        "UAUTH_REFRESH_REUSE_GRACE",
        0,
        "Seconds after a rotation in which a retry with the old refresh token gets the same "
        "new one back instead of revoking the grant (0: never).",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_REQUIRE_PKCE",
        False,
        "Require PKCE from every client, confidential ones included.",
        _boolean,
    ),
    Setting(
        "UAUTH_REQUIRE_PAR",
        False,
        "Require pushed authorization requests (RFC 9126) from every client.",
        _boolean,
    ),
    Setting(
        "UAUTH_PAR_TTL",
        60,
        "Seconds a pushed request's request_uri stays usable at /authorize (RFC 9126).",
        _positive_int,
    ),
    Setting(
        "UAUTH_DEVICE_CODE_TTL",
        600,
        "Seconds a device code and its user code stay usable (RFC 8628 expires_in).",
        _positive_int,
    ),
    Setting(
        "UAUTH_DEVICE_POLL_INTERVAL",
        5,
        "Seconds a device must wait between polls of /token (RFC 8628 interval).",
        _positive_int,
    ),
    Setting(
        "UAUTH_ALLOW_PLAIN_PKCE",
        True,
        "Global switch for PKCE 'plain'; when true, only clients allowed it may use it.",
        _boolean,
    ),
    Setting(
        "UAUTH_SIGNING_ALG",
        "RS256",
        "Default signing algorithm of ID tokens; a client may register another "
        "(id_token_signed_response_alg).",
        _signing_alg,
    ),
    Setting(
        "UAUTH_ACCESS_TOKEN_ALG",
        "RS256",
        "Signing algorithm of access tokens (RFC 9068 JWTs), for every client.",
        _signing_alg,
    ),
    Setting(
        "UAUTH_ACCESS_TOKEN_FORMAT",
        "jwt",
        "Access token format of new clients (`--access-token-format` overrides it per client): "
        "jwt (RFC 9068, verifiable with the JWKS alone) or opaque (a random reference to "
        "claims in storage: no signature to compute, but only introspection or the embedding "
        "app can check it). Clients registered before keep theirs.",
        _choice(ACCESS_TOKEN_FORMATS),
    ),
    Setting(
        "UAUTH_SIGNING_ALGS",
        ["RS256"],
        "Algorithms with a signing key (published in the JWKS, listed in discovery) out of "
        "RS256 PS256 ES256 EdDSA; RS256 and the two defaults above are always included.",
        _signing_algs,
    ),
    Setting(
        "UAUTH_KEY_ROTATION_DAYS",
        30,
        "Days a signing key signs before a new one takes over automatically (0: never).",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_KEY_PREPUBLISH",
        86400,
        "Seconds a new signing key is published in the JWKS before it signs anything.",
        _prepublish,
    ),
    Setting(
        "UAUTH_CLIENT_CACHE_TTL",
        5,
        "Seconds a worker reuses a client it looked up; a removed client stops working on "
        "every worker within this time (0: look it up on every request).",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_KEY_CHECK_INTERVAL",
        5,
        "Seconds between a worker's checks for keys rotated by another process or host.",
        _positive_int,
    ),
    Setting(
        "UAUTH_SESSION_TTL",
        14 * 24 * 3600,
        "Absolute lifetime in seconds of a login session at the provider.",
        _positive_int,
    ),
    Setting(
        "UAUTH_SESSION_IDLE_TTL",
        7 * 24 * 3600,
        "Seconds a login session may go unused before it ends (checked on the next visit).",
        _positive_int,
    ),
    Setting(
        "UAUTH_BACKCHANNEL_TIMEOUT",
        5,
        "Seconds to wait for a client's back-channel logout endpoint to answer, per attempt.",
        _positive_int,
    ),
    Setting(
        "UAUTH_FETCH_ALLOWED_HOSTS",
        [],
        "Hosts uauth may call although they resolve to a loopback, private or other internal "
        "address (back-channel logout, sector identifier URIs), and which may use plain http; "
        "e.g. a development receiver on 127.0.0.1. Empty: public https hosts only.",
        _str_list,
    ),
    Setting(
        "UAUTH_BACKCHANNEL_RETRIES",
        2,
        "Extra attempts (with backoff) at a back-channel logout that failed with a network or "
        "5xx error.",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_CONSENT_TTL",
        365 * 24 * 3600,
        "Seconds a remembered consent lasts.",
        _positive_int,
    ),
    Setting(
        "UAUTH_SCOPES",
        ["openid", "profile", "email", "address", "phone", "groups", "offline_access"],
        "Scopes this provider knows; clients are limited to a subset.",
        _str_list,
    ),
    Setting(
        "UAUTH_DISCOVERY_MAX_AGE",
        300,
        "Cache-Control max-age in seconds for discovery and JWKS documents.",
        _positive_int,
    ),
    Setting(
        "UAUTH_LOGIN_VIEW",
        "",
        "Endpoint or URL of the login page uauth sends people to (gets ?next=); empty: the "
        "app's LoginManager.login_view (a host app's own page), else uauth's.",
        _login_view,
    ),
    Setting(
        "UAUTH_ATTRIBUTES",
        [],
        "Profile attributes beyond the built-in standard ones: a list of {name, label, type "
        "(text, email, phone, date, choice), choices, pattern, max_length, help, editable}.",
        _attributes,
    ),
    Setting(
        "UAUTH_REQUIRED_ATTRIBUTES",
        [],
        "Attribute names every user must fill in before returning to any app (clients can "
        "require more with --require-attribute).",
        _required_attributes,
    ),
    Setting(
        "UAUTH_MFA",
        "optional",
        "Second factors: off; optional (people may add passkeys and TOTP, and who has one "
        "uses it); required (everyone enrols one at their next sign-in). docs/signing-in.md.",
        _choice(("off", "optional", "required")),
    ),
    Setting(
        "UAUTH_WEBAUTHN_RP_ID",
        "",
        "Passkeys' relying party ID: empty for the issuer's host, or a parent domain of it "
        "(passkeys then work on every host under it).",
        lambda name, value, _: str(value or "").strip().lower(),
    ),
    Setting(
        "UAUTH_CUSTOM_SCOPES",
        {},
        "Profile attributes released as claims: {scope: {description, claims: {claim: "
        "attribute} or [claim, ...]}}; new scopes join UAUTH_SCOPES and discovery.",
        _custom_scopes,
    ),
    Setting(
        "UAUTH_RESOURCES",
        {},
        "Resources (RFC 8707) tokens may be asked for: {uri: {name, scopes: [...]}}; the "
        "scopes join UAUTH_SCOPES. Self-registered clients may ask for any of them; others "
        "for their --audience values.",
        _resources,
    ),
    Setting(
        "UAUTH_REGISTRATION",
        "off",
        "Dynamic client registration (RFC 7591) at /register: off, token (needs an initial "
        "access token from `uauth registration token create`) or open (anyone, within the "
        "policy below).",
        _choice(("off", "token", "open")),
    ),
    Setting(
        "UAUTH_REGISTRATION_SCOPES",
        ["openid", "profile", "email", "offline_access"],
        "Scopes an openly registered client may ask for, besides every UAUTH_RESOURCES scope.",
        _str_list,
    ),
    Setting(
        "UAUTH_REGISTRATION_RATE",
        10,
        "Open registrations allowed per IP address and hour.",
        _positive_int,
    ),
    Setting(
        "UAUTH_REGISTRATION_UNUSED_TTL",
        30 * 24 * 3600,
        "Seconds after which a dynamically registered client that got no token is removed by "
        "`uauth client prune`.",
        _positive_int,
    ),
    Setting(
        "UAUTH_CIMD",
        "allowlist",
        "Client ID metadata documents (an https URL as client_id): off, allowlist (only hosts "
        "in UAUTH_CIMD_HOSTS) or on (any public https host).",
        _choice(("off", "allowlist", "on")),
    ),
    Setting(
        "UAUTH_CIMD_HOSTS",
        [],
        "Hosts whose client ID metadata documents are accepted under UAUTH_CIMD = allowlist.",
        _str_list,
    ),
    Setting(
        "UAUTH_DEFAULT_SUBJECT_TYPE",
        "pairwise",
        "Subject type of new clients: pairwise (a different sub per sector, OIDC Core 8.1) "
        "or public (the same sub everywhere).",
        _subject_type,
    ),
    Setting(
        "UAUTH_TRUSTED_PROXIES",
        0,
        "Number of reverse proxies in front of uauth whose X-Forwarded-For/-Proto/-Host and "
        "X-Request-ID headers are trusted (0: none).",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_MAX_BODY_BYTES",
        65536,
        "Largest request body uauth's endpoints read (larger: 413 invalid_request).",
        _positive_int,
    ),
    Setting(
        "UAUTH_MAX_PARAM_LENGTH",
        8192,
        "Longest value, in characters, of any one request parameter (longer: invalid_request).",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE",
        True,
        "Throttle failed logins (per account and per IP address) and failed client "
        "authentication (per client and IP address, and per IP address).",
        _boolean,
    ),
    Setting(
        "UAUTH_THROTTLE_WINDOW",
        900,
        "Seconds over which failures are counted, from the first one; also the longest a "
        "lock lasts.",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE_FREE_FAILURES",
        5,
        "Failures per account (or client) in a window before each further attempt must wait.",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE_LOCK_FAILURES",
        20,
        "Failures per account (or client) in a window that lock it until the window ends.",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE_IP_FREE_FAILURES",
        20,
        "Failures from one IP address in a window before each further attempt must wait.",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE_IP_LOCK_FAILURES",
        100,
        "Failures from one IP address in a window that lock it until the window ends.",
        _positive_int,
    ),
    Setting(
        "UAUTH_THROTTLE_MAX_DELAY",
        60,
        "Longest wait in seconds between attempts before a lock (it doubles from 1 s).",
        _positive_int,
    ),
    Setting(
        "UAUTH_METRICS",
        False,
        "Serve Prometheus metrics at /metrics.",
        _boolean,
    ),
    Setting(
        "UAUTH_METRICS_TOKEN",
        "",
        "If set, /metrics requires 'Authorization: Bearer <this token>'.",
        lambda name, value, _: "" if value is None else str(value),
    ),
    Setting(
        "UAUTH_LOG_FORMAT",
        "json",
        "Log lines as JSON objects (json) or plain text (text); set up by uauth serve and wsgi.py.",
        _choice(_LOG_FORMATS),
    ),
    Setting(
        "UAUTH_SMTP_URL",
        "",
        "Outgoing mail server: smtp://host:25, smtp://user:pass@host:587?starttls=true or "
        "smtps://host:465 (empty: no mail; password reset, verification and invitation mails "
        "are off).",
        _smtp_url,
    ),
    Setting(
        "UAUTH_SMTP_PASSWORD",
        "",
        "SMTP password, when it is not in UAUTH_SMTP_URL (keep it in the environment).",
        lambda name, value, _: "" if value is None else str(value),
    ),
    Setting(
        "UAUTH_MAIL_FROM",
        "",
        "Sender of uauth's mails, e.g. 'Example ID <id@example.com>' (required with "
        "UAUTH_SMTP_URL).",
        _mail_from,
    ),
    Setting(
        "UAUTH_MAIL_TIMEOUT",
        10,
        "Seconds to wait for the mail server, per attempt.",
        _positive_int,
    ),
    Setting(
        "UAUTH_MAIL_RETRIES",
        2,
        "Extra attempts (with backoff) at a mail the server could not take.",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_RESET_TTL",
        1800,
        "Seconds a password reset link stays usable (it works once).",
        _positive_int,
    ),
    Setting(
        "UAUTH_VERIFY_TTL",
        2 * 86400,
        "Seconds an email verification link (and an open sign-up waiting for it) stays usable.",
        _positive_int,
    ),
    Setting(
        "UAUTH_INVITE_TTL",
        7 * 86400,
        "Seconds an invitation stays usable, unless it names its own expiry.",
        _positive_int,
    ),
    Setting(
        "UAUTH_MAIL_LIMIT",
        3,
        "Mails (reset, verification, sign-up) one address or account gets per hour at most; "
        "an IP address may ask for ten times as many.",
        _positive_int,
    ),
    Setting(
        "UAUTH_SIGNUP",
        "off",
        "Who may create an account: off (admins only), invite (with an invitation) or open "
        "(anyone, after verifying their email address).",
        _choice(SIGNUP_MODES),
    ),
    Setting(
        "UAUTH_SIGNUP_DOMAINS",
        [],
        "With UAUTH_SIGNUP=open: email domains allowed to sign up (empty: any).",
        _domains,
    ),
    Setting(
        "UAUTH_AUDIT_RETENTION",
        30 * 86400,
        "Seconds audit events are kept in storage for the admin console's audit view "
        "(0: not kept; the audit log lines are unaffected).",
        _non_negative_int,
    ),
    Setting(
        "UAUTH_REAUTH_TTL",
        300,
        "Seconds an admin's re-entered password counts for dangerous console actions "
        "(removing an app, resetting second factors).",
        _positive_int,
    ),
    Setting(
        "UAUTH_LOG_LEVEL",
        "INFO",
        "Lowest level logged: DEBUG, INFO, WARNING or ERROR (INFO logs one line per request).",
        _choice(_LOG_LEVELS),
    ),
)

DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def apply_defaults(config: MutableMapping[str, Any]) -> None:
    """Fill in every missing ``UAUTH_*`` key with its default."""
    for name, default in DEFAULTS.items():
        config.setdefault(name, default.copy() if isinstance(default, (list, dict)) else default)


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``UAUTH_*`` environment variables, JSON-decoded where they parse (like Flask's loader)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("UAUTH_") or name in ENV_ONLY:
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


#: Environment variables read by the CLI and test harness, not app settings.
ENV_ONLY = frozenset({"UAUTH_INSTANCE", "UAUTH_REQUIRE_REDIS", "UAUTH_REQUIRE_REDIS_CLUSTER",
                      "UAUTH_REQUIRE_POSTGRES", "UAUTH_REQUIRE_BROWSER",
                      "UAUTH_BENCH_REFERENCE", "UAUTH_BENCH_ANCHOR", "UAUTH_FUZZ_EXAMPLES"})


def validate(config: MutableMapping[str, Any], *, instance_path: str) -> None:
    """Normalise and check every ``UAUTH_*`` key in place.

    :raises ConfigError: naming the first bad key and how to fix it.
    """
    unknown = sorted(k for k in config if k.startswith("UAUTH_") and k not in _BY_NAME)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(_BY_NAME), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; see `uauth config-doc`"
        raise ConfigError(f"{unknown[0]} is not a uauth setting{hint}")
    config["UAUTH_STORAGE"] = str(config["UAUTH_STORAGE"]).replace("{instance}", instance_path)
    for name, setting in _BY_NAME.items():
        if setting.validate is not None:
            config[name] = setting.validate(name, config[name], config)


def markdown_table() -> str:
    """The configuration table of docs/configuration.md, so docs never drift from the code."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        default = setting.default
        shown = " ".join(default) if isinstance(default, list) and default else json.dumps(default)
        rows.append(f"| `{setting.name}` | `{shown}` | {setting.doc} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Settings:
    """The validated ``UAUTH_*`` values, typed and frozen: built once per app in ``init_app``.

    One field per entry of :data:`SETTINGS`, named after the key without ``UAUTH_`` in lower
    case (``UAUTH_CODE_TTL`` is :attr:`code_ttl`); see :data:`SETTINGS` for what each means.
    """

    issuer: str
    storage: str
    redis_prefix: str
    url_prefix: str
    code_ttl: int
    access_token_ttl: int
    id_token_ttl: int
    refresh_token_ttl: int
    refresh_token_idle_ttl: int
    refresh_reuse_grace: int
    require_pkce: bool
    require_par: bool
    par_ttl: int
    device_code_ttl: int
    device_poll_interval: int
    allow_plain_pkce: bool
    signing_alg: str
    access_token_alg: str
    access_token_format: str
    signing_algs: tuple[str, ...]
    key_rotation_days: int
    key_prepublish: int
    client_cache_ttl: int
    key_check_interval: int
    session_ttl: int
    session_idle_ttl: int
    backchannel_timeout: int
    fetch_allowed_hosts: tuple[str, ...]
    backchannel_retries: int
    consent_ttl: int
    scopes: tuple[str, ...]
    discovery_max_age: int
    login_view: str
    attributes: tuple[Attribute, ...]
    required_attributes: tuple[str, ...]
    mfa: str
    webauthn_rp_id: str
    custom_scopes: Mapping[str, Mapping[str, Any]]
    resources: Mapping[str, Mapping[str, Any]]
    registration: str
    registration_scopes: tuple[str, ...]
    registration_rate: int
    registration_unused_ttl: int
    cimd: str
    cimd_hosts: tuple[str, ...]
    default_subject_type: str
    trusted_proxies: int
    max_body_bytes: int
    max_param_length: int
    throttle: bool
    throttle_window: int
    throttle_free_failures: int
    throttle_lock_failures: int
    throttle_ip_free_failures: int
    throttle_ip_lock_failures: int
    throttle_max_delay: int
    metrics: bool
    metrics_token: str
    smtp_url: str
    smtp_password: str
    mail_from: str
    mail_timeout: int
    mail_retries: int
    reset_ttl: int
    verify_ttl: int
    invite_ttl: int
    mail_limit: int
    signup: str
    signup_domains: tuple[str, ...]
    audit_retention: int
    reauth_ttl: int
    log_format: str
    log_level: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """From a config that :func:`validate` has checked (lists become tuples)."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = config[field_key(item.name)]
            values[item.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    @cached_property
    def known_scopes(self) -> tuple[str, ...]:
        """``UAUTH_SCOPES``, the operator's custom scopes and the scopes of ``UAUTH_RESOURCES``:
        every scope a client may ask for (worked out once: every token request checks them)."""
        extra = [*self.custom_scopes,
                 *(s for spec in self.resources.values() for s in spec["scopes"])]
        return (*self.scopes, *(s for s in dict.fromkeys(extra) if s not in self.scopes))

    @cached_property
    def known_scope_set(self) -> frozenset[str]:
        """:attr:`known_scopes`, to look scopes up in."""
        return frozenset(self.known_scopes)


def field_key(name: str) -> str:
    """The config key of a :class:`Settings` field: ``code_ttl`` -> ``UAUTH_CODE_TTL``."""
    return "UAUTH_" + name.upper()
