"""Remembered consent, and the apps a person has let in (for the account page).

Consent is kept per user, client and scope set for ``UAUTH_CONSENT_TTL`` seconds. Every grant
(one authorization, the family its refresh tokens belong to) is also noted per user and client for
as long as its tokens can live, so revoking an app from ``/account`` revokes exactly the tokens it
holds. Both live in one storage group per user, so the account page lists them in one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from uauth.core.records import APP_GRANT
from uauth.core.records import CONSENT
from uauth.storage import Record
from uauth.storage import Store

from .audit import CONSENT_REVOKED
from .audit import audit
from .tokens import revoke_grant

if TYPE_CHECKING:
    from uauth.core.settings import Settings
    from uauth.core.state import State



def _key(user_id: str, client_id: str) -> str:
    return f"{user_id}:{client_id}"


def apps_group(user_id: str) -> str:
    """The storage group (:meth:`Store.grant_records`) of a user's consents and app grants:
    listing them is one query, and no record is ever read, changed and written back."""
    return f"apps-of:{user_id}"


def has_consent(store: Store, user_id: str, client_id: str, scopes: Iterable[str]) -> bool:
    """True when the user already allowed this client every one of ``scopes``."""
    return covers(consented_scopes(store, user_id, client_id), scopes)


def consented_scopes(store: Store, user_id: str, client_id: str) -> frozenset[str] | None:
    """What the user allowed this client, or None when they never did (or it expired)."""
    record = store.find(CONSENT, _key(user_id, client_id))
    return None if record is None else frozenset(record["scopes"])


def covers(consented: frozenset[str] | None, scopes: Iterable[str]) -> bool:
    """Whether consent given (:func:`consented_scopes`) covers every one of ``scopes``."""
    return consented is not None and set(scopes) <= consented


def expect_consent(store: Store, user_id: str, client_id: str) -> None:
    """Read the user's consent to this client with the next read of the caller's batch
    (:meth:`~uauth.storage.base.Store.prefetch`)."""
    store.prefetch(CONSENT, _key(user_id, client_id))


def remember_consent(store: Store, user_id: str, client_id: str, scopes: Iterable[str],
                     *, ttl: int, now: int, known: Iterable[str] | None = None) -> None:
    """Add ``scopes`` to what the user allowed this client (never narrows earlier consent);
    ``known``: what the request already read of it (:func:`consented_scopes`), else read."""
    if known is None:
        known = (store.find(CONSENT, _key(user_id, client_id)) or {"scopes": []})["scopes"]
    merged = sorted(set(known) | set(scopes))
    store.save(CONSENT, _key(user_id, client_id),
               {"user_id": user_id, "client_id": client_id, "scopes": merged, "granted_at": now},
               ttl=ttl, grant_id=apps_group(user_id))


def forget_consent(store: Store, user_id: str, client_id: str) -> None:
    store.delete(CONSENT, _key(user_id, client_id))


def grant_lifetime(settings: Settings, *, offline: bool) -> int:
    """How long any token of a new grant can live: its code, then its access tokens, or, for a
    grant with refresh tokens, the whole refresh family and a last access token."""
    lives = int(settings.code_ttl) + int(settings.access_token_ttl)
    return lives + int(settings.refresh_token_ttl) if offline else lives


def note_key(user_id: str, client_id: str, grant_id: str) -> str:
    """The key of a grant's note, unless it was saved under one of its own (``key``)."""
    return f"{_key(user_id, client_id)}:{grant_id}"


def remember_grant(store: Store, user_id: str, client_id: str, grant_id: str, *, lives: int,
                   now: int, sid: str | None = None, revoke_at_logout: bool = False,
                   keep: int | None = None, offline: bool = True,
                   key: str | None = None) -> None:
    """Note that ``grant_id`` was issued to this client for this user and may have live tokens
    for ``lives`` seconds (the note expires with them).

    The same note serves the login session it was issued in (:mod:`uauth.core.sessions`): ``sid``
    names it, so logout finds the clients to notify and the grants to revoke
    (``revoke_at_logout``: every grant but ``offline_access`` ones) with one write per
    authorization, not two. ``keep`` (at least ``lives``) is how long the note must stay for
    that: as long as the session may last. ``offline``: the grant has refresh tokens
    (:mod:`uauth.core.grantlimits` caps those per client); ``key``: a key of the caller's
    instead of :func:`note_key` (a family's holds when it started, and sorts by it).
    """
    store.save(APP_GRANT, key or note_key(user_id, client_id, grant_id),
               {"client_id": client_id, "grant_id": grant_id, "issued_at": now, "sid": sid,
                "revoke_at_logout": revoke_at_logout, "tokens_until": now + lives,
                "offline": offline},
               ttl=max(lives, keep or 0), grant_id=apps_group(user_id))


@dataclass(frozen=True)
class App:
    """An app with access to a person's account, as the account page shows it."""

    client_id: str
    scopes: tuple[str, ...]
    granted_at: int | None
    last_authorized: int | None
    grant_ids: tuple[str, ...]


def expect_apps(store: Store, user_id: str) -> None:
    """:func:`apps_of` this user follows in the caller's batch: the listing rides the batch's
    next read (:meth:`~uauth.storage.base.Store.prefetch_grant`)."""
    store.prefetch_grant(apps_group(user_id))


def apps_of(store: Store, user_id: str, now: int) -> list[App]:
    """Apps holding consent or grants that may still have tokens, most recently used first."""
    consents: dict[str, Record] = {}
    grants: dict[str, list[Record]] = {}
    for kind, _, record in store.grant_records(apps_group(user_id)):
        if kind == CONSENT:
            consents[record["client_id"]] = record
        elif kind == APP_GRANT and record.get("tokens_until", now + 1) > now:
            grants.setdefault(record["client_id"], []).append(record)
    apps = []
    for client_id in {*consents, *grants}:
        consent, issued = consents.get(client_id), grants.get(client_id, [])
        apps.append(App(
            client_id=client_id,
            scopes=tuple(consent["scopes"]) if consent else (),
            granted_at=consent["granted_at"] if consent else None,
            last_authorized=max((g["issued_at"] for g in issued), default=None),
            grant_ids=tuple(g["grant_id"] for g in issued),
        ))
    return sorted(apps, key=lambda a: -(a.last_authorized or a.granted_at or 0))


def revoke_app(state: State, user_id: str, client_id: str) -> int:
    """Withdraw consent and revoke every grant the client holds for this user (its refresh
    tokens are deleted and its access tokens denied). Returns the number of grants revoked."""
    revoked = 0
    for kind, key, record in state.store.grant_records(apps_group(user_id)):
        if kind == APP_GRANT and record["client_id"] == client_id:
            revoke_grant(state, record["grant_id"])
            state.store.delete(APP_GRANT, key)
            revoked += 1
    forget_consent(state.store, user_id, client_id)
    audit(CONSENT_REVOKED, client_id=client_id, user_id=user_id, grants=revoked)
    return revoked
