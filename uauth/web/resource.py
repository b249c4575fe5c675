"""Protecting APIs with the access tokens uauth issues (RFC 6750 bearer use, RFC 9068 JWTs).

One decorator, two sources of truth:

- in the app that embeds uauth, ``uauth.require_token(scope=...)`` checks a token against the
  provider's own keys and revocation deny list (an opaque token against its stored claims) and
  loads its user from the user directory;
- a separate resource server that only knows the issuer URL uses
  ``ResourceProtector.for_issuer(url)``: discovery once, the JWKS cached by PyJWT's
  ``PyJWKClient`` and fetched again when a token names a ``kid`` it has not seen (at most once
  per cool-down, so forged ``kid`` values cannot make it hammer the provider).

Either way the view finds the validated token in :data:`current_token`; a refused request gets
401 (no token, or ``invalid_token``) or 403 (``insufficient_scope``) with the RFC 6750 §3
``WWW-Authenticate`` challenge, and never reaches the view.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from typing import cast
from urllib.error import URLError

import jwt
from flask import Response
from flask import current_app
from flask import g
from werkzeug.local import LocalProxy

from uauth.core.claims import expect_token_user
from uauth.core.claims import token_user
from uauth.core.opaque import looks_opaque
from uauth.core.tokens import InvalidToken
from uauth.core.tokens import decode_access_token
from uauth.core.tokens import validate_access_token
from uauth.core.verified import VerifiedTokens
from uauth.storage import StorageError
from uauth.web.state import current_request
from uauth.web.state import get_state

F = TypeVar("F", bound=Callable[..., Any])

_G_KEY = "_uauth_access_token"


@dataclass(frozen=True)
class AccessToken:
    """A validated access token: its claims and, where known, the user it speaks for.

    ``user`` is None for a client's own token (client credentials: ``sub`` is the client) and
    always for a separate resource server, which has no user directory; use ``sub`` there.
    """

    claims: Mapping[str, Any]
    user: Any = None

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())


def _current_token() -> AccessToken:
    token: AccessToken | None = g.get(_G_KEY)
    if token is None:
        raise RuntimeError("current_token is only set inside a view protected by require_token")
    return token


#: The token of the current request, inside a view protected by ``require_token``.
current_token: AccessToken = cast(AccessToken, LocalProxy(_current_token))


class BearerRequestError(Exception):
    """The request carries a token the wrong way; answered with a challenge, never the view."""

    def __init__(self, status: int, error: str | None = None, description: str | None = None
                 ) -> None:
        super().__init__(description or "")
        self.status = status
        self.error = error
        self.description = description


class KeysUnavailable(Exception):
    """The issuer's discovery document or JWKS cannot be fetched right now (answered 503)."""


def bearer_challenge(status: int, error: str | None = None, description: str | None = None,
                     *, scope: str | None = None, realm: str = "uauth",
                     resource_metadata: str | None = None) -> Response:
    """RFC 6750 §3: a challenge, with an error code only when a token was presented; with
    ``resource_metadata`` the RFC 9728 §5.1 pointer to the resource's metadata."""
    params = [f'realm="{realm}"']
    if resource_metadata:
        params.append(f'resource_metadata="{resource_metadata}"')
    body: dict[str, str] = {}
    if error:
        params.append(f'error="{error}"')
        body["error"] = error
        if description:
            params.append(f'error_description="{description}"')
            body["error_description"] = description
    if scope:
        params.append(f'scope="{scope}"')
    return Response(json.dumps(body) if body else "", status=status, mimetype="application/json",
                    headers={"WWW-Authenticate": "Bearer " + ", ".join(params),
                             "Cache-Control": "no-store"})


def bearer_token() -> str | None:
    """The token from ``Authorization: Bearer`` or, for POST, a form body (RFC 6750 §2.1-2.2).

    :raises BearerRequestError: a token in two places, or another authorization scheme.
    """
    req = current_request()
    header = req.headers.get("Authorization")
    in_body = None
    if req.method == "POST" and req.mimetype == "application/x-www-form-urlencoded":
        in_body = req.form.get("access_token")
    if header is not None and in_body is not None:
        raise BearerRequestError(400, "invalid_request", "Send the token in one place only.")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BearerRequestError(401)  # §3.1: no error code for an unsupported method
        return value.strip()
    return in_body


