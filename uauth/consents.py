"""Remembered consent, and the apps a person has let in (for the account page).

Consent is kept per user, client and scope set for ``UAUTH_CONSENT_TTL`` seconds. Every grant
(one authorization, the family its refresh tokens belong to) is also remembered per user and
client, so revoking an app from ``/account`` can revoke exactly the tokens it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from .storage import Store

if TYPE_CHECKING:
    from .extension import State

CONSENT = "consent"
#: ``user:client -> {"grants": {grant_id: live_until}, "last_authorized": time}``
APP_GRANTS = "app_grants"
#: ``user -> {"clients": [...]}``: the apps listed on the account page.
USER_APPS = "user_apps"


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
    _list_app(store, user_id, client_id)


def forget_consent(store: Store, user_id: str, client_id: str) -> None:
    store.delete(CONSENT, _key(user_id, client_id))


def grant_lifetime(config: dict[str, Any], *, offline: bool) -> int:
    """How long any token of a new grant can live: its code, then its access tokens, or, for a
    grant with refresh tokens, the whole refresh family and a last access token."""
    lives = int(config["UAUTH_CODE_TTL"]) + int(config["UAUTH_ACCESS_TOKEN_TTL"])
    return lives + int(config["UAUTH_REFRESH_TOKEN_TTL"]) if offline else lives


def remember_grant(store: Store, user_id: str, client_id: str, grant_id: str, *, lives: int,
                   now: int) -> None:
    """Note that ``grant_id`` was issued to this client for this user and may have live tokens
    for ``lives`` seconds; grants past that are dropped, so the record stays small."""
    key = _key(user_id, client_id)
    record = store.find(APP_GRANTS, key)
    grants = {gid: until for gid, until in (record or {"grants": {}})["grants"].items()
              if until > now}
    grants[grant_id] = now + lives
    store.save(APP_GRANTS, key, {"grants": grants, "last_authorized": now},
               ttl=max(grants.values()) - now)
    if record is None:
        _list_app(store, user_id, client_id)


def _list_app(store: Store, user_id: str, client_id: str) -> None:
    record = store.find(USER_APPS, user_id) or {"clients": []}
    if client_id not in record["clients"]:
        store.save(USER_APPS, user_id, {"clients": sorted({*record["clients"], client_id})},
                   ttl=None)


@dataclass(frozen=True)
class App:
    """An app with access to a person's account, as the account page shows it."""

    client_id: str
    scopes: tuple[str, ...]
    granted_at: int | None
    last_authorized: int | None
    grant_ids: tuple[str, ...]


def apps_of(store: Store, user_id: str) -> list[App]:
    """Apps holding consent or live grants for this user, most recently used first."""
    listed = store.find(USER_APPS, user_id) or {"clients": []}
    apps = []
    for client_id in listed["clients"]:
        consent = store.find(CONSENT, _key(user_id, client_id))
        grants = store.find(APP_GRANTS, _key(user_id, client_id))
        if consent is None and grants is None:
            continue
        apps.append(App(
            client_id=client_id,
            scopes=tuple(consent["scopes"]) if consent else (),
            granted_at=consent["granted_at"] if consent else None,
            last_authorized=grants["last_authorized"] if grants else None,
            grant_ids=tuple(grants["grants"]) if grants else (),
        ))
    return sorted(apps, key=lambda a: -(a.last_authorized or a.granted_at or 0))


def revoke_app(state: State, user_id: str, client_id: str) -> int:
    """Withdraw consent and revoke every grant the client holds for this user (its refresh
    tokens are deleted and its access tokens denied). Returns the number of grants revoked."""
    from .tokens import revoke_grant

    store = state.store
    key = _key(user_id, client_id)
    grants = (store.find(APP_GRANTS, key) or {"grants": {}})["grants"]
    for grant_id in grants:
        revoke_grant(state, grant_id)
    store.delete(APP_GRANTS, key)
    forget_consent(store, user_id, client_id)
    listed = store.find(USER_APPS, user_id) or {"clients": []}
    remaining = [c for c in listed["clients"] if c != client_id]
    if remaining:
        store.save(USER_APPS, user_id, {"clients": remaining}, ttl=None)
    else:
        store.delete(USER_APPS, user_id)
    return len(grants)
