"""Scopes to claims (OIDC Core §5.4), operator-defined claims, and the subject a client sees.

:func:`subject` is the one place that decides a ``sub``: ID tokens, access tokens (and through
them userinfo and introspection) and logout tokens all get it from here, so a client always sees
the same identifier for the same person. :func:`user_for_subject` maps it back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from base64 import urlsafe_b64encode
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from uauth.core.records import SETTING
from uauth.core.records import SUBJECT
from uauth.storage import StorageError
from uauth.storage import Store

from .attributes import RESERVED
from .attributes import is_present
from .consents import apps_group
from .models import Client
from .models import User
from .tokens import InvalidToken
from .users import expect_user

if TYPE_CHECKING:
    from uauth.core.state import State

#: Standard claims released by each standard scope (OIDC Core §5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname",
                "preferred_username", "profile", "picture", "website", "gender", "birthdate",
                "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    "groups": ("groups",),
}

#: Plain words for the consent page.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Sign you in and know who you are",
    "profile": "Your name, username, picture and other profile details",
    "email": "Your email address",
    "address": "Your postal address",
    "phone": "Your phone number",
    "groups": "The groups you belong to",
    "offline_access": "Stay connected when you are not using it (keeps access until you revoke it)",
}

# --- operator-defined claims (UAUTH_CUSTOM_SCOPES) ------------------------------------------

#: RFC 6749 §3.3 scope-token characters.
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")
_CLAIM = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def parse_custom_scopes(raw: Any) -> dict[str, dict[str, Any]]:
    """Validate ``UAUTH_CUSTOM_SCOPES`` into ``{scope: {"description", "claims": {claim: attr}}}``.

    :raises ValueError: naming the scope or claim at fault.
    """
    if not isinstance(raw, Mapping):
        raise ValueError("must be a mapping of scope names to {description, claims}")
    parsed: dict[str, dict[str, Any]] = {}
    for scope, spec in raw.items():
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise ValueError(f"{scope!r} is not a valid scope name")
        if scope in ("openid", "offline_access"):
            raise ValueError(f"the scope {scope!r} cannot carry claims")
        if not isinstance(spec, Mapping) or set(spec) - {"description", "claims"}:
            raise ValueError(f"scope {scope!r} must be a mapping with 'claims' and 'description'")
        claims = spec.get("claims")
        if isinstance(claims, (list, tuple)):
            mapping = {claim: claim for claim in claims}
        elif isinstance(claims, Mapping):
            mapping = dict(claims)
        else:
            raise ValueError(f"scope {scope!r} needs 'claims': a list of claim names or "
                             "a mapping of claim name to profile attribute")
        for claim, attribute in mapping.items():
            if not isinstance(claim, str) or not _CLAIM.match(claim) or claim in RESERVED:
                raise ValueError(f"scope {scope!r}: {claim!r} cannot be a custom claim name")
            if not isinstance(attribute, str) or not _CLAIM.match(attribute):
                raise ValueError(f"scope {scope!r}: {attribute!r} is not an attribute name")
        description = spec.get("description")
        parsed[scope] = {"description": str(description) if description else None,
                         "claims": mapping}
    return parsed


#: ``UAUTH_CUSTOM_SCOPES`` as validated: scope -> {"description": ..., "claims": {claim: attr}}.
CustomScopes = Mapping[str, Mapping[str, Any]]


def claims_supported(custom: CustomScopes) -> list[str]:
    names = {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
             "at_hash", "c_hash", "sid"}
    for claims in SCOPE_CLAIMS.values():
        names.update(claims)
    for spec in custom.values():
        names.update(spec["claims"])
    return sorted(names)


def describe_scope(custom_scopes: CustomScopes, scope: str) -> str:
    """What a scope lets an app see, in plain words for the consent and account pages."""
    custom = custom_scopes.get(scope)
    if custom and custom["description"]:
        return str(custom["description"])
    return SCOPE_DESCRIPTIONS.get(scope) or f"Your {scope.replace('_', ' ')} details"


def standard_claims(user: User) -> dict[str, Any]:
    """Every claim the user's profile can answer, with derived defaults.

    ``email_verified`` / ``phone_number_verified`` are true only when an operator or a
    verification step set them; changing the value clears them (:meth:`StoreUsers.update_profile`).
    """
    claims = {k: v for k, v in user.profile.items() if v not in (None, "")}
    claims.setdefault("preferred_username", user.username)
    if user.updated_at:
        claims.setdefault("updated_at", user.updated_at)
    if "email" in claims:
        claims["email_verified"] = claims.get("email_verified") is True
    if "phone_number" in claims:
        claims["phone_number_verified"] = claims.get("phone_number_verified") is True
    if user.groups:  # first-class groups (uauth.groups) win over a profile attribute
        claims["groups"] = sorted(user.groups)
    return claims


def groups_claim(user: User, scope: str) -> dict[str, Any]:
    """``{"groups": [...]}`` when the ``groups`` scope was granted: for ID tokens, access
    tokens and introspection (userinfo releases it like any scope claim)."""
    if "groups" not in scope.split():
        return {}
    groups = standard_claims(user).get("groups")
    return {"groups": groups} if groups else {}


def _mapped(user: User, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The operator-defined claims of one custom scope that the profile can answer."""
    if not spec:
        return {}
    return {claim: user.profile[attribute] for claim, attribute in spec["claims"].items()
            if is_present(user.profile, attribute)}


