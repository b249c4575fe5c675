"""Scopes to claims (OIDC Core §5.4), and the subject a client sees for a user."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .models import Client
from .models import User

#: Standard claims released by each standard scope (OIDC Core §5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname",
                "preferred_username", "profile", "picture", "website", "gender", "birthdate",
                "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}

#: Plain words for the consent page.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Sign you in and know who you are",
    "profile": "Your name, username, picture and other profile details",
    "email": "Your email address",
    "address": "Your postal address",
    "phone": "Your phone number",
    "offline_access": "Stay connected when you are not using it (keeps access until you revoke it)",
}


def claims_supported() -> list[str]:
    names = {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
             "at_hash", "c_hash", "sid"}
    for claims in SCOPE_CLAIMS.values():
        names.update(claims)
    return sorted(names)


def subject(user: User, client: Client | None = None) -> str:
    """The ``sub`` this client sees for this user."""
    return user.id


def standard_claims(user: User) -> dict[str, Any]:
    """Every claim the user's profile can answer, with derived defaults."""
    claims = {k: v for k, v in user.profile.items() if v not in (None, "")}
    claims.setdefault("preferred_username", user.username)
    if user.updated_at:
        claims.setdefault("updated_at", user.updated_at)
    if "email" in claims:
        claims["email_verified"] = bool(claims.get("email_verified", False))
    if "phone_number" in claims:
        claims["phone_number_verified"] = bool(claims.get("phone_number_verified", False))
    return claims


def claims_for_scopes(user: User, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims the granted scopes release (``sub`` not included)."""
    available = standard_claims(user)
    released: dict[str, Any] = {}
    for scope in scopes:
        for name in SCOPE_CLAIMS.get(scope, ()):
            if name in available:
                released[name] = available[name]
    return released


#: The scope that releases each standard claim: consent for a claim asked for by name (the
#: ``claims`` parameter, OIDC Core §5.5) is consent for its scope.
CLAIM_SCOPES: dict[str, str] = {claim: scope for scope, names in SCOPE_CLAIMS.items()
                                for claim in names}


def claims_by_name(user: User, names: Iterable[str]) -> dict[str, Any]:
    """The named claims the user's profile can answer (absent ones are simply left out)."""
    available = standard_claims(user)
    return {name: available[name] for name in names if name in available}
