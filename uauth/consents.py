"""Remembered consent: per user, client and scope set, for ``UAUTH_CONSENT_TTL`` seconds."""

from __future__ import annotations

from collections.abc import Iterable

from .storage import Store

CONSENT = "consent"


def _key(user_id: str, client_id: str) -> str:
    return f"{user_id}:{client_id}"


def has_consent(store: Store, user_id: str, client_id: str, scopes: Iterable[str]) -> bool:
    """True when the user already allowed this client every one of ``scopes``."""
    record = store.find(CONSENT, _key(user_id, client_id))
    return record is not None and set(scopes) <= set(record["scopes"])


def remember_consent(store: Store, user_id: str, client_id: str, scopes: Iterable[str],
                     *, ttl: int, now: int) -> None:
    """Add ``scopes`` to what the user allowed this client (never narrows earlier consent)."""
    record = store.find(CONSENT, _key(user_id, client_id)) or {"scopes": []}
    merged = sorted(set(record["scopes"]) | set(scopes))
    store.save(CONSENT, _key(user_id, client_id),
               {"user_id": user_id, "client_id": client_id, "scopes": merged, "granted_at": now},
               ttl=ttl)


def forget_consent(store: Store, user_id: str, client_id: str) -> None:
    store.delete(CONSENT, _key(user_id, client_id))
