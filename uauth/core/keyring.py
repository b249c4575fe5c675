"""Signing keys shared by every worker and host through the configured storage; rotation.

Why storage rather than files: a Redis deployment already shares everything through Redis, so
hosts behind a load balancer need no shared folder; a SQLite deployment is one machine whose
database sits in the instance folder anyway. Two records of kind ``keyset`` hold the set:

- ``current``: ``{"version": v, "keys": [sealed key, ...]}`` (see :func:`uauth.core.keys.seal`);
- ``version``: ``{"version": v}``, rewritten after every change.

A worker reads ``version`` at most every ``UAUTH_KEY_CHECK_INTERVAL`` seconds (one small read, not
one per request) and re-reads ``current`` only when it changed; a token with an unknown ``kid``
forces a check at most once a second. Every change (first keys, rotation, retirement, the admin
CLI) happens under a ``keyset/lock`` record taken with :meth:`Store.add`, so two writers never
race; the lock expires by itself if its holder dies.

Rotation: once the newest key of an enabled algorithm has signed for ``UAUTH_KEY_ROTATION_DAYS``
less ``UAUTH_KEY_PREPUBLISH`` seconds, a key is added that starts signing ``UAUTH_KEY_PREPUBLISH``
seconds later, so relying parties have it in their cached JWKS before its first token. A
superseded key is retired (deleted) once every token it can have signed has expired: its
successor's start plus the longest token lifetime.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from cryptography.fernet import MultiFernet

from uauth.core.records import KEYSET
from uauth.storage import Clock
from uauth.storage import StorageError
from uauth.storage import StorageUnavailable
from uauth.storage import Store

from .keys import KeySealError
from .keys import KeySet
from .keys import SigningKey
from .keys import new_signing_key
from .keys import seal
from .keys import unseal

if TYPE_CHECKING:
    from uauth.core.settings import Settings

log = logging.getLogger("uauth.keys")

#: Seconds the write lock lives if its holder dies mid-change.
LOCK_TTL = 30
#: Seconds a writer waits for another writer's lock (the CLI, or a worker with no keys yet).
LOCK_WAIT = 10.0
#: At most one forced check per this many seconds when a token names an unknown kid.
UNKNOWN_KID_CHECK = 1.0


@dataclass(frozen=True)
class Policy:
    """What the configuration asks of the key set."""

    algs: tuple[str, ...]
    rotation: int
    prepublish: int
    max_token_ttl: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            algs=tuple(settings.signing_algs),
            rotation=int(settings.key_rotation_days) * 86400,
            prepublish=int(settings.key_prepublish),
            max_token_ttl=max(int(settings.access_token_ttl),
                              int(settings.id_token_ttl)),
        )


def _of_alg(keys: list[SigningKey], alg: str) -> list[SigningKey]:
    return sorted((k for k in keys if k.alg == alg), key=lambda k: (k.created, k.kid))


def _due(keys: list[SigningKey], alg: str, now: int) -> list[SigningKey]:
    return [k for k in _of_alg(keys, alg) if k.created <= now]


def retire_time(key: SigningKey, keys: list[SigningKey], policy: Policy, now: int) -> int | None:
    """When ``key`` may go: its successor's start plus the longest token lifetime.

    None while no later key of its algorithm has started signing.
    """
    due = _due(keys, key.alg, now)
    if key not in due or due[-1] is key:
        return None
    successor = due[due.index(key) + 1]
    return successor.created + policy.max_token_ttl


def plan(keys: list[SigningKey], policy: Policy, now: int) -> tuple[list[tuple[str, int]],
                                                                    list[str]]:
    """What is due: keys to add as ``(alg, starts signing at)``, and kids to retire."""
    add: list[tuple[str, int]] = []
    for alg in policy.algs:
        mine = _of_alg(keys, alg)
        if not _due(keys, alg, now):
            add.append((alg, now))  # nothing can sign this algorithm right now
            continue
        newest = mine[-1]
        if (policy.rotation and newest.created <= now
                and newest.created + policy.rotation - policy.prepublish <= now):
            add.append((alg, now + policy.prepublish))
    retire = [k.kid for k in keys
              if (when := retire_time(k, keys, policy, now)) is not None and when <= now]
    return add, retire


@dataclass(frozen=True)
class KeyInfo:
    """One key as ``uauth keys list`` shows it."""

    key: SigningKey
    status: str
    #: When a retiring key will be deleted.
    retires_at: int | None
    enabled: bool


def describe(keys: list[SigningKey], policy: Policy, now: int) -> list[KeyInfo]:
    rows = []
    for key in sorted(keys, key=lambda k: (k.alg, k.created, k.kid)):
        due = _due(keys, key.alg, now)
        retires = retire_time(key, keys, policy, now)
        if key.created > now:
            status = "next"
        elif due and due[-1] is key:
            status = "active"
        else:
            status = "retiring"
        rows.append(KeyInfo(key, status, retires, key.alg in policy.algs))
    return rows


class KeyRing:
    """One worker's view of the shared key set, with the :class:`KeySet` methods tokens use.

    :param box: seals and opens private keys (from ``SECRET_KEY`` and its fallbacks).
    :param legacy_dir: PEM files from before keys lived in storage, imported on first write.
    """

    def __init__(self, store: Store, box: MultiFernet, policy: Policy, clock: Clock, *,
                 check_interval: float, legacy_dir: Path | None = None) -> None:
        self._store = store
        self._box = box
        self.policy = policy
        self._clock = clock
        self._interval = check_interval
        self._legacy_dir = legacy_dir
        self._set = KeySet([])
        self._version: str | None = None
        self._checked = float("-inf")
        self._forced = float("-inf")
        self._parsed: dict[str, SigningKey] = {}
        self._lock = threading.Lock()
        self._failing = False
        #: Called after the set changed (e.g. to drop cached JWKS and discovery documents).
        self.listeners: list[Callable[[], None]] = []
        #: Keys this process created (``uauth init`` reports them).
        self.added: list[SigningKey] = []

    # --- the KeySet face, fresh within the check interval ------------------------------------

    def current(self) -> KeySet:
        now = self._clock()
        if now - self._checked >= self._interval or now < self._checked:
            self.refresh()
        return self._set

    def signing_key(self, alg: str, now: float | None = None) -> SigningKey:
        keys = self.current()
        if not len(keys):
            raise StorageUnavailable("signing keys are not loaded: storage was unavailable")
        return keys.signing_key(alg, self._clock() if now is None else now)

    def verification_key(self, kid: str) -> SigningKey | None:
        key = self.current().verification_key(kid)
        now = self._clock()
        if key is None and (now - self._forced >= UNKNOWN_KID_CHECK or now < self._forced):
            self._forced = now  # a key rotated in elsewhere moments ago; never a storm of reads
            self.refresh()
            key = self._set.verification_key(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        return self.current().jwks()

    def ready(self) -> bool:
        """Every enabled algorithm has a key that signs now."""
        keys = self.current().keys
        now = int(self._clock())
        return all(_due(keys, alg, now) for alg in self.policy.algs)

    # --- keeping up with storage --------------------------------------------------------------

    def start(self) -> None:
        """First load at start-up: creates missing keys, fails loudly on a wrong SECRET_KEY, and
        tolerates an unreachable store (the worker starts, /readyz says so, checks go on)."""
        try:
            self._sync()
            self._maintain()
        except StorageError as exc:
            self._checked = self._clock()
            self._failing = True
            log.warning("signing keys not loaded yet: %s", exc)

    def refresh(self) -> None:
        """Reload if another process changed the set; add or retire keys that are due."""
        if not self._lock.acquire(blocking=False):
            return  # another thread of this worker is at it; use the set we have
        try:
            self._checked = self._clock()
            self._sync()
            self._maintain()
            if self._failing:
                log.info("signing keys reloaded from storage")
            self._failing = False
        except (StorageError, KeySealError) as exc:
            if not self._failing:
                log.error("signing keys not refreshed (keeping the loaded set): %s", exc)
            self._failing = True
        finally:
            self._lock.release()

    def _sync(self) -> None:
        marker = self._store.find(KEYSET, "version")
        version = None if marker is None else str(marker["version"])
        if version is not None and version == self._version:
            return
        self._load(self._store.find(KEYSET, "current"))

    def _load(self, record: dict[str, Any] | None) -> None:
        entries = [] if record is None else list(record["keys"])
        parsed: dict[str, SigningKey] = {}
        for entry in entries:
            sealed = str(entry["sealed"])
            parsed[sealed] = self._parsed.get(sealed) or unseal(entry, self._box)
        changed = set(parsed) != set(self._parsed) or self._version is None
        self._parsed = parsed
        self._set = KeySet(list(parsed.values()))
        self._version = None if record is None else str(record["version"])
        if changed:
            for listener in self.listeners:
                listener()

    def _maintain(self) -> None:
        now = int(self._clock())
        add, retire = plan(self._set.keys, self.policy, now)
        if not add and not retire:
            return
        starving = any(not _due(self._set.keys, alg, now) for alg in self.policy.algs)
        self._update(lambda keys: _apply(keys, *plan(keys, self.policy, now)),
                     wait=LOCK_WAIT if starving else 0.0)

    # --- changing the set (under the storage lock) --------------------------------------------

    def _update(self, change: Callable[[list[SigningKey]], list[SigningKey]], *,
                wait: float) -> bool:
        """Apply ``change`` to the stored set under the lock; False if another writer held it."""
        if not self._acquire(wait):
            self._sync()  # the holder may just have written what we wanted
            return False
        try:
            record = self._store.find(KEYSET, "current")
            if record is None:
                stored = self._imported()
            else:
                self._load(record)
                stored = self._set.keys
            updated = change(list(stored))
            if record is not None and {k.kid for k in updated} == {k.kid for k in stored}:
                return True
            entries = {str(e["kid"]): e for e in (record or {}).get("keys", [])}
            version = secrets.token_urlsafe(12)
            new_record = {"version": version,
                          "keys": [entries.get(k.kid) or seal(k, self._box) for k in updated]}
            self._store.save(KEYSET, "current", new_record, ttl=None)
            self._store.save(KEYSET, "version", {"version": version}, ttl=None)
            for kid in {k.kid for k in stored} - {k.kid for k in updated}:
                log.info("signing key %s retired", kid)
            for key in updated:
                if key.kid not in {k.kid for k in stored}:
                    self.added.append(key)
                    log.info("signing key %s (%s) added; signs from %s", key.kid, key.alg,
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.created)))
            self._load(new_record)
            return True
        finally:
            self._store.delete(KEYSET, "lock")

    def _acquire(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        holder = {"pid": os.getpid(), "at": int(self._clock())}
        while not self._store.add(KEYSET, "lock", holder, ttl=LOCK_TTL):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _imported(self) -> list[SigningKey]:
        """Keys from ``<instance>/keys/*.pem`` (the layout before storage), for the first write."""
        if self._legacy_dir is None or not self._legacy_dir.is_dir():
            return []
        keys = KeySet.load(self._legacy_dir).keys
        if keys:
            log.warning("imported %d signing key(s) from %s into storage; that folder is no "
                        "longer read and may be deleted", len(keys), self._legacy_dir)
        return keys

    # --- the admin CLI -------------------------------------------------------------------------

    def describe(self) -> list[KeyInfo]:
        self._checked = self._clock()
        self._sync()
        return describe(self._set.keys, self.policy, int(self._clock()))

    def rotate(self, algs: list[str] | tuple[str, ...], *, immediately: bool = False
               ) -> list[SigningKey]:
        """Add a key per algorithm; it signs after ``UAUTH_KEY_PREPUBLISH`` unless
        ``immediately``."""
        now = int(self._clock())
        start = now if immediately else now + self.policy.prepublish
        fresh: list[SigningKey] = []

        def change(keys: list[SigningKey]) -> list[SigningKey]:
            fresh[:] = [new_signing_key(alg, _after_all(keys, alg, start)) for alg in algs]
            return keys + fresh

        if not self._update(change, wait=LOCK_WAIT):
            raise StorageUnavailable("another process is changing the key set; try again")
        return fresh

    def retire(self, kid: str) -> SigningKey | None:
        """Delete a key now (e.g. compromised). An active key of an enabled algorithm is first
        replaced by a new key that signs at once. Returns the replacement, if one was made."""
        now = int(self._clock())
        made: list[SigningKey] = []

        def change(keys: list[SigningKey]) -> list[SigningKey]:
            doomed = next((k for k in keys if k.kid == kid), None)
            if doomed is None:
                raise LookupError(f"no signing key {kid!r}; see `uauth keys list`")
            due = _due(keys, doomed.alg, now)
            kept = [k for k in keys if k.kid != kid]
            if doomed.alg in self.policy.algs and due and due[-1] is doomed:
                made.append(new_signing_key(doomed.alg, _after_all(
                    [k for k in kept if k.created <= now], doomed.alg, now)))
            return kept + made

        if not self._update(change, wait=LOCK_WAIT):
            raise StorageUnavailable("another process is changing the key set; try again")
        return made[0] if made else None


def _after_all(keys: list[SigningKey], alg: str, start: int) -> int:
    """``start``, or a second after the latest key of ``alg`` starting then or later: keys are
    ordered by start time, and a tie must not let an older key go on signing."""
    starts = [k.created for k in keys if k.alg == alg and k.created >= start]
    return max(starts) + 1 if starts else start


def _apply(keys: list[SigningKey], add: list[tuple[str, int]], retire: list[str]
           ) -> list[SigningKey]:
    kept = [k for k in keys if k.kid not in set(retire)]
    return kept + [new_signing_key(alg, created) for alg, created in add]
