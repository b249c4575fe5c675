"""Login glue: flask-login's signals and the browser's cookie, tied to the stored sessions.

The stored session (:mod:`uauth.core.sessions`) is the truth; this module keeps its handle in the
signed cookie, looks it up once per request, and turns every flask-login login or logout (ours,
a host app's, a remember-me cookie) into the start or end of a uauth session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from contextlib import nullcontext
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from flask import current_app
from flask import g
from flask import request
from flask import session
from flask import url_for
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user
from werkzeug.datastructures import MultiDict

from uauth.core.mfa import acr_for
from uauth.core.models import LoginSession
from uauth.core.models import User
from uauth.core.sessions import create
from uauth.core.sessions import end
from uauth.core.sessions import find
from uauth.core.sessions import retire
from uauth.core.tokens import Authentication
from uauth.web.state import get_state

#: Key of the session handle inside the browser's (signed) session cookie.
HANDLE = "uauth_handle"
#: Key of the session's ``sid`` in the cookie: reads keyed by it (the grant the session holds
#: for a client) can travel with the session's own (:func:`cookie_sid`).
SID = "uauth_sid"
#: Key of the handle of a session whose user is re-authenticating (``prompt=login``,
#: ``max_age`` through a host's login page): the next login continues or ends it.
SUSPENDED = "uauth_suspended"


_CACHE = "_uauth_login_session"


MAX_HANDLE_LENGTH = 100


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

    Called for every flask-login login (:func:`record_login`). Signing in again
    as the same user keeps the session's ``sid`` (clients that know it keep recognising it)
    and retires the old handle, so copies of the old cookie are worthless; signing in as
    someone else ends the previous user's session first. ``suspended`` is the handle
    :func:`suspend_browser_session` put aside, the previous session of a re-authentication.
    """
    state = get_state()
    previous = current_session() or suspended_session(suspended)
    sid = None
    if previous is not None and previous.user_id == user_id:
        retire(state, previous)
        sid = previous.sid
    elif previous is not None:
        end(state, previous)
    handle, login = create(state, user_id, amr, user_agent=request.user_agent.string, sid=sid)
    session[HANDLE] = handle
    session[SID] = login.sid
    setattr(g, _CACHE, login)
    return login


def cookie_user_id() -> str | None:
    """The signed-in person's id as flask-login's cookie names it, before the session is
    read: what reads ahead of the person's listings are keyed by (the session read decides)."""
    user_id = session.get("_user_id")
    return user_id if isinstance(user_id, str) else None


def cookie_sid() -> str | None:
    """The ``sid`` of this browser's session as its cookie names it, before the session is
    read: only a hint for reading ahead (the session read decides)."""
    sid = session.get(SID)
    return sid if isinstance(sid, str) and len(sid) <= MAX_HANDLE_LENGTH else None


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
        end(get_state(), login, held_user())
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


#: Digest of the authorization request a login was made for (see :func:`logged_in_for`).
FRESH_LOGIN = "uauth_fresh_login"


def authentication() -> Authentication | None:
    """How the current browser session authenticated, or None (logged out, ended or expired;
    the session's lifetimes are enforced by :mod:`uauth.core.sessions`)."""
    logged_in = current_user._get_current_object()  # one lookup through flask-login's proxy
    if not logged_in.is_authenticated:
        return None
    login = current_session()
    if login is None or login.user_id != str(logged_in.get_id()):
        # Logged in to flask-login (a host app's loader, say) but the session ended here,
        # elsewhere or by the CLI: log out, or a host login page would wave the person back.
        forget_login()
        return None
    return Authentication(auth_time=login.auth_time, amr=tuple(login.amr), sid=login.sid,
                          acr=acr_for(login.amr))


def forget_login() -> None:
    """Log out of flask-login so the person signs in again (``prompt=login``, ``max_age``, an
    ended session): a re-authentication, so the stored session is not ended here."""
    setattr(g, KEEP_SESSION, True)
    logout_user()
    g.pop(KEEP_SESSION, None)
    suspend_browser_session()


#: ``g`` key carrying the authentication methods of a login uauth's own page makes.
_AMR = "_uauth_amr"
#: ``g`` key: the id of the user :func:`start_session` signs in, read from the directory by the
#: page that calls it, so :func:`record_login` need not read it again.
_READ = "_uauth_read_user"


