"""Password reset and email verification: who a request names, and how often mail may go.

No Flask here; the pages are :mod:`uauth.web.views.recovery`. Nothing a visitor sees depends on
whether an account exists: the caller shows the same page either way, and the mail itself
goes out on the mail thread.
"""

from __future__ import annotations

from typing import Any

from uauth.core.emailindex import accounts_with
from uauth.core.models import User
from uauth.core.records import MAIL_COUNTER
from uauth.core.users import StoreUsers
from uauth.storage import Store
from uauth.storage import hash_key

#: The window :data:`MAIL_COUNTER` counts over.
WINDOW = 3600
#: Accounts one reset request may reach (several accounts may share an address).
MAX_ACCOUNTS = 3


def normal_email(address: str) -> str:
    return address.strip().casefold()


def find_accounts(users: Any, identifier: str) -> list[User]:
    """The active accounts a "forgot your password" request names: by username, else by email
    address (every account with it, up to :data:`MAX_ACCOUNTS`). Only accounts with an email
    address can get a link.

    :param users: the user directory; email lookup needs uauth's own (its email index).
    """
    identifier = identifier.strip()
    if not identifier or len(identifier) > 320:
        return []
    found: list[User] = []
    user = users.find_by_username(identifier)
    if user is not None:
        found = [user]
    elif "@" in identifier and isinstance(users, StoreUsers):
        # the email index (uauth.core.emailindex) may name stale accounts: check each profile
        wanted = normal_email(identifier)
        candidates = (users.get(user_id) for user_id in accounts_with(users.store, identifier))
        found = [u for u in candidates if u is not None
                 and normal_email(str(u.profile.get("email", ""))) == wanted][:MAX_ACCOUNTS]
    return [u for u in found if not u.disabled and u.profile.get("email")]


def within_limit(store: Store, keys: list[str], limit: int) -> bool:
    """Count one mail against each key (``address:…``, ``user:…``, ``ip:…``); False when any
    is over its limit for the hour (IP addresses get ten times as many)."""
    allowed = True
    for key in keys:
        cap = limit * 10 if key.startswith("ip:") else limit
        if store.incr(MAIL_COUNTER, hash_key(key), WINDOW) > cap:
            allowed = False
    return allowed
