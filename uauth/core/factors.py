"""Second factors and passkeys over the generic :class:`~uauth.storage.Store`.

Record kinds (all of one user's live in the group ``factors-of:<user id>``, so listing them is
one read and ``uauth user mfa reset`` is one :meth:`Store.revoke_grant`):

``factor``
    One TOTP device or passkey, under a random id. TOTP secrets are sealed with ``SECRET_KEY``
    (as signing keys are, under their own derived key); a TOTP factor is pending, with a
    lifetime, until its first code confirms it.
``passkey``
    Credential id → factor id, for a discoverable sign-in that starts with no username.
``recovery_code``
    The digest of one recovery code; consumed atomically, then deleted.

Outside the group, with lifetimes: ``totp_used`` (a user's accepted time step, added once:
a code is accepted once only) and ``webauthn_challenge`` (one ceremony's challenge, bound to
the browser session that asked for it, consumed once).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet

from uauth.core import recovery
from uauth.core import totp
from uauth.core.models import Model
from uauth.core.passkeys import NewCredential
from uauth.core.records import CHALLENGE
from uauth.core.records import FACTOR
from uauth.core.records import PASSKEY
from uauth.core.records import RECOVERY_CODE
from uauth.core.records import TOTP_USED
from uauth.storage import Store
from uauth.storage import hash_key

#: Every record kind this module keeps (listed in :mod:`uauth.core.records`).
KINDS = (FACTOR, PASSKEY, RECOVERY_CODE, TOTP_USED, CHALLENGE)

#: Seconds a TOTP enrolment waits for its first code.
PENDING_TTL = 900
#: HKDF ``info`` of the key TOTP secrets are sealed with.
SEAL_INFO = b"uauth totp secrets v1"


def group(user_id: str) -> str:
    return f"factors-of:{user_id}"


@dataclass
class Factor(Model):
    id: str
    user_id: str
    type: str  # "totp" or "passkey"
    name: str
    created_at: int
    last_used_at: int = 0
    active: bool = True
    #: TOTP: the base32 secret, sealed.
    sealed_secret: str | None = None
    #: Passkey: base64url credential id and COSE public key, and what the spec asks us to keep.
    credential_id: str | None = None
    public_key: str | None = None
    sign_count: int = 0
    backup_eligible: bool = False
    backed_up: bool = False
    aaguid: str = ""
    transports: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Challenge:
    challenge: bytes
    purpose: str
    user_id: str | None


@dataclass(frozen=True)
class Overview:
    """A person's active factors, oldest first, and how many recovery codes they have left."""

    factors: list[Factor]
    recovery_left: int


def _factors(records: list[tuple[str, str, dict[str, Any]]], *, pending: bool) -> list[Factor]:
    found = [Factor.from_record(r) for kind, _, r in records if kind == FACTOR]
    return sorted((f for f in found if f.active or pending), key=lambda f: f.created_at)


def _codes_left(records: list[tuple[str, str, dict[str, Any]]]) -> int:
    return sum(1 for kind, _, _ in records if kind == RECOVERY_CODE)


