"""Invitations: a single-use, expiring link that lets one person create their account.

An invitation names an email address and optionally a username, the groups the new account
joins and whether it is an admin. Accepting checks the username first, then uses the link up
(the store's atomic consume), then creates the account; should the name be taken in between,
the invitation is put back, so nothing is half-done. No Flask here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from uauth.core import groups as group_records
from uauth.core.links import Issued
from uauth.core.links import issue
from uauth.core.links import peek
from uauth.core.links import pending
from uauth.core.links import redeem
from uauth.core.models import User
from uauth.core.records import INVITE
from uauth.core.users import UserExists
from uauth.storage import Store
from uauth.storage import hash_key


class InvitationError(ValueError):
    """The invitation cannot be created or accepted; the message is for people."""


@dataclass(frozen=True)
class Invitation:
    key: str
    email: str
    username: str
    groups: list[str]
    admin: bool
    created_by: str
    created_at: int
    expires_at: int
    mailed: bool

    @classmethod
    def of(cls, key: str, record: dict[str, Any]) -> Invitation:
        return cls(key, record.get("email", ""), record.get("username", ""),
                   list(record.get("groups", [])), bool(record.get("admin")),
                   record.get("created_by", ""), int(record.get("created_at", 0)),
                   int(record.get("expires_at", 0)), bool(record.get("mailed")))


def create(store: Store, users: Any, *, email: str, now: int, ttl: int,
           groups: Iterable[str] = (), username: str = "", admin: bool = False,
           created_by: str = "", mailed: bool = False) -> Issued:
    email = email.strip()
    if "@" not in email or len(email) > 320 or any(ch.isspace() for ch in email):
        raise InvitationError(f"{email!r} is not an email address")
    names = [group_records.check_name(g) for g in groups]
    for name in names:
        if group_records.get(store, name) is None:
            raise InvitationError(f"no group {name!r} (create it first)")
    username = username.strip()
    if username and users.find_by_username(username) is not None:
        raise InvitationError(f"the username {username!r} is taken")
    return issue(store, INVITE, {"email": email, "username": username, "groups": names,
                                 "admin": admin, "created_by": created_by, "mailed": mailed},
                 ttl=ttl, now=now)


def find(store: Store, token: str) -> Invitation | None:
    record = peek(store, INVITE, token)
    return None if record is None else Invitation.of(hash_key(token), record)


def all_pending(store: Store) -> list[Invitation]:
    return [Invitation.of(key, record) for key, record in pending(store, INVITE)]


def accept(store: Store, users: Any, token: str, *, username: str, password: str | None,
           now: int) -> User:
    """Create the invited account; raises :class:`InvitationError` with what went wrong."""
    invitation = find(store, token)
    if invitation is None:
        raise InvitationError("This invitation has expired, was already used, or is not one "
                              "we sent.")
    username = invitation.username or username.strip()
    if users.find_by_username(username) is not None:
        raise InvitationError(f"The username {username!r} is taken; choose another.")
    record = redeem(store, INVITE, token)
    if record is None:
        raise InvitationError("This invitation was just used.")
    profile: dict[str, Any] = {"email": invitation.email}
    if invitation.mailed:  # the link reached that mailbox: the address is proven
        profile["email_verified"] = True
    try:
        user: User = users.create(username, password, profile)
    except (UserExists, ValueError) as exc:
        left = max(int(record.get("expires_at", now + 60)) - now, 1)
        store.save(INVITE, hash_key(token), record, ttl=left)  # put the invitation back
        raise InvitationError(str(exc).replace("user ", "The username ", 1)) from None
    user.groups = [g for g in invitation.groups if group_records.get(store, g) is not None]
    user.admin = invitation.admin
    users.save(user)
    return user