def local_access_token(token: str, audience: str | None = None) -> AccessToken:
    """Validate against the current app's provider: its keys, deny list and user directory.

    :param audience: the ``aud`` to require (a ``resource`` the token was asked for, RFC 8707);
        default the issuer, which tokens carry when no resource was named.
    """
    state = get_state()
    with state.store.batch():  # the token's user is read with the deny list: one round trip
        claims = validate_access_token(state, token, audience=audience or state.issuer,
                                       verified=lambda found: expect_token_user(state, found))
        return AccessToken(claims, token_user(state, claims))


def required_scopes(scope: str | Iterable[str] | None) -> frozenset[str]:
    if scope is None:
        return frozenset()
    return frozenset(scope.split() if isinstance(scope, str) else scope)


class ResourceProtector:
    """Guards views with bearer access tokens.

    :param validate: turns a raw token into an :class:`AccessToken` or raises
        :class:`~uauth.core.tokens.InvalidToken`; :class:`KeysUnavailable` and storage errors are
        answered 503, so an outage never reads as a bad token.
    :param realm: the ``realm`` of the ``WWW-Authenticate`` challenges.
    """

    def __init__(self, validate: Callable[[str], AccessToken], *, realm: str = "uauth",
                 resource_metadata: str | None = None) -> None:
        self.validate = validate
        self.realm = realm
        #: URL of the RFC 9728 metadata named in every challenge (uauth.web.protected_resource).
        self.resource_metadata = resource_metadata

    @classmethod
    def for_issuer(cls, issuer: str, *, audience: str | None = None, jwks_uri: str | None = None,
                   cache_seconds: float = 300, cooldown: float = 30, timeout: float = 5,
                   leeway: float = 0, realm: str = "api", resource_metadata: str | None = None
                   ) -> ResourceProtector:
        """A protector for a resource server that only knows the issuer (see
        :class:`TokenValidator` for the parameters; ``resource_metadata``: the RFC 9728
        metadata URL its challenges name)."""
        validator = TokenValidator(issuer, audience=audience, jwks_uri=jwks_uri,
                                   cache_seconds=cache_seconds, cooldown=cooldown,
                                   timeout=timeout, leeway=leeway)
        return cls(validator.access_token, realm=realm, resource_metadata=resource_metadata)

    def authenticate(self, scope: str | Iterable[str] | None = None) -> AccessToken | Response:
        """The current request's validated token, or the challenge to answer with."""
        required = required_scopes(scope)
        try:
            raw = bearer_token()
        except BearerRequestError as exc:
            return bearer_challenge(exc.status, exc.error, exc.description, realm=self.realm,
                                    resource_metadata=self.resource_metadata)
        if not raw:
            return bearer_challenge(401, realm=self.realm,
                                    resource_metadata=self.resource_metadata)
        try:
            token = self.validate(raw)
        except InvalidToken as exc:
            return bearer_challenge(401, "invalid_token", str(exc), realm=self.realm,
                                    resource_metadata=self.resource_metadata)
        except (KeysUnavailable, StorageError):
            response = Response(json.dumps({"error": "temporarily_unavailable"}), status=503,
                                mimetype="application/json")
            response.headers.update({"Retry-After": "5", "Cache-Control": "no-store"})
            return response
        if not required <= token.scopes:
            return bearer_challenge(403, "insufficient_scope",
                                    "The token lacks a scope this resource requires.",
                                    scope=" ".join(sorted(required)), realm=self.realm,
                                    resource_metadata=self.resource_metadata)
        return token

    def require_token(self, scope: str | Iterable[str] | None = None) -> Callable[[F], F]:
        """Decorate a view: it runs only with a valid token granted every scope in ``scope``
        (space-separated, all required), found in :data:`current_token`."""

        def decorator(view: F) -> F:
            is_async = inspect.iscoroutinefunction(view)  # asked once, not on every request

            @functools.wraps(view)
            def protected(*args: Any, **kwargs: Any) -> Any:
                outcome = self.authenticate(scope)
                if isinstance(outcome, Response):
                    return outcome
                setattr(g, _G_KEY, outcome)
                if is_async:
                    return current_app.ensure_sync(view)(*args, **kwargs)
                return view(*args, **kwargs)

            return cast(F, protected)

        return decorator


@dataclass(frozen=True)
class _JwkKey:
    alg: str
    public: Any


