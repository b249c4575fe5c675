"""Device authorization (RFC 8628): the records behind device codes and user codes.

A device code (256 random bits) is the device's secret; a user code is what a person types:
eight letters from :data:`USER_CODE_ALPHABET` (no vowels, so no words; no look-alikes), shown
as ``BCDF-GHJK`` and read back case- and dash-insensitively. Both are stored as digests. The
device code's record says where the request stands (pending, approved, denied); when the device
last polled has a record of its own, so a poll never overwrites a decision; the user code's
record points at the request and is consumed, atomically, by the person's decision, so a user
code decides exactly once.

The protocol (endpoint and grant) is :mod:`uauth.oauth.grants.device_code`; the page where a
person enters the code is :mod:`uauth.web.views.device`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from dataclasses import field

from uauth.core.records import DEVICE_CODE
from uauth.core.records import DEVICE_POLL
from uauth.core.records import USER_CODE
from uauth.storage import Store
from uauth.storage import hash_key

from .models import Model

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
#: Records outlive ``expires_in`` by this much, so a late poll hears ``expired_token``.
GRACE = 300
#: RFC 8628 §3.5: each ``slow_down`` adds this many seconds to the interval.
SLOW_DOWN_STEP = 5

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"


def new_user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{chars[:4]}-{chars[4:]}"


def normalize_user_code(typed: str) -> str | None:
    """What a person typed, as stored: upper case, dashes and spaces dropped; None when it
    cannot be a user code (so it costs no lookup)."""
    code = "".join(ch for ch in typed.upper() if ch not in "- ")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


@dataclass
class DeviceGrant(Model):
    """Where one device authorization request stands (stored under its device code)."""

    client_id: str
    scope: str
    user_code_key: str
    expires_at: int
    interval: int
    status: str = PENDING
    user_id: str | None = None
    auth_time: int | None = None
    amr: list[str] = field(default_factory=list)

    # Authlib's DeviceCredentialMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class Started:
    device_code: str
    user_code: str


def start(store: Store, client_id: str, scope: str, *, ttl: int, interval: int, now: int
          ) -> Started:
    """Create a pending device request; a user code collision (one in billions per live
    code) draws another. The device code's record is held (``Store.batch``) and goes with the
    user code's ``add``: one trip; after a collision it is saved again with the new code."""
    device_code = secrets.token_urlsafe(32)
    with store.batch():
        while True:
            user_code = new_user_code()
            user_key = hash_key(normalize_user_code(user_code) or "")
            grant = DeviceGrant(client_id=client_id, scope=scope, user_code_key=user_key,
                                expires_at=now + ttl, interval=interval)
            store.save(DEVICE_CODE, hash_key(device_code), grant.to_record(), ttl=ttl + GRACE)
            if store.add(USER_CODE, user_key, {"device": hash_key(device_code)}, ttl=ttl):
                return Started(device_code, user_code)


def expect_user_code(store: Store, user_code: str) -> None:
    """:func:`find_by_user_code` of ``user_code`` follows in the caller's batch
    (``Store.batch``): the code's pointer rides the batch's next read (the throttle's)."""
    code = normalize_user_code(user_code)
    if code is not None:
        store.prefetch(USER_CODE, hash_key(code))


def find_by_user_code(store: Store, user_code: str) -> tuple[str, DeviceGrant] | None:
    """The pending request a typed user code names, with its device code's digest."""
    code = normalize_user_code(user_code)
    if code is None:
        return None
    pointer = store.find(USER_CODE, hash_key(code))
    if pointer is None:
        return None
    record = store.find(DEVICE_CODE, pointer["device"])
    if record is None:
        return None
    grant = DeviceGrant.from_record(record)
    return (pointer["device"], grant) if grant.status == PENDING else None


def decide(store: Store, device_key: str, grant: DeviceGrant, *, user_id: str | None,
           auth_time: int | None, amr: list[str], now: int) -> bool:
    """Record the person's decision (``user_id`` None: denied). False when the user code was
    used already (or expired meanwhile): only the first decision counts."""
    outcome = store.consume(USER_CODE, grant.user_code_key)
    if outcome is None or not outcome.first:
        return False
    grant.status = APPROVED if user_id is not None else DENIED
    grant.user_id, grant.auth_time, grant.amr = user_id, auth_time, list(amr)
    store.save(DEVICE_CODE, device_key, grant.to_record(),
               ttl=max(grant.expires_at - now, 1) + GRACE)
    return True


def find_device_grant(store: Store, device_code: str) -> DeviceGrant | None:
    """The request a polled device code names. In the poll's batch (``Store.batch``) when it
    last polled is read in the same trip: :func:`note_poll` asks for it next."""
    if len(device_code) > 512:
        return None
    key = hash_key(device_code)
    store.prefetch(DEVICE_POLL, key)
    record = store.find(DEVICE_CODE, key)
    return None if record is None else DeviceGrant.from_record(record)


def note_poll(store: Store, device_code: str, grant: DeviceGrant, now: int) -> bool:
    """Record a poll; True when it came sooner than the interval after the last one, which
    adds :data:`SLOW_DOWN_STEP` to the interval for this and every later poll (RFC 8628 §3.5)."""
    key = hash_key(device_code)
    last = store.find(DEVICE_POLL, key)
    interval = int(last["interval"]) if last else grant.interval
    too_fast = last is not None and now - int(last["at"]) < interval
    if too_fast:
        interval += SLOW_DOWN_STEP
    store.save(DEVICE_POLL, key, {"at": now, "interval": interval},
               ttl=max(grant.expires_at - now, 1) + GRACE)
    return too_fast


def redeem(store: Store, device_code: str) -> bool:
    """Spend an approved device code: exactly one poll gets the tokens."""
    outcome = store.consume(DEVICE_CODE, hash_key(device_code))
    return outcome is not None and outcome.first
