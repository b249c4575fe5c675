"""Single sign-on sessions, kept in storage so every worker and host agrees on who is logged in.

A browser's (signed) cookie holds a random handle; storage keeps the :class:`LoginSession` under
the handle's digest, grouped per user (``sessions-of:<user id>``) so a user's sessions can be
listed and ended together. The session's public ``sid`` goes into ID tokens and logout tokens;
knowing it logs nobody in. The grant note every authorization writes for the account page
(:func:`uauth.consents.remember_grant`) names the session's ``sid``, so ending a session finds
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
from typing import Any

from flask import g
from flask import request
from flask import session
from flask_login import logout_user

from .audit import LOGOUT
from .audit import audit
from .consents import APP_GRANT
from .consents import apps_group
from .extension import get_state
from .models import LoginSession
from .storage import Record
from .storage import hash_key
from .tokens import revoke_grant

if TYPE_CHECKING:
    from .extension import State

SESSION = "session"
#: A tombstone per ended session: a late idle-time write cannot bring the session back.
ENDED = "session_ended"
#: Key of the session handle inside the browser's (signed) session cookie.
HANDLE = "uauth_handle"
#: Key of the handle of a session whose user is re-authenticating (``prompt=login``,
#: ``max_age`` through a host's login page): the next login continues or ends it.
SUSPENDED = "uauth_suspended"
_CACHE = "_uauth_login_session"
MAX_HANDLE_LENGTH = 100


def user_group(user_id: str) -> str:
    return f"sessions-of:{user_id}"



def touch_interval(state: State) -> int:
    """How stale ``last_seen`` may get: a write every 5 minutes at most, finer for short idle
    lifetimes."""
    return max(1, min(300, int(state.config["UAUTH_SESSION_IDLE_TTL"]) // 10))


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
        auth_time=now, expires_at=now + state.config["UAUTH_SESSION_TTL"], last_seen=now,
        amr=list(amr), created_at=now, user_agent=user_agent[:200],
    )
    _save(state, login)
    return handle, login


def _save(state: State, login: LoginSession) -> None:
    state.store.save(SESSION, login.key, login.to_record(), ttl=login.ttl(state.now()),
                     grant_id=user_group(login.user_id))


def is_idle(state: State, login: LoginSession) -> bool:
    return state.now() - login.last_seen >= int(state.config["UAUTH_SESSION_IDLE_TTL"])


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
    """The grants issued in a session: the user's app grants (:mod:`uauth.consents`, noted
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


def _retire(state: State, login: LoginSession) -> None:
    state.store.save(ENDED, login.key, {"at": state.now()}, ttl=login.ttl(state.now()))
    state.store.delete(SESSION, login.key)


def end(state: State, login: LoginSession) -> None:
    """End a session: gone at once for every worker, its grants revoked, its clients told."""
    from .backchannel import deliveries

    _retire(state, login)
    audit(LOGOUT, user_id=login.user_id, session=login.sid[:8])
    notes = grants_in(state, login)
    for note in notes:
        if note.get("revoke_at_logout"):
            revoke_grant(state, note["grant_id"])
    clients = dict.fromkeys(note["client_id"] for note in notes)
    state.backchannel.send(deliveries(state, login, clients))


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


# --- the browser's session -------------------------------------------------------------------


def current_session() -> LoginSession | None:
    """The session of the browser making this request, looked up once per request.

    A cookie whose session has ended (here, in another worker, or from the CLI) is forgotten.
    """
    if _CACHE in g:
        cached: LoginSession | None = g.get(_CACHE)
        return cached
    handle = session.get(HANDLE)
    login = None
    if isinstance(handle, str) and len(handle) <= MAX_HANDLE_LENGTH:
        login = find(get_state(), handle)
    if login is None and handle is not None:
        session.pop(HANDLE, None)
    setattr(g, _CACHE, login)
    return login


def suspend_browser_session() -> None:
    """This browser's user must sign in again: put the handle aside, so the session is not
    used meanwhile but the next login continues it (same user) or ends it (someone else)
    instead of leaving it running unseen (issue 17)."""
    handle = session.get(HANDLE)
    drop_uauth_keys()
    if isinstance(handle, str) and len(handle) <= MAX_HANDLE_LENGTH:
        session[SUSPENDED] = handle


def suspended_session(handle: object) -> LoginSession | None:
    """The live session a :data:`SUSPENDED` handle names, if any."""
    if not isinstance(handle, str) or len(handle) > MAX_HANDLE_LENGTH:
        return None
    return find(get_state(), handle)


def begin_browser_session(user_id: str, amr: Iterable[str], suspended: object = None
                          ) -> LoginSession:
    """Start ``user_id``'s session on this browser with a fresh cookie handle (no fixation).

    Called for every flask-login login (``views.authorize.record_login``). Signing in again
    as the same user keeps the session's ``sid`` (clients that know it keep recognising it)
    and retires the old handle, so copies of the old cookie are worthless; signing in as
    someone else ends the previous user's session first. ``suspended`` is the handle
    :func:`suspend_browser_session` put aside, the previous session of a re-authentication.
    """
    state = get_state()
    previous = current_session() or suspended_session(suspended)
    sid = None
    if previous is not None and previous.user_id == user_id:
        _retire(state, previous)
        sid = previous.sid
    elif previous is not None:
        end(state, previous)
    handle, login = create(state, user_id, amr, user_agent=request.user_agent.string, sid=sid)
    session[HANDLE] = handle
    setattr(g, _CACHE, login)
    return login


def drop_uauth_keys(*, keep: str | None = None) -> None:
    """Remove uauth's keys from the (cookie) session, and forget this request's login; an
    embedding host's own session data is not ours to clear."""
    for key in [k for k in session if k.startswith("uauth_") and k != keep]:
        del session[key]
    if keep != HANDLE:
        setattr(g, _CACHE, None)


def end_browser_session() -> bool:
    """Log this browser out; True if it had a live session."""
    login = current_session()
    if login is not None:
        end(get_state(), login)
    drop_uauth_keys()
    logout_user()  # record_logout then finds no session left to end
    return login is not None


#: ``g`` flag: this flask-login logout is uauth's own re-authentication, not a sign-out.
KEEP_SESSION = "_uauth_keep_session"


def record_logout(sender: Any, user: Any = None, **extra: Any) -> None:
    """flask-login signal receiver: a sign-out anywhere (a host app's logout view calling
    ``logout_user()`` too) ends this browser's uauth session, with its grants and back-channel
    logout, as uauth's own /logout does."""
    if g.pop(KEEP_SESSION, False):
        return
    for login in (current_session(), suspended_session(session.get(SUSPENDED))):
        if login is not None:
            end(get_state(), login)
    drop_uauth_keys()