class Factors:
    """One app's factor store; ``clock`` is the app's (injected in tests)."""

    def __init__(self, store: Store, box: MultiFernet, clock: Callable[[], float]) -> None:
        self.store = store
        self.box = box
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    # -- listing -------------------------------------------------------------------------

    def _records(self, user_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        return self.store.grant_records(group(user_id))

    def of(self, user_id: str, *, pending: bool = False) -> list[Factor]:
        """A user's factors, oldest first (active ones only unless ``pending``)."""
        return _factors(self._records(user_id), pending=pending)

    def overview(self, user_id: str) -> Overview:
        """:meth:`of` and :meth:`recovery_left` from one listing (the account page's)."""
        records = self._records(user_id)
        return Overview(_factors(records, pending=False), _codes_left(records))

    def expect(self, user_id: str) -> None:
        """:meth:`has_second_factor` of this user follows within the store's batch: its
        listing rides the batch's next read (``Store.prefetch_grant``)."""
        self.store.prefetch_grant(group(user_id))

    def has_second_factor(self, user_id: str) -> bool:
        return any(kind == FACTOR and r.get("active") for kind, _, r in self._records(user_id))

    def get(self, user_id: str, factor_id: str) -> Factor | None:
        record = self.store.find(FACTOR, factor_id)
        if record is None or record.get("user_id") != user_id:
            return None
        return Factor.from_record(record)

    def _save(self, factor: Factor, ttl: int | None = None) -> None:
        self.store.save(FACTOR, factor.id, factor.to_record(), ttl, grant_id=group(factor.user_id))

    def remove(self, user_id: str, factor_id: str) -> Factor | None:
        factor = self.get(user_id, factor_id)
        if factor is None:
            return None
        self.store.delete(FACTOR, factor.id)
        if factor.credential_id:
            self.store.delete(PASSKEY, factor.credential_id)
        if not self.has_second_factor(user_id):  # codes only make sense beside a factor
            for kind, key, _ in self._records(user_id):
                if kind == RECOVERY_CODE:
                    self.store.delete(kind, key)
        return factor

    def reset(self, user_id: str) -> int:
        """Remove every factor, passkey and recovery code of a user; returns how many."""
        return self.store.revoke_grant(group(user_id))

    # -- TOTP ----------------------------------------------------------------------------

    def begin_totp(self, user_id: str, name: str = "Authenticator app") -> tuple[Factor, str]:
        """A pending TOTP factor and its secret (shown once, for the QR code)."""
        secret = totp.new_secret()
        factor = Factor(id=secrets.token_urlsafe(16), user_id=user_id, type="totp", name=name,
                        created_at=self.now(), active=False,
                        sealed_secret=self.box.encrypt(secret.encode()).decode("ascii"))
        self._save(factor, PENDING_TTL)
        return factor, secret

    def add_totp(self, user_id: str, name: str = "Authenticator app") -> tuple[Factor, str]:
        """An active TOTP factor at once (an operator provisioning a device)."""
        factor, secret = self.begin_totp(user_id, name)
        factor.active = True
        self._save(factor)
        return factor, secret

    def secret_of(self, factor: Factor) -> str | None:
        if not factor.sealed_secret:
            return None
        try:
            return self.box.decrypt(factor.sealed_secret.encode("ascii")).decode()
        except InvalidToken:
            return None  # sealed under a SECRET_KEY that is gone: the factor cannot be used

    def _accept_step(self, factor: Factor, code: str) -> bool:
        secret = self.secret_of(factor)
        if secret is None:
            return False
        step = totp.matching_step(secret, code, self.clock())
        if step is None:
            return False
        # Once per user and time step, atomically across workers (RFC 6238 §5.2).
        ttl = (totp.WINDOW * 2 + 2) * totp.STEP
        return self.store.add(TOTP_USED, hash_key(f"{factor.user_id}:{step}"), {"at": self.now()},
                              ttl)

    def confirm_totp(self, user_id: str, factor_id: str, code: str) -> bool:
        """Activate a pending TOTP factor with its first code."""
        factor = self.get(user_id, factor_id)
        if factor is None or factor.type != "totp" or factor.active:
            return False
        if not self._accept_step(factor, code):
            return False
        factor.active, factor.last_used_at = True, self.now()
        self._save(factor)
        return True

    def check_totp(self, user_id: str, code: str, listed: list[Factor] | None = None
                   ) -> Factor | None:
        """The active TOTP factor ``code`` belongs to, once per time step; else None.
        ``listed``: the user's factors as the caller has just read them (:meth:`of`)."""
        for factor in self.of(user_id) if listed is None else listed:
            if factor.type == "totp" and self._accept_step(factor, code):
                factor.last_used_at = self.now()
                self._save(factor)
                return factor
        return None

    # -- recovery codes ------------------------------------------------------------------

    def new_recovery_codes(self, user_id: str) -> list[str]:
        """Ten fresh codes replacing any earlier ones (shown once, stored as digests)."""
        for kind, key, _ in self._records(user_id):
            if kind == RECOVERY_CODE:
                self.store.delete(kind, key)
        codes = recovery.new_codes()
        for code in codes:
            self.store.save(RECOVERY_CODE, recovery.digest(user_id, code),
                            {"created_at": self.now()}, None, grant_id=group(user_id))
        return codes

    def recovery_left(self, user_id: str) -> int:
        return _codes_left(self._records(user_id))

    def use_recovery_code(self, user_id: str, code: str) -> int | None:
        """Redeem a code: how many are left, or None if it is not an unused code of this user.
        Of two concurrent uses of one code, exactly one wins (:meth:`Store.consume`)."""
        if not recovery.looks_like_code(code):
            return None
        key = recovery.digest(user_id, code)
        outcome = self.store.consume(RECOVERY_CODE, key)
        if outcome is None or not outcome.first:
            return None
        self.store.delete(RECOVERY_CODE, key)
        return self.recovery_left(user_id)

    # -- passkeys ------------------------------------------------------------------------

    def add_passkey(self, user_id: str, credential: NewCredential, name: str) -> Factor:
        factor = Factor(
            id=secrets.token_urlsafe(16), user_id=user_id, type="passkey", name=name,
            created_at=self.now(), credential_id=credential.credential_id,
            public_key=credential.public_key, sign_count=credential.sign_count,
            backup_eligible=credential.backup_eligible, backed_up=credential.backed_up,
            aaguid=credential.aaguid, transports=credential.transports)
        self._save(factor)
        self.store.save(PASSKEY, credential.credential_id,
                        {"user_id": user_id, "factor_id": factor.id}, None,
                        grant_id=group(user_id))
        return factor

    def passkey(self, credential_id: str) -> Factor | None:
        """The passkey factor with this credential id, whoever it belongs to."""
        index = self.passkey_index(credential_id)
        return None if index is None else self.passkey_of(index)

    def expect_passkey(self, credential_id: str) -> None:
        """:meth:`passkey_index` of this credential follows in the caller's batch
        (``Store.batch``): the index rides the batch's next read."""
        self.store.prefetch(PASSKEY, credential_id)

    def passkey_index(self, credential_id: str) -> tuple[str, str] | None:
        """Whose passkey this credential is: ``(user_id, factor_id)``. In a batch the passkey's
        record is then read with the next trip, for :meth:`passkey_of` (a sign-in spends its
        challenge in between)."""
        index = self.store.find(PASSKEY, credential_id)
        if index is None:
            return None
        self.store.prefetch(FACTOR, str(index["factor_id"]))
        return str(index["user_id"]), str(index["factor_id"])

    def passkey_of(self, index: tuple[str, str]) -> Factor | None:
        user_id, factor_id = index
        factor = self.get(user_id, factor_id)
        return factor if factor is not None and factor.type == "passkey" else None

    def passkey_used(self, factor: Factor, sign_count: int, backed_up: bool) -> None:
        factor.sign_count, factor.backed_up, factor.last_used_at = (
            sign_count, backed_up, self.now())
        self._save(factor)

    def credential_ids(self, user_id: str) -> list[str]:
        return [f.credential_id for f in self.of(user_id)
                if f.type == "passkey" and f.credential_id]

    # -- WebAuthn challenges -------------------------------------------------------------

    def save_challenge(self, challenge: bytes, purpose: str, user_id: str | None,
                       ttl: int) -> str:
        """Keep a ceremony's challenge; returns the id the browser session holds for it."""
        ceremony = secrets.token_urlsafe(24)
        self.store.save(CHALLENGE, hash_key(ceremony), {
            "challenge": challenge.hex(), "purpose": purpose, "user_id": user_id}, ttl)
        return ceremony

    def take_challenge(self, ceremony: str, purpose: str) -> Challenge | None:
        """The challenge of this session's ceremony, once only; None if unknown, expired,
        used or for another purpose."""
        outcome = self.store.consume(CHALLENGE, hash_key(ceremony))
        if outcome is None or not outcome.first or outcome.record.get("purpose") != purpose:
            return None
        record = outcome.record
        return Challenge(bytes.fromhex(record["challenge"]), purpose, record.get("user_id"))