def claims_for_scopes(custom: CustomScopes, user: User, scopes: Iterable[str]
                      ) -> dict[str, Any]:
    """The claims the granted scopes release (``sub`` not included)."""
    available = standard_claims(user)
    released: dict[str, Any] = {}
    for scope in scopes:
        for name in SCOPE_CLAIMS.get(scope, ()):
            if name in available:
                released[name] = available[name]
        released.update(_mapped(user, custom.get(scope)))
    return released


#: The scope that releases each standard claim: consent for a claim asked for by name (the
#: ``claims`` parameter, OIDC Core §5.5) is consent for its scope.
CLAIM_SCOPES: dict[str, str] = {claim: scope for scope, names in SCOPE_CLAIMS.items()
                                for claim in names}


def claim_scopes(custom: CustomScopes) -> dict[str, str]:
    """:data:`CLAIM_SCOPES` plus the operator's claims (``UAUTH_CUSTOM_SCOPES``)."""
    merged = dict(CLAIM_SCOPES)
    for scope, spec in custom.items():
        for claim in spec["claims"]:
            merged.setdefault(claim, scope)
    return merged


def claims_by_name(custom: CustomScopes, user: User, names: Iterable[str]) -> dict[str, Any]:
    """The named claims the user's profile can answer (absent ones are simply left out)."""
    available = standard_claims(user)
    for spec in custom.values():
        available.update(_mapped(user, spec))
    return {name: available[name] for name in names if name in available}


# --- subjects (OIDC Core §8) -------------------------------------------------------------------

