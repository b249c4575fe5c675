"""Throttling of password guessing at /login and of failed client authentication at /token.

Failures are counted in the configured storage with one atomic :meth:`Store.incr` per key, so
every worker of every host sees the same counts. A count's window starts at its first failure
and never extends (``UAUTH_THROTTLE_WINDOW``). Past ``free`` failures, each further failure
makes the next attempt wait, 1 s doubling up to ``UAUTH_THROTTLE_MAX_DELAY``; at ``lock``
failures the key is locked until the window ends. A refused attempt is not counted, so
hammering a locked key never prolongs the lock: every lock ends.

Login failures count per account (the username as typed, canonicalised, so an unknown name
is throttled exactly like a known one) and per client IP address. A browser that has signed in
to the account before carries a signed device cookie and counts on its own key instead of the
account's, so an attacker elsewhere cannot lock the owner out (OWASP's "device cookies").

Client authentication failures at the token endpoints count per client and IP address, and per
IP address. They touch storage only when a client fails: each worker remembers the keys it saw
blocked and refuses them without a lookup; a correct secret is otherwise never held up, since a
256-bit secret cannot be guessed and a client id, which is public, must be no lever to lock a
client out.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer

from uauth.core.records import BLOCK
from uauth.core.records import FAILURES

from .users import canonical_username

if TYPE_CHECKING:
    from uauth.core.settings import Settings
    from uauth.core.state import State

#: The cookie a browser gets at a successful login, naming the account it signed in to.
DEVICE_COOKIE = "uauth_device"
DEVICE_MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class Limit:
    """Failures allowed without delay, and failures that lock, per window."""

    free: int
    lock: int


@dataclass(frozen=True)
class Policy:
    enabled: bool
    window: int
    max_delay: int
    key_limit: Limit
    ip_limit: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            enabled=settings.throttle,
            window=settings.throttle_window,
            max_delay=settings.throttle_max_delay,
            key_limit=Limit(settings.throttle_free_failures,
                            settings.throttle_lock_failures),
            ip_limit=Limit(settings.throttle_ip_free_failures,
                           settings.throttle_ip_lock_failures),
        )

    def delay(self, failures: int, limit: Limit) -> int:
        """Seconds the next attempt must wait after ``failures`` failures (0: none)."""
        if failures >= limit.lock:
            return self.window
        if failures <= limit.free:
            return 0
        return int(min(2 ** min(failures - limit.free - 1, 30), self.max_delay))


def digest(text: str) -> str:
    """Keys never carry a username or client id in clear."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Throttle:
    """One app's throttling; keys are ``(name, limit)`` pairs, the limit per or IP-wide."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.policy = Policy.from_settings(state.settings)
        #: key -> monotonic time until which this worker refuses it without a lookup.
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- storage-checked (logins: a correct password must never pass a lock) --------------

    def wait(self, keys: Iterable[str]) -> int:
        """Seconds until an attempt under these keys may run (0: now); one read per key."""
        if not self.policy.enabled:
            return 0
        now = self.state.clock()
        blocks = self.state.store.find_many(BLOCK, list(keys))
        return max((math.ceil(float(b["until"]) - now) for b in blocks if b is not None),
                   default=0)

    def failed(self, keys: dict[str, Limit], *, shared: bool = True) -> int:
        """Count a failure under each key; returns the seconds the next attempt must wait.

        :param shared: record a block in storage for :meth:`wait`; without it only this
            worker remembers it (:meth:`locally_blocked`), and the others learn it from the
            count at their next failure.
        """
        if not self.policy.enabled:
            return 0
        store, now = self.state.store, self.state.clock()
        wait = 0
        for key, limit in keys.items():
            failures = store.incr(FAILURES, key, self.policy.window)
            delay = self.policy.delay(failures, limit)
            if delay and shared:
                store.save(BLOCK, key, {"until": now + delay}, ttl=delay)
            elif delay:
                self._remember(key, delay)
            wait = max(wait, delay)
        return wait

    # -- failure-driven (client authentication: nothing read on the success path) ---------

    def locally_blocked(self, keys: Iterable[str]) -> int:
        """Seconds this worker still refuses any of ``keys`` for (0: not blocked here)."""
        if not self.policy.enabled or not self._blocked:
            return 0
        now = time.monotonic()
        with self._lock:
            left = [until - now for key in keys if (until := self._blocked.get(key, 0)) > now]
        return math.ceil(max(left)) if left else 0

    def _remember(self, key: str, seconds: int) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._blocked) > 10_000:  # an attack from many addresses: keep it bounded
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._blocked[key] = now + seconds

    # -- keys ------------------------------------------------------------------------------

    def login_keys(self, username: str, ip: str | None, device: str | None) -> dict[str, Limit]:
        account = "login:" + digest(canonical_username(username))
        if device is not None:
            account += ":" + device
        return {account: self.policy.key_limit, "login-ip:" + (ip or "-"): self.policy.ip_limit}

    def reauth_keys(self, user_id: str, ip: str | None) -> dict[str, Limit]:
        """Re-entering the current password (changing it on /account): its own per-account
        count, so someone holding a stolen session who guesses it cannot lock the owner out of
        signing in, and the shared per-IP budget."""
        return {"reauth:" + digest(user_id): self.policy.key_limit,
                "login-ip:" + (ip or "-"): self.policy.ip_limit}

    def client_keys(self, client_id: str, ip: str | None) -> dict[str, Limit]:
        return {"client:" + digest(client_id) + ":" + (ip or "-"): self.policy.key_limit,
                "client-ip:" + (ip or "-"): self.policy.ip_limit}

    def user_code_keys(self, user_id: str, ip: str | None) -> dict[str, Limit]:
        """Wrong device user codes (RFC 8628 §5.1: guessing is throttled), per person and
        address."""
        return {"device-code:" + digest(user_id): self.policy.key_limit,
                "device-code-ip:" + (ip or "-"): self.policy.ip_limit}


# -- device cookies ------------------------------------------------------------------------

def _serializer(secret_key: str | bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="uauth.device")


def device_for(cookie: str | None, username: str, secret_key: str | bytes) -> str | None:
    """The device id in a valid cookie from a login to ``username``, else None."""
    if not cookie or len(cookie) > 512:
        return None
    try:
        data = _serializer(secret_key).loads(cookie, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("a") != digest(canonical_username(username)):
        return None
    device = data.get("d")
    return device if isinstance(device, str) else None


def new_device_cookie(username: str, secret_key: str | bytes) -> str:
    """The value of a fresh device cookie for a login to ``username`` (the web layer sets it,
    ``HttpOnly``, ``SameSite=Lax``, for :data:`DEVICE_MAX_AGE` seconds)."""
    return str(_serializer(secret_key).dumps(
        {"a": digest(canonical_username(username)), "d": secrets.token_urlsafe(12)}))
