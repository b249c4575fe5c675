"""Bounds on the grants one session or account accumulates (issue 17).

Every authorization used to start a new grant with its own note, kept for the session's
lifetime: a signed-in person could grow storage without limit with silent ``/authorize``
requests, and logout, which revokes a session's grants one by one, grew as slow as that.

- A grant without refresh tokens is reused for the same client within the same login session:
  its tokens end together anyway (at logout, or when their short lifetime runs out), so a
  session holds at most one such grant per client.
- A grant that will carry refresh tokens is reused the same way until its first refresh token
  is issued (:func:`family_started`); only then is it a family of its own, and the next
  authorization starts a new one. So codes that are never redeemed cost one grant per session
  and client, and cannot evict anyone's live refresh tokens.
- Refresh-token families are capped: a user keeps at most :data:`MAX_GRANTS_PER_CLIENT` per
  client, and a family that starts beyond that evicts (and revokes) the oldest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uauth.core.records import APP_GRANT
from uauth.core.records import SESSION_GRANT

from .consents import apps_group
from .tokens import grant_revoked
from .tokens import revoke_grant

if TYPE_CHECKING:
    from uauth.core.state import State

#: Refresh-token grants one user keeps per client (devices, installs); more evict the oldest.
MAX_GRANTS_PER_CLIENT = 50


def _key(sid: str, client_id: str, offline: bool) -> str:
    return f"{sid}:{client_id}:offline" if offline else f"{sid}:{client_id}"


def session_grant(state: State, sid: str, client_id: str, *, offline: bool = False
                  ) -> str | None:
    """The live grant this session already holds for this client, if any; ``offline``: the
    grant awaiting its first refresh token."""
    record = state.store.find(SESSION_GRANT, _key(sid, client_id, offline))
    if record is None or grant_revoked(state.store, record["grant_id"]):
        return None
    return str(record["grant_id"])


def remember_session_grant(state: State, sid: str, client_id: str, grant_id: str,
                           ttl: int, *, offline: bool = False) -> None:
    """Note the grant this session reuses for the client; saved under the grant, so revoking
    the grant (logout, /account, a code replay) removes the note with it."""
    state.store.save(SESSION_GRANT, _key(sid, client_id, offline), {"grant_id": grant_id},
                     ttl=ttl, grant_id=grant_id)


def family_started(state: State, user_id: str, client_id: str, sid: str | None,
                   grant_id: str) -> int:
    """A grant's first refresh token was issued: later authorizations in this session start a
    new grant, and the user's oldest families of this client beyond the cap are evicted.

    :returns: how many families were evicted.
    """
    if sid is not None and session_grant(state, sid, client_id, offline=True) == grant_id:
        state.store.delete(SESSION_GRANT, _key(sid, client_id, True))
    return evict_oldest(state, user_id, client_id, keep=grant_id)


def evict_oldest(state: State, user_id: str, client_id: str, *, keep: str | None = None) -> int:
    """Make room for one more refresh-token grant of ``client_id``: revoke the oldest while
    the user holds :data:`MAX_GRANTS_PER_CLIENT` or more besides ``keep``; returns how many were
    revoked."""
    held = sorted(((record["issued_at"], key, record["grant_id"])
                   for kind, key, record in state.store.grant_records(apps_group(user_id))
                   if kind == APP_GRANT and record["client_id"] == client_id
                   and record.get("offline", True) and record["grant_id"] != keep),
                  key=lambda item: item[0])
    excess = held[:max(0, len(held) - MAX_GRANTS_PER_CLIENT + 1)]
    for _, key, grant_id in excess:
        revoke_grant(state, grant_id)
        state.store.delete(APP_GRANT, key)
    return len(excess)
