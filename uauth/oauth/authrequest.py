"""The OpenID Connect parameters of an authorization request (OIDC Core §3.1.2.1, §5.5, §6).

Parsed once per request, after Authlib has validated the client and its redirect URI, so a bad
value is an OAuth error redirected to the client. ``display``, ``ui_locales``,
``claims_locales`` and ``acr_values`` are accepted and have no effect (one language, one way to
log in). Request objects (``request``) and pushed requests (PAR's ``request_uri``) have been
replaced by their parameters before this runs (:mod:`uauth.web.request_objects`,
:mod:`uauth.oauth.par`); any other ``request_uri`` is refused with
``request_uri_not_supported`` rather than ignored: ignoring one would silently drop the
parameters it carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import RequestNotSupportedError
from authlib.oidc.core.errors import RequestURINotSupportedError

from uauth.core import jsondepth
from uauth.core.claims import claim_scopes
from uauth.core.models import Client
from uauth.core.state import State
from uauth.core.tokens import ID_TOKEN_TYPES
from uauth.core.tokens import InvalidToken
from uauth.core.tokens import decode_signed

#: Longest ``claims`` parameter worth parsing; real ones are a few hundred bytes.
MAX_CLAIMS_LENGTH = 8192
#: A login_hint longer than a username is cut, never an error.
MAX_LOGIN_HINT = 150
#: Where the ``claims`` parameter can ask for claims (OIDC Core §5.5).
CLAIM_TARGETS = ("userinfo", "id_token")


@dataclass(frozen=True)
class RequestedClaims:
    """The ``claims`` parameter, reduced to claims this client may be given.

    A claim survives only when the client may request the scope that releases it, so consent
    for those scopes (:attr:`scopes`) covers it; anything else is dropped, which §5.5 allows.
    """

    userinfo: tuple[str, ...] = ()
    id_token: tuple[str, ...] = ()
    essential: frozenset[str] = frozenset()
    #: A ``sub`` value the request insists on (§5.5.1); treated like an id_token_hint.
    sub: str | None = None

    #: The scopes that release the claims asked for (consent for them covers the claims).
    scopes: frozenset[str] = frozenset()

    def to_record(self) -> dict[str, list[str]] | None:
        """What a code or token carries onward: claim names per target, or None."""
        if not (self.userinfo or self.id_token):
            return None
        return {"userinfo": list(self.userinfo), "id_token": list(self.id_token)}


@dataclass(frozen=True)
class AuthParams:
    """The parameters that steer the interaction, validated."""

    prompts: frozenset[str] = frozenset()
    max_age: int | None = None
    #: The ``sub`` the request names, by id_token_hint or a requested ``sub`` value.
    expected_sub: str | None = None
    claims: RequestedClaims = RequestedClaims()


def parse_auth_params(state: State, params: Any, client: Client, redirect_uri: str
                      ) -> AuthParams:
    """Validate the OpenID Connect parameters of ``params`` for ``client``.

    :raises OAuth2Error: with ``redirect_uri`` set, for the view to redirect.
    """
    try:
        return _parse(state, params, client)
    except OAuth2Error as err:
        err.redirect_uri = redirect_uri
        raise


def _parse(state: State, params: Any, client: Client) -> AuthParams:
    if params.get("request") is not None:
        raise RequestNotSupportedError(
            "Request objects are not supported; send the parameters in the query.")
    if params.get("request_uri") is not None:
        raise RequestURINotSupportedError(
            "request_uri is not supported; send the parameters in the query.")
    prompts = frozenset((params.get("prompt") or "").split())
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other prompt values.")
    allowed = client.allowed_scopes & state.settings.known_scope_set
    claims = parse_claims(params.get("claims"), allowed,
                          claim_scopes(state.settings.custom_scopes))
    hinted = hint_subject(state, params.get("id_token_hint"), client)
    if hinted and claims.sub and hinted != claims.sub:
        raise InvalidRequestError("The id_token_hint and the requested sub disagree.")
    return AuthParams(prompts=prompts, max_age=parse_max_age(params.get("max_age")),
                      expected_sub=hinted or claims.sub, claims=claims)


def login_hint(params: Any) -> str | None:
    """What to pre-fill as the username (OIDC Core §3.1.2.1); a hint, never trusted."""
    return (params.get("login_hint") or "").strip()[:MAX_LOGIN_HINT] or None


def parse_max_age(raw: str | None) -> int | None:
    """Seconds since the last authentication after which the user must log in again."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer.")
    return int(raw)


def hint_subject(state: State, raw: str | None, client: Client) -> str | None:
    """``sub`` of an ID token we issued to this client; expired ones count (OIDC Core §3.1.2.1)."""
    if not raw:
        return None
    try:
        claims = decode_signed(state, raw, typ=ID_TOKEN_TYPES, audience=client.client_id,
                               verify_exp=False)
    except InvalidToken:
        raise InvalidRequestError(
            "The id_token_hint is not an ID token this provider issued to this client.") from None
    return str(claims["sub"])


def parse_claims(raw: str | None, allowed_scopes: set[str], scope_of: Mapping[str, str]
                 ) -> RequestedClaims:
    """The ``claims`` parameter (OIDC Core §5.5): a JSON object with ``userinfo`` and
    ``id_token`` members, each mapping claim names to null or ``{essential, value, values}``."""
    if not raw:
        return RequestedClaims()
    if len(raw) > MAX_CLAIMS_LENGTH:
        raise InvalidRequestError("The claims parameter is too long.")
    try:
        data = jsondepth.loads(raw)
    except ValueError:  # also TooDeep: nesting is bounded before parsing
        raise InvalidRequestError("The claims parameter is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The claims parameter must be a JSON object.")
    names: dict[str, list[str]] = {target: [] for target in CLAIM_TARGETS}
    essential: set[str] = set()
    subs: set[str] = set()
    for target in CLAIM_TARGETS:
        members = data.get(target)
        if members is None:
            continue
        if not isinstance(members, dict):
            raise InvalidRequestError("Each member of the claims parameter must be an object.")
        for name, spec in members.items():
            if spec is not None and not isinstance(spec, dict):
                raise InvalidRequestError("Each requested claim must be null or an object.")
            spec = spec or {}
            if name == "sub" and isinstance(spec.get("value"), str):
                subs.add(spec["value"])
            if scope_of.get(name) not in allowed_scopes or name in names[target]:
                continue
            names[target].append(name)
            if spec.get("essential") is True:
                essential.add(name)
    if len(subs) > 1:
        raise InvalidRequestError("The claims parameter asks for two different sub values.")
    return RequestedClaims(userinfo=tuple(names["userinfo"]), id_token=tuple(names["id_token"]),
                           essential=frozenset(essential), sub=next(iter(subs), None),
                           scopes=frozenset(scope_of[name] for target in CLAIM_TARGETS
                                            for name in names[target]))
