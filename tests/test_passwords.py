"""Password hashing: argon2id at the documented parameters, upgraded on login when they change."""

from __future__ import annotations

import time

from argon2 import PasswordHasher
from argon2 import extract_parameters

from uauth.core.users import HASHER
from uauth.core.users import StoreUsers
from uauth.storage.memory import MemoryStore


def test_passwords_are_argon2id_at_owasp_parameters() -> None:
    users = StoreUsers(MemoryStore(), time.time)
    user = users.create("ada", "correct horse battery", {})
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    params = extract_parameters(user.password_hash)
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19 * 1024, 2, 1)


def test_a_hash_made_with_older_parameters_is_rehashed_at_login() -> None:
    users = StoreUsers(MemoryStore(), time.time)
    user = users.create("ada", None, {})
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("old secret 123")
    users.save(user)
    assert users.authenticate("ada", "wrong password") is None
    assert users.get(user.id).password_hash == user.password_hash  # type: ignore[union-attr]
    assert users.authenticate("ada", "old secret 123") is not None
    upgraded = users.get(user.id)
    assert upgraded is not None and upgraded.password_hash != user.password_hash
    assert not HASHER.check_needs_rehash(upgraded.password_hash or "")
    assert users.authenticate("ada", "old secret 123") is not None
