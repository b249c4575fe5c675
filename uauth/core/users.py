"""The user directory: uauth's own, kept in the configured storage.

Passwords are hashed with argon2id at OWASP's recommended parameters (19 MiB, 2 iterations,
1 lane) and rehashed on login when the parameters change. An unknown username costs the same
hash as a wrong password, so timing does not reveal which accounts exist.
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from collections.abc import Iterator
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from argon2.exceptions import VerifyMismatchError

from uauth.core.records import USER
from uauth.core.records import USERNAME
from uauth.storage import Store

from .emailindex import accounts_with
from .emailindex import canonical_email
from .emailindex import index as index_email
from .models import User

#: Verification flags (OIDC Core §5.1) and the attribute whose value each vouches for.
VERIFIED_BY = {"email": "email_verified", "phone_number": "phone_number_verified"}

#: argon2id, OWASP Password Storage Cheat Sheet (2023+): m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def _dummy() -> str:
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = HASHER.hash(secrets.token_urlsafe(16))
        return _dummy_hash


class UserExists(ValueError):
    """The username is taken (case-insensitively)."""


class UserDirectory(Protocol):
    """What uauth needs from wherever users live: ``UAuth(app, users=MyDirectory())``.

    The default is :class:`StoreUsers` (uauth's own storage). A host app answers from its own
    users table with :class:`~uauth.core.models.User` values built from its records:

    - ``id``: the stable identifier; it becomes ``sub`` in tokens, so never reuse or change
      one. When the host's flask-login manager is used, it must equal the host user's
      ``get_id()`` (uauth looks the logged-in person up with ``get(current_user.get_id())``).
    - ``username``: what the person types on uauth's login page and sees on its pages.
    - ``profile``: the profile claims by their OIDC names (``name``, ``email``,
      ``email_verified``, ``picture``, ...), released per granted scope (OIDC Core §5.4);
      ``updated_at`` (Unix seconds) too.
    - ``disabled``: True refuses logins, tokens and userinfo for them from then on.

    Each method is called per request that needs it, so make them cheap (an indexed lookup).
    """

    def get(self, user_id: str) -> User | None:
        """The user with this id, or None."""

    def find_by_username(self, username: str) -> User | None:
        """The user who logs in with this name (compare as the host's login does), or None."""

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is theirs and they may log in, else None.

        Only uauth's own login page calls this; a host that logs people in on its own page
        (its ``LoginManager.login_view``, or ``UAUTH_LOGIN_VIEW``) may return None always.
        Verify in constant time, and spend the same time on an unknown name.
        """


@runtime_checkable
class EditableDirectory(Protocol):
    """Optional, beyond :class:`UserDirectory`: people may fill in required attributes and edit
    their profile and password on uauth's pages (:class:`StoreUsers` does). With a directory
    that lacks these, the required-attributes step is skipped and /account shows the profile
    read-only: the host app owns its users' data."""

    def update_profile(self, user: User, values: dict[str, Any]) -> list[str]:
        """Set attributes (None removes one), clear the verified flag of a changed email or
        phone number, save; return the names that changed."""

    def check_password(self, user: User, password: str) -> bool: ...

    def set_password(self, user: User, password: str) -> None: ...


def editable(users: object) -> EditableDirectory | None:
    """``users`` when people may edit their own data through it, else None."""
    return users if isinstance(users, EditableDirectory) else None


def canonical_username(username: str) -> str:
    """Lookup form of a username: NFKC, case-folded, trimmed."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


class StoreUsers:
    """The default directory: users and a username index in the configured store."""

    def __init__(self, store: Store, clock: Any) -> None:
        self.store = store
        self.clock = clock

    def get(self, user_id: str) -> User | None:
        if not user_id or len(user_id) > 200:
            return None
        record = self.store.find(USER, user_id)
        return None if record is None else User.from_record(record)

    def expect(self, user_id: str) -> None:
        """:meth:`get` of this user follows within the store's batch (see :func:`expect_user`)."""
        if user_id and len(user_id) <= 200:
            self.store.prefetch(USER, user_id)

    def expect_username(self, username: str) -> None:
        """:meth:`find_by_username` of this name follows within the store's batch: the name's
        index rides the batch's next read (see :func:`expect_username`)."""
        if username and len(username) <= 200:
            self.store.prefetch(USERNAME, canonical_username(username))

    def find_by_username(self, username: str) -> User | None:
        if not username or len(username) > 200:
            return None
        entry = self.store.find(USERNAME, canonical_username(username))
        return None if entry is None else self.get(entry["id"])

    def find_by_email(self, address: str) -> User | None:
        """The one account whose email address this is; None when none or several are."""
        wanted = canonical_email(address)
        found = [user for user in map(self.get, accounts_with(self.store, address))
                 if user is not None and canonical_email(user.profile.get("email")) == wanted]
        return found[0] if len(found) == 1 else None

    def authenticate(self, username: str, password: str) -> User | None:
        """``username`` may be the email address of exactly one account, too."""
        user = self.find_by_username(username)
        if user is None and "@" in username:
            user = self.find_by_email(username)
        stored = user.password_hash if user else None
        try:
            HASHER.verify(stored or _dummy(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None or stored is None or user.disabled:
            return None
        if HASHER.check_needs_rehash(stored):
            user.password_hash = HASHER.hash(password)
            self.save(user)
        return user

    def create(self, username: str, password: str | None, profile: dict[str, Any] | None = None,
               ) -> User:
        name = username.strip()
        if not name or len(name) > 150 or any(ch.isspace() or ord(ch) < 32 for ch in name):
            raise ValueError("a username is 1-150 characters without spaces or control characters")
        now = int(self.clock())
        user = User(
            id=secrets.token_hex(16),
            username=name,
            password_hash=HASHER.hash(password) if password else None,
            profile=dict(profile or {}),
            created_at=now,
            updated_at=now,
        )
        if not self.store.add(USERNAME, canonical_username(name), {"id": user.id}, ttl=None):
            raise UserExists(f"user {name!r} already exists")
        self.save(user)
        index_email(self.store, user.id, None, user.profile.get("email"))
        return user

    def save(self, user: User) -> None:
        self.store.save(USER, user.id, user.to_record(), ttl=None)

    def delete(self, user: User) -> None:
        """Remove the user and its username (``uauth check``'s throwaway user)."""
        self.store.delete(USER, user.id)
        self.store.delete(USERNAME, canonical_username(user.username))
        index_email(self.store, user.id, user.profile.get("email"), None)

    def update_profile(self, user: User, values: dict[str, Any]) -> list[str]:
        """Set profile attributes (None or "" removes one) and save; returns what changed.

        A changed ``email`` or ``phone_number`` is no longer verified, unless ``values`` says
        so itself (an operator, or a verification step).
        """
        profile = dict(user.profile)
        old_email = profile.get("email")
        changed = []
        for name, value in values.items():
            if value in (None, "", [], {}):
                if name in profile:
                    del profile[name]
                    changed.append(name)
            elif profile.get(name) != value:
                profile[name] = value
                changed.append(name)
        for name, flag in VERIFIED_BY.items():
            if name in changed and flag not in values and profile.pop(flag, None) is not None:
                changed.append(flag)
        if changed:
            user.profile = profile
            user.updated_at = int(self.clock())
            self.save(user)
            index_email(self.store, user.id, old_email, user.profile.get("email"))
        return changed

    def check_password(self, user: User, password: str) -> bool:
        """True when ``password`` is this user's (argon2id verify, constant time)."""
        try:
            return user.password_hash is not None and HASHER.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def set_password(self, user: User, password: str) -> None:
        user.password_hash = HASHER.hash(password)
        user.updated_at = int(self.clock())
        self.save(user)

    def list(self) -> Iterator[User]:
        for _, record in self.store.scan(USER):
            yield User.from_record(record)


def expect_user(users: object, user_id: str) -> None:
    """Tell uauth's own directory that ``users.get(user_id)`` follows, so that its storage can
    read the user with the round trip it makes first (``Store.prefetch``, inside
    ``Store.batch``): where the user's id is known before a read the user does not depend on
    (the session, the deny list, spending a code). A directory of the host's own is left alone.
    """
    if isinstance(users, StoreUsers):
        users.expect(user_id)


def expect_username(users: object, username: str) -> None:
    """:func:`expect_user` for a login's typed name: uauth's own directory reads the name's
    index with the storage's next round trip (the login throttle's)."""
    if isinstance(users, StoreUsers):
        users.expect_username(username)