class IssuerKeys:
    """The signing keys of a remote issuer, found through its discovery document.

    Discovery is fetched once (its ``issuer`` must equal ours exactly: OIDC Discovery §4.3,
    RFC 8414 §3.3); the JWKS is cached for ``cache_seconds`` and fetched again when an unknown
    ``kid`` appears, at most once per ``cooldown`` seconds (``PyJWKClient`` does both).
    """

    def __init__(self, issuer: str, *, jwks_uri: str | None = None, cache_seconds: float = 300,
                 cooldown: float = 30, timeout: float = 5) -> None:
        self.issuer = issuer
        self.cache_seconds = cache_seconds
        self.cooldown = cooldown
        self.timeout = timeout
        self._client: jwt.PyJWKClient | None = None
        self._jwks_uri = jwks_uri
        self._lock = threading.Lock()
        self._failed_at = float("-inf")

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                metadata = json.load(response)
        except (URLError, TimeoutError, OSError, ValueError) as exc:
            raise KeysUnavailable(f"cannot fetch {url}: {exc}") from None
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
            raise KeysUnavailable(f"{url} does not describe the issuer {self.issuer}")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise KeysUnavailable(f"{url} names no usable jwks_uri")
        return jwks_uri

    def client(self) -> jwt.PyJWKClient:
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                if time.monotonic() - self._failed_at < self.cooldown:
                    raise KeysUnavailable("the issuer's discovery document failed recently")
                try:
                    uri = self._jwks_uri or self._discover()
                except KeysUnavailable:
                    self._failed_at = time.monotonic()
                    raise
                self._client = jwt.PyJWKClient(uri, lifespan=self.cache_seconds,
                                               timeout=self.timeout,
                                               cooldown_duration=self.cooldown)
            return self._client

    def verification_key(self, kid: str) -> _JwkKey | None:
        try:
            jwk = self.client().get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(str(exc)) from None
        except jwt.PyJWKClientError:
            return None
        return _JwkKey(jwk.algorithm_name, jwk.key)


#: Why :class:`TokenValidator` refuses a token that is not a JWT (the ``error_description``).
OPAQUE_REFUSED = ("the token is not a JWT; an opaque access token can only be checked by its "
                  "issuer: use token introspection (RFC 7662)")


class TokenValidator:
    """Validates uauth access tokens anywhere, knowing only the issuer URL.

    :param issuer: the provider's issuer identifier, exactly as it publishes it.
    :param audience: the ``aud`` to require; uauth's access tokens name the issuer (default).
    :param jwks_uri: skip discovery and use this JWKS URL.
    :param cache_seconds: how long a fetched JWKS is used before it is fetched again.
    :param cooldown: least seconds between fetches caused by unknown ``kid`` values.
    :param timeout: seconds to wait for the provider.
    :param leeway: seconds of clock skew tolerated on ``exp`` and ``iat``.

    A separate resource server cannot see the provider's revocation deny list: a revoked token
    stays valid here until it expires, so keep ``UAUTH_ACCESS_TOKEN_TTL`` short for such APIs.
    Nor can it read an opaque access token (a client registered with
    ``--access-token-format opaque``): those are refused with :data:`OPAQUE_REFUSED`; check
    them with introspection (RFC 7662) instead.
    """

    def __init__(self, issuer: str, *, audience: str | None = None, jwks_uri: str | None = None,
                 cache_seconds: float = 300, cooldown: float = 30, timeout: float = 5,
                 leeway: float = 0) -> None:
        self.issuer = issuer
        self.audience = audience or issuer
        self.leeway = leeway
        self.keys = IssuerKeys(issuer, jwks_uri=jwks_uri, cache_seconds=cache_seconds,
                               cooldown=cooldown, timeout=timeout)
        self.verified = VerifiedTokens()

    def validate(self, token: str) -> dict[str, Any]:
        """The token's claims; raises :class:`~uauth.core.tokens.InvalidToken` or
        :class:`KeysUnavailable`. A token seen before skips the signature check while it
        lives and its key is still published (:mod:`uauth.core.verified`)."""
        if looks_opaque(token):
            raise InvalidToken(OPAQUE_REFUSED)
        return self.verified.verify(
            token, lambda: decode_access_token(token, keys=self.keys.verification_key,
                                               issuer=self.issuer, audience=self.audience,
                                               leeway=self.leeway),
            now=time.time(), audience=self.audience, leeway=self.leeway,
            trusted=lambda kid: self.keys.verification_key(kid) is not None)

    def access_token(self, token: str) -> AccessToken:
        return AccessToken(self.validate(token))
