"""Single sign-on sessions, kept in storage so every worker and host agrees on who is logged in.

A browser's (signed) cookie holds a random handle; storage keeps the :class:`LoginSession` under
the handle's digest, grouped per user (``sessions-of:<user id>``) so a user's sessions can be
listed and ended together. The session's public ``sid`` goes into ID tokens and logout tokens;
knowing it logs nobody in. The grant note every authorization writes for the account page
(:func:`uauth.core.consents.remember_grant`) names the session's ``sid``, so ending a session finds
the clients to notify and the grants to revoke: a separate record per issuance, so concurrent
requests never overwrite each other's entries, and no second write per authorization.

Lifetime: absolute (``UAUTH_SESSION_TTL`` from login) and idle (``UAUTH_SESSION_IDLE_TTL``);
``last_seen`` is written at most every :func:`touch_interval` seconds, not on every request.
Ending a session deletes it, revokes the grants issued in it without ``offline_access``
(OIDC Core §11: offline access outlives the login) and sends back-channel logout tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from uauth.core.records import APP_GRANT
from uauth.core.records import ENDED
from uauth.core.records import SESSION
from uauth.storage import Record
from uauth.storage import hash_key

from .audit import LOGOUT
from .audit import audit
from .backchannel import deliveries
from .consents import apps_group
from .models import LoginSession
from .models import User
from .tokens import evict_grant

if TYPE_CHECKING:
    from uauth.core.state import State



def user_group(user_id: str) -> str:
    return f"sessions-of:{user_id}"


def touch_interval(state: State) -> int:
    """How stale ``last_seen`` may get: a write every 5 minutes at most, finer for short idle
    lifetimes."""
    return max(1, min(300, int(state.settings.session_idle_ttl) // 10))


# --- sessions in storage ---------------------------------------------------------------------


def create(state: State, user_id: str, amr: Iterable[str], *, user_agent: str = "",
           sid: str | None = None) -> tuple[str, LoginSession]:
    """A new session and the handle for the browser's cookie (shown once, stored hashed).

    :param sid: keep this public id (a re-authentication of the same user in the same
        browser, so clients keep recognising the session); a fresh one otherwise.
    """
    handle = secrets.token_urlsafe(32)
    now = state.now()
    login = LoginSession(
        key=hash_key(handle), sid=sid or secrets.token_urlsafe(16), user_id=user_id,
        auth_time=now, expires_at=now + state.settings.session_ttl, last_seen=now,
        amr=list(amr), created_at=now, user_agent=user_agent[:200],
    )
    _save(state, login)
    return handle, login


def _save(state: State, login: LoginSession) -> None:
    state.store.save(SESSION, login.key, login.to_record(), ttl=login.ttl(state.now()),
                     grant_id=user_group(login.user_id))


def elevate(state: State, login: LoginSession, amr: list[str]) -> LoginSession:
    """Record a second factor in a session (:mod:`uauth.web.views.mfa`): the same session,
    ``sid`` and ``auth_time``, with the methods it now has."""
    login.amr = amr
    login.last_seen = state.now()
    _save(state, login)
    return login


def is_idle(state: State, login: LoginSession) -> bool:
    return state.now() - login.last_seen >= int(state.settings.session_idle_ttl)


def find(state: State, handle: str) -> LoginSession | None:
    """The live session behind a cookie handle; an idle one found here is ended properly."""
    record = state.store.find(SESSION, hash_key(handle))
    if record is None:
        return None
    login = LoginSession.from_record(record)
    if is_idle(state, login):
        end(state, login)
        return None
    if state.now() - login.last_seen >= touch_interval(state):
        login.last_seen = state.now()
        _save(state, login)
        if state.store.find(ENDED, login.key) is not None:
            state.store.delete(SESSION, login.key)  # ended while we were writing
            return None
    return login


def grants_in(state: State, login: LoginSession) -> list[Record]:
    """The grants issued in a session: the user's app grants (:mod:`uauth.core.consents`, noted
    once per authorization) that name its ``sid``, oldest first."""
    notes = [record for kind, _, record in state.store.grant_records(apps_group(login.user_id))
             if kind == APP_GRANT and record.get("sid") == login.sid]
    return sorted(notes, key=lambda note: note["issued_at"])


def clients_by_session(state: State, user_id: str) -> dict[str, list[str]]:
    """For each of a user's sessions (by ``sid``), the clients that got tokens in it, in the
    order they first did: one read of the user's group for every session at once."""
    notes = sorted((record for kind, _, record in state.store.grant_records(apps_group(user_id))
                    if kind == APP_GRANT and record.get("sid")),
                   key=lambda note: note["issued_at"])
    found: dict[str, dict[str, None]] = {}
    for note in notes:
        found.setdefault(note["sid"], {})[note["client_id"]] = None
    return {sid: list(clients) for sid, clients in found.items()}


def retire(state: State, login: LoginSession) -> None:
    state.store.save(ENDED, login.key, {"at": state.now()}, ttl=login.ttl(state.now()))
    state.store.delete(SESSION, login.key)


def end(state: State, login: LoginSession, user: User | None = None) -> None:
    """End a session: gone at once for every worker, its grants revoked, its clients told.

    The session's end and its audit event travel with the listing of its grants, and their
    revocations are held and sent together (:meth:`~uauth.storage.base.Store.batch`); the
    logout tokens are signed after, for ``user`` when the caller holds the session's user."""
    with state.store.batch():
        retire(state, login)
        audit(LOGOUT, user_id=login.user_id, session=login.sid[:8])
        notes = grants_in(state, login)
        for note in notes:
            if note.get("revoke_at_logout"):
                evict_grant(state, note["grant_id"], reason="logout")
    clients = dict.fromkeys(note["client_id"] for note in notes)
    state.backchannel.send(deliveries(state, login, clients, user))


def expect_sessions(state: State, user_id: str) -> None:
    """:func:`of_user` follows in the caller's batch: the listing rides the batch's next read
    (:meth:`~uauth.storage.base.Store.prefetch_grant`)."""
    state.store.prefetch_grant(user_group(user_id))


def of_user(state: State, user_id: str) -> list[LoginSession]:
    """A user's live sessions, most recently used first."""
    found = [LoginSession.from_record(r)
             for kind, _, r in state.store.grant_records(user_group(user_id)) if kind == SESSION]
    live = [s for s in found if not is_idle(state, s)]
    return sorted(live, key=lambda s: (s.last_seen, s.created_at), reverse=True)


def end_all(state: State, user_id: str) -> int:
    """Log a user out everywhere; returns how many sessions ended (idle ones included)."""
    found = [LoginSession.from_record(r)
             for kind, _, r in state.store.grant_records(user_group(user_id)) if kind == SESSION]
    for login in found:
        end(state, login)
    return len(found)
