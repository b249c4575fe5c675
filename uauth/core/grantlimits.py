"""Bounds on the grants one session or account accumulates (issue 17).

Every authorization used to start a new grant with its own note, kept for the session's
lifetime: a signed-in person could grow storage without limit with silent ``/authorize``
requests, and logout, which revokes a session's grants one by one, grew as slow as that.

- A grant without refresh tokens is reused for the same client within the same login session:
  its tokens end together anyway (at logout, or when their short lifetime runs out), so a
  session holds at most one such grant per client.
- A grant that will carry refresh tokens gets its own id (one code's replay must not revoke
  another authorization), but until its first refresh token is issued its note lives only as
  long as its code and does not count as a family: codes never redeemed leave nothing behind
  and cannot evict anyone's live refresh tokens.
- When a family starts (:func:`start_family`: a code's first refresh token, a device grant's
  tokens) its note is kept for the family's life, and a user keeps at most
  :data:`MAX_GRANTS_PER_CLIENT` families per client: one more evicts (and revokes) the oldest.
- A family's note is keyed by the client and the exact time the family started
  (:func:`family_prefix`), so the eviction reads the oldest beyond the cap in key order
  (``Store.all_but_newest``) instead of listing and sorting every note of the person.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from uauth.core.records import APP_GRANT
from uauth.core.records import SESSION_GRANT

from .consents import apps_group
from .consents import grant_lifetime
from .consents import note_key
from .consents import remember_grant
from .tokens import evict_grant
from .tokens import grant_revoked

if TYPE_CHECKING:
    from uauth.core.state import State

#: Refresh-token grants one user keeps per client (devices, installs); more evict the oldest.
MAX_GRANTS_PER_CLIENT = 50


def _key(sid: str, client_id: str) -> str:
    return f"{sid}:{client_id}"


@dataclass(frozen=True)
class HeldGrant:
    """What :func:`session_grant` answered for one session and client, read ahead (with the
    session, at ``/authorize``) for the grant that begins later in the request."""

    sid: str
    client_id: str
    grant_id: str | None


def expect_session_grant(state: State, sid: str, client_id: str) -> None:
    """:func:`session_grant` of this session and client follows in the caller's batch
    (``Store.batch``): its note rides the batch's next read."""
    state.store.prefetch(SESSION_GRANT, _key(sid, client_id))


def session_grant(state: State, sid: str, client_id: str, held: HeldGrant | None = None
                  ) -> str | None:
    """The live grant this session already holds for this client, if any; ``held`` answers
    when it was read ahead for this session and client."""
    if held is not None and (held.sid, held.client_id) == (sid, client_id):
        return held.grant_id
    record = state.store.find(SESSION_GRANT, _key(sid, client_id))
    if record is None or grant_revoked(state.store, record["grant_id"]):
        return None
    return str(record["grant_id"])


def remember_session_grant(state: State, sid: str, client_id: str, grant_id: str,
                           ttl: int) -> None:
    """Note the grant this session reuses for the client; saved under the grant, so revoking
    the grant (logout, /account, a code replay) removes the note with it."""
    state.store.save(SESSION_GRANT, _key(sid, client_id), {"grant_id": grant_id}, ttl=ttl,
                     grant_id=grant_id)


def remember_pending(state: State, user_id: str, client_id: str, grant_id: str,
                     sid: str | None) -> None:
    """The note of a grant whose code may still bring refresh tokens: as long as its code (and a
    hybrid response's access token) lives, revoked at logout, not counted as a family."""
    remember_grant(state.store, user_id, client_id, grant_id,
                   lives=grant_lifetime(state.settings, offline=False), now=state.now(), sid=sid,
                   revoke_at_logout=True, offline=False)


def family_prefix(user_id: str, client_id: str) -> str:
    """How the keys of a user's family notes for one client begin; what follows is the exact
    start, fixed-width, so they sort by it. The client id is digested: it may hold any
    character, and one client's prefix must never begin another's. A ``/`` follows the user id,
    where every other note of the person has a ``:``."""
    digest = hashlib.sha256(client_id.encode("utf-8")).hexdigest()[:32]
    return f"{user_id}/{digest}/"


def start_family(state: State, user_id: str, client_id: str, grant_id: str, *,
                 sid: str | None = None, revoke_at_logout: bool = False) -> int:
    """Note a grant's new refresh-token family, under a key that sorts by its start, and evict
    the user's oldest families of this client beyond the cap: every way a family starts (a
    code's first refresh token, a device grant) comes through here, so the cap bounds them all.

    :returns: how many families were evicted.
    """
    started = state.clock()
    remember_grant(state.store, user_id, client_id, grant_id,
                   lives=grant_lifetime(state.settings, offline=True), now=state.now(), sid=sid,
                   revoke_at_logout=revoke_at_logout,
                   keep=int(state.settings.session_ttl) if sid else None, offline=True,
                   key=f"{family_prefix(user_id, client_id)}{started:017.6f}/{grant_id}")
    return evict_oldest(state, user_id, client_id, keep=grant_id)


def family_started(state: State, user_id: str, client_id: str, sid: str | None,
                   grant_id: str, *, outlives_login: bool) -> int:
    """A code's grant issued its first refresh token: its note is kept for the family's life
    (under a family's key: the code's note goes), and the family is capped
    (:func:`start_family`).

    :param outlives_login: ``offline_access`` was granted (OIDC Core §11), so logout keeps it.
    :returns: how many families were evicted.
    """
    state.store.delete(APP_GRANT, note_key(user_id, client_id, grant_id))
    return start_family(state, user_id, client_id, grant_id, sid=sid,
                        revoke_at_logout=not outlives_login)


def evict_oldest(state: State, user_id: str, client_id: str, *, keep: str) -> int:
    """Keep ``keep`` (the family just started) and the user's newest other families of
    ``client_id`` up to :data:`MAX_GRANTS_PER_CLIENT` in all; revoke the older ones and return
    how many.

    The read sends the writes held before it (the new family's note among them, so two
    families started at once see each other), and the revocations are held in turn: inside the
    token response's batch they go to storage with its last writes, not each on its own."""
    beyond = state.store.all_but_newest(apps_group(user_id), APP_GRANT,
                                        family_prefix(user_id, client_id),
                                        MAX_GRANTS_PER_CLIENT - 1)
    excess = [(key, record["grant_id"]) for key, record in beyond if record["grant_id"] != keep]
    if len(excess) == len(beyond):
        excess = excess[:-1]  # ``keep`` is among the newest: the newest of these stays with it
    for key, grant_id in excess:
        evict_grant(state, grant_id)
        state.store.delete(APP_GRANT, key)
    return len(excess)
