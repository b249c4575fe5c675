"""Changes an administrator makes to people, shared by the CLI and the admin console.

The rules live here once: the last active admin can neither lose the role nor be disabled or
removed (someone must be able to open the console), and disabling a person ends their sessions.
The functions take the directory (:class:`~uauth.core.users.StoreUsers`) and return what happened;
callers audit with their actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from uauth.core.models import User
from uauth.core.sessions import end_all

if TYPE_CHECKING:
    from uauth.core.state import State


class LastAdminError(ValueError):
    """The change would leave no active admin."""

    def __init__(self) -> None:
        super().__init__("this is the last active admin: make someone else an admin first")


def active_admins(users: Any) -> list[User]:
    return [u for u in users.list() if u.admin and not u.disabled]


def _guard(users: Any, user: User) -> None:
    if user.admin and not user.disabled and [u.id for u in active_admins(users)] == [user.id]:
        raise LastAdminError


def set_admin(users: Any, user: User, admin: bool) -> bool:
    """Give or take the admin role; True when it changed."""
    if user.admin == admin:
        return False
    if not admin:
        _guard(users, user)
    user.admin = admin
    users.save(user)
    return True


def set_disabled(state: State, user: User, disabled: bool) -> int:
    """Disable (and end every session of) or enable a person; returns the sessions ended."""
    if user.disabled == disabled:
        return 0
    if disabled:
        _guard(state.users, user)
    user.disabled = disabled
    state.users.save(user)  # type: ignore[attr-defined]
    return end_all(state, user.id) if disabled else 0


def remove(state: State, user: User) -> int:
    """Remove a person: their sessions end, their account and username go."""

    _guard(state.users, user)
    ended = end_all(state, user.id)
    state.users.delete(user)  # type: ignore[attr-defined]
    return ended


# --- second factors (issue 15: uauth.core.factors) ------------------------------------------


def mfa_available(state: State) -> bool:
    """True when people can enrol second factors here (``UAUTH_MFA`` is not ``off``)."""
    return state.settings.mfa != "off"


def has_second_factor(state: State, user: User) -> bool:
    """True when ``user`` has an active passkey or authenticator app."""
    return state.factors.has_second_factor(user.id)


def reset_second_factors(state: State, user: User) -> tuple[int, int]:
    """Remove every passkey, authenticator app and recovery code of ``user`` (they lost them)
    and end their sessions, as ``uauth user mfa reset`` does; returns (records, sessions)."""

    removed = state.factors.reset(user.id)
    return removed, end_all(state, user.id)
