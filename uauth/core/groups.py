"""Groups: first-class, named, and released to apps as the ``groups`` claim.

A group is a record (``group`` kind, keyed by its name); membership lives on the user
(:attr:`~uauth.models.User.groups`), so the claim costs nothing beyond the user lookup every
token already makes. Removing a group takes it off its members too. No Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from uauth.core.models import User
from uauth.core.records import GROUP
from uauth.storage import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class GroupError(ValueError):
    """A group name is invalid, taken or unknown; the message says which."""


@dataclass(frozen=True)
class Group:
    name: str
    description: str = ""
    created_at: int = 0


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise GroupError("a group name is 1-64 letters, digits and . _ : - (starting with a "
                         "letter or digit)")
    return name


def create(store: Store, name: str, description: str = "", *, now: int) -> Group:
    name = check_name(name)
    group = Group(name, description.strip()[:200], now)
    if not store.add(GROUP, name, {"name": name, "description": group.description,
                                    "created_at": now}, ttl=None):
        raise GroupError(f"the group {name!r} already exists")
    return group


def get(store: Store, name: str) -> Group | None:
    if not name or not _NAME.match(name):
        return None
    record = store.find(GROUP, name)
    if record is None:
        return None
    return Group(record["name"], record.get("description", ""), record.get("created_at", 0))


def all_groups(store: Store) -> list[Group]:
    found = [Group(r["name"], r.get("description", ""), r.get("created_at", 0))
             for _, r in store.scan(GROUP)]
    return sorted(found, key=lambda g: g.name.casefold())


def members(users: Iterable[User], name: str) -> list[User]:
    return sorted((u for u in users if name in u.groups), key=lambda u: u.username.casefold())


def remove(store: Store, users: Any, name: str) -> int:
    """Delete a group and take it off every member; returns how many members it had.

    :param users: the :class:`~uauth.core.users.StoreUsers` directory.
    """
    if get(store, name) is None:
        raise GroupError(f"no group {name!r}")
    had = 0
    for user in list(users.list()):
        if name in user.groups:
            user.groups = [g for g in user.groups if g != name]
            users.save(user)
            had += 1
    store.delete(GROUP, name)
    return had


def change_membership(store: Store, users: Any, user: User, *, add: Iterable[str] = (),
                      remove: Iterable[str] = ()) -> list[str]:
    """Add the user to groups (which must exist) and take them off others; returns the
    user's groups afterwards. Nothing is saved unless every named group exists."""
    adding = [check_name(n) for n in add]
    for name in adding:
        if get(store, name) is None:
            raise GroupError(f"no group {name!r} (create it first)")
    dropping = set(remove)
    groups = [g for g in user.groups if g not in dropping]
    groups.extend(n for n in adding if n not in groups)
    if groups != user.groups:
        user.groups = groups
        users.save(user)
    return list(user.groups)


def may_sign_in(user: User, allowed: Iterable[str]) -> bool:
    """True when the client allows everyone (empty list) or the user is in one of its groups."""
    wanted = set(allowed)
    return not wanted or bool(wanted & set(user.groups))