PAIRWISE = "pairwise"
_PAIRWISE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def pairwise_subject(salt: bytes, sector: str, local_id: str) -> str:
    """OIDC Core §8.1: a stable, non-reversible function of sector, local id and a secret salt.

    HMAC-SHA-256 keyed with the salt (rather than a hash of the concatenation) keeps the inputs
    unambiguous; 43 base64url characters, so it never looks like a local id.
    """
    digest = hmac.new(salt, f"{sector}\x00{local_id}".encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


SALT = "pairwise_salt"


def shared_salt(store: Store, legacy: Path | None = None) -> bytes:
    """The pairwise salt, in storage so every host computes the same subjects.

    Created once (an ``add`` race has one winner) and never rotated: a new salt would change
    every pairwise ``sub``. A ``pairwise_salt`` file an older uauth left in the instance folder
    is imported on first use, so the subjects it produced stay the same.
    """
    record = store.find(SETTING, SALT)
    if record is None:
        value = (legacy.read_text().strip() if legacy is not None and legacy.exists()
                 else secrets.token_urlsafe(32))
        store.add(SETTING, SALT, {"salt": value}, ttl=None)
        record = store.find(SETTING, SALT)
        if record is None:
            raise StorageError("the pairwise salt could not be stored")
    return str(record["salt"]).encode("ascii")


class SubjectIndex:
    """Pairwise subjects of one worker: computed with the shared salt, and indexed in storage
    (written once per subject) so /userinfo can find the user again.

    The mapping never changes, so each worker keeps what it has seen in a bounded memory cache:
    issuing and resolving a known subject costs no storage round trip. The salt is read on
    first use, so a worker that starts while storage is down still boots (and answers 503).
    """

    def __init__(self, store: Store, legacy_salt_file: Path | None = None, *,
                 cache_size: int = 50_000) -> None:
        self._store = store
        self._legacy = legacy_salt_file
        self._salt: bytes | None = None
        self._size = cache_size
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def salt(self) -> bytes:
        if self._salt is None:
            self._salt = shared_salt(self._store, self._legacy)
        return self._salt

    def pairwise(self, sector: str, user_id: str) -> str:
        sub = pairwise_subject(self.salt, sector, user_id)
        if self._cached(sub) != user_id:
            # In the user's group (consents.apps_group), so removing a user removes its subjects.
            self._store.add(SUBJECT, sub, {"user_id": user_id, "sector": sector}, ttl=None,
                            grant_id=apps_group(user_id))
            self._remember(sub, user_id)
        return sub

    def seen(self, sub: str) -> str | None:
        """The local id behind a pairwise ``sub`` if this worker knows it already (no read)."""
        return self._cached(sub)

    def user_id(self, sub: str) -> str | None:
        """The local id behind a pairwise ``sub`` this provider issued, else None."""
        cached = self._cached(sub)
        if cached is not None:
            return cached
        record = self._store.find(SUBJECT, sub)
        if record is None:
            return None
        self._remember(sub, str(record["user_id"]))
        return str(record["user_id"])

    def _cached(self, sub: str) -> str | None:
        with self._lock:
            return self._known.get(sub)

    def _remember(self, sub: str, user_id: str) -> None:
        with self._lock:
            if len(self._known) >= self._size:
                del self._known[next(iter(self._known))]  # oldest first: dicts keep order
            self._known[sub] = user_id


def sector_of(client: Client) -> str:
    """The sector a pairwise client's subjects are computed for (fixed at registration)."""
    return client.sector_identifier or client.client_id


def subject(subjects: SubjectIndex, user: User, client: Client | None = None) -> str:
    """The ``sub`` this client sees for this user: the local id for public clients (and when no
    client is involved), a pairwise identifier per sector otherwise."""
    if client is None or client.subject_type != PAIRWISE:
        return user.id
    return subjects.pairwise(sector_of(client), user.id)


def user_for_subject(state: State, sub: str) -> User | None:
    """The user behind a ``sub`` this provider issued (public or pairwise), else None."""
    user_id: str | None = sub
    if _PAIRWISE_SHAPE.match(sub):
        user_id = state.subjects.user_id(sub) or sub
    return state.users.get(user_id) if user_id else None


def expect_token_user(state: State, claims: Mapping[str, Any]) -> None:
    """:func:`token_user` follows: its user may be read with the next round trip. A public
    ``sub`` is the user's id; a pairwise one is, when this worker has seen it before (else its
    lookup must come first, and the user is read after it)."""
    sub = str(claims.get("sub", ""))
    if sub == claims.get("client_id") and "gid" not in claims:
        return
    user_id = state.subjects.seen(sub) if _PAIRWISE_SHAPE.match(sub) else sub
    if user_id:
        expect_user(state.users, user_id)


def token_user(state: State, claims: Mapping[str, Any]) -> Any:
    """The active user an access token of ours speaks for; None for a client's own token.

    :raises InvalidToken: the user is gone or disabled, so the token no longer speaks for them.
    """
    sub = str(claims["sub"])
    if sub == claims.get("client_id") and "gid" not in claims:
        return None  # RFC 9068 §2.2: no resource owner, ``sub`` names the client
    user = user_for_subject(state, sub)  # public or pairwise
    if user is None or not user.is_active:
        raise InvalidToken("the token's user no longer exists")
    return user