def record_login(sender: Any, user: Any = None, **extra: Any) -> None:
    """flask-login signal receiver, the one place a login becomes a uauth session.

    Whoever's page it was (uauth's, the host app's, a remember-me cookie), it is when the
    person authenticated: a session is created in storage (:mod:`uauth.core.sessions`), with a
    fresh cookie handle. When the login page continues an authorization request, the login
    was made for that request (see :func:`logged_in_for`).
    """
    amr = tuple(g.pop(_AMR, ()))
    read = g.pop(_READ, None)  # the user uauth's own page has just read from the directory
    suspended = session.get(SUSPENDED)  # the session a re-authentication continues
    drop_uauth_keys(keep=HANDLE)  # nothing of uauth's from before the login survives it
    if user is None or (read != str(user.get_id())
                        and get_state().users.get(str(user.get_id())) is None):
        previous = suspended_session(suspended)
        if previous is not None:  # someone else signed in: the suspended session is over
            end(get_state(), previous)
        return  # unknown to the directory: session_user() shows a page, never a loop
    begin_browser_session(str(user.get_id()), amr, suspended)
    continues = next_params(safe_next(request.args.get("next")))
    if continues:
        session[FRESH_LOGIN] = request_digest(continues)


def held_user() -> User | None:
    """The directory's user flask-login has loaded for this request, without a read; None when
    nobody is signed in or the user is the host's own object (its login manager in charge)."""
    logged_in = current_user._get_current_object()
    return logged_in if isinstance(logged_in, User) else None


def session_user() -> User | None:
    """The directory's user behind the logged-in session (the host's user object when its
    login manager is in charge), or None when logged out or unknown to the directory."""
    logged_in = current_user._get_current_object()  # one lookup through flask-login's proxy
    if not logged_in.is_authenticated:
        return None
    user = logged_in if isinstance(logged_in, User) else get_state().users.get(
        str(logged_in.get_id()))
    return user if user is not None and user.is_active else None


def login_view() -> str:
    """Where people log in: ``UAUTH_LOGIN_VIEW``, else the app's ``LoginManager.login_view``
    (the host's, when it has one), else uauth's own page."""
    configured: str = get_state().settings.login_view
    manager = getattr(current_app, "login_manager", None)
    return configured or getattr(manager, "login_view", None) or "uauth.ui.login"


def start_session(user: User, amr: tuple[str, ...] = ("pwd",)) -> None:
    """Log in on uauth's own page (:func:`record_login` creates the session).

    No fixation: the storage session gets a fresh handle, flask-login a fresh identity and
    the form CSRF token is renewed; a host app's other session data is left alone.
    """
    session.pop("csrf_token", None)
    setattr(g, _AMR, amr)
    setattr(g, _READ, user.id)
    login_user(user)
    session.permanent = True


def login_batch(user_id: str) -> AbstractContextManager[None]:
    """A batch (:meth:`~uauth.storage.base.Store.batch`) for a login's writes (the new session,
    the audit event) and the page's reads after them: one round trip. No batch when the
    browser holds another person's session, or a suspended one: ending it revokes grants and
    signs logout tokens, which must not wait inside a batch's transaction."""
    previous = current_session()  # looked up once per request: the login reuses it
    if session.get(SUSPENDED) is not None or (previous is not None
                                              and previous.user_id != user_id):
        return nullcontext()
    return get_state().store.batch()


def request_digest(params: MultiDict[str, str]) -> str:
    """Names one authorization request, whatever the order of its parameters."""
    items = sorted(params.items(multi=True))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def logged_in_for(params: MultiDict[str, str]) -> bool:
    """True when this session's login was made for this very request: a login that
    ``prompt=login`` or ``max_age`` forced then counts once, instead of forcing another."""
    return session.get(FRESH_LOGIN) == request_digest(params)


def next_params(next_url: str | None) -> MultiDict[str, str]:
    """The authorization request a login page will continue, if that is where it goes."""
    if not next_url:
        return MultiDict()
    parts = urlsplit(next_url)
    if parts.path != url_for("uauth.ui.authorize"):
        return MultiDict()
    return MultiDict(parse_qsl(parts.query, keep_blank_values=True))


def safe_next(target: str | None) -> str | None:
    """``next`` only ever points inside the provider (no open redirect)."""
    if not target or len(target) > 8192:
        return None
    parts = urlsplit(target)
    prefix = get_state().settings.url_prefix
    if parts.scheme or parts.netloc or not target.startswith(prefix + "/"):
        return None
    if target.startswith("//") or "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target
