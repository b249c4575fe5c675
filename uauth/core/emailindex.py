"""Sign-in with an email address: which accounts hold an address, in one storage query.

Each account's address is one record in the storage group ``email:<address>`` (case-folded),
so :func:`accounts_with` lists them with :meth:`Store.grant_records` and no record is ever
read, changed and written back. Stores from before the index get it built once, on the first
lookup. A sign-in by address is allowed only when exactly one account holds it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from uauth.core.records import EMAIL
from uauth.core.records import SETTING
from uauth.core.records import USER
from uauth.storage import Store

#: Set once the index covers every user (a ``setting`` record, as the pairwise salt is).
_BUILT = (SETTING, "email_index")


def canonical_email(address: Any) -> str | None:
    if not isinstance(address, str) or "@" not in address or len(address) > 320:
        return None
    return unicodedata.normalize("NFKC", address).strip().casefold()


def _group(address: str) -> str:
    return f"email:{address}"


def index(store: Store, user_id: str, old: Any, new: Any) -> None:
    """Move ``user_id`` from the ``old`` address's entry to the ``new`` one's."""
    before, after = canonical_email(old), canonical_email(new)
    if before == after:
        return
    if before:
        store.delete(EMAIL, f"{before} {user_id}")
    if after:
        store.save(EMAIL, f"{after} {user_id}", {"id": user_id}, ttl=None,
                   grant_id=_group(after))


def accounts_with(store: Store, address: str) -> list[str]:
    """Ids of the accounts whose profile holds ``address`` (the index may name stale ones:
    the caller checks each profile)."""
    canonical = canonical_email(address)
    if canonical is None:
        return []
    if store.find(*_BUILT) is None:
        _build(store)
    return [r["id"] for kind, _, r in store.grant_records(_group(canonical)) if kind == EMAIL]


def _build(store: Store) -> None:
    for user_id, record in store.scan(USER):
        index(store, user_id, None, (record.get("profile") or {}).get("email"))
    store.save(*_BUILT, {"version": 1}, ttl=None)
