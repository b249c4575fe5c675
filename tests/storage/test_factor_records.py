"""The contract suite for the second-factor record kinds (uauth/factors.py) on every backend:
one user's factors, passkey index and recovery codes live in one group and go together; a
recovery code, a TOTP time step and a WebAuthn challenge are each redeemed once, even when
threads race for them; pending enrolments and challenges expire."""

from __future__ import annotations

import threading

from cryptography.fernet import Fernet
from cryptography.fernet import MultiFernet

from tests.conftest import FakeClock
from tests.conftest import run_in_threads
from uauth.core import totp
from uauth.core.factors import KINDS
from uauth.core.factors import PENDING_TTL
from uauth.core.factors import Factors
from uauth.core.factors import group
from uauth.core.passkeys import NewCredential
from uauth.core.records import CHALLENGE
from uauth.core.records import FACTOR
from uauth.core.records import PASSKEY
from uauth.core.records import RECOVERY_CODE
from uauth.storage import Store


def factors(store: Store, clock: FakeClock) -> Factors:
    return Factors(store, MultiFernet([Fernet(Fernet.generate_key())]), clock)


def credential(cid: str) -> NewCredential:
    return NewCredential(credential_id=cid, public_key="pk", sign_count=0, backup_eligible=False,
                         backed_up=False, aaguid="", transports=["internal"])


def test_one_users_records_live_and_go_together(store: Store, clock: FakeClock) -> None:
    f = factors(store, clock)
    totp_factor, secret = f.add_totp("u1")
    passkey = f.add_passkey("u1", credential("cred-1"), "Laptop")
    f.add_passkey("u2", credential("cred-2"), "Phone")
    codes = f.new_recovery_codes("u1")
    kinds = sorted(kind for kind, _, _ in store.grant_records(group("u1")))
    assert kinds == sorted([FACTOR, FACTOR, PASSKEY, *[RECOVERY_CODE] * 10])
    assert {kind for kind, _, _ in store.grant_records(group("u1"))} <= set(KINDS)
    assert secret not in str(store.find(FACTOR, totp_factor.id)), "sealed at rest"
    assert f.secret_of(totp_factor) == secret
    found = f.passkey("cred-1")
    assert found is not None and found.id == passkey.id and found.user_id == "u1"
    assert f.use_recovery_code("u2", codes[0]) is None, "another user's code never matches"

    assert f.reset("u1") == 13
    assert f.of("u1") == [] and f.passkey("cred-1") is None and f.recovery_left("u1") == 0
    assert f.passkey("cred-2") is not None, "another user's passkey stays"


def test_recovery_code_race_has_one_winner(store: Store, clock: FakeClock) -> None:
    f = factors(store, clock)
    f.add_totp("u1")
    code = f.new_recovery_codes("u1")[3]
    threads, barrier = 8, threading.Barrier(8)

    def contender() -> int | None:
        barrier.wait()
        return f.use_recovery_code("u1", code)

    outcomes = run_in_threads(contender, threads)
    assert sorted(outcomes, key=lambda x: x is None) == [9] + [None] * 7
    assert f.recovery_left("u1") == 9


def test_totp_step_accepted_once_even_in_a_race(store: Store, clock: FakeClock) -> None:
    f = factors(store, clock)
    _, secret = f.add_totp("u1")
    code = totp.code_at(secret, clock())
    barrier = threading.Barrier(6)

    def contender() -> bool:
        barrier.wait()
        return f.check_totp("u1", code) is not None

    wins = run_in_threads(contender, 6)
    assert wins.count(True) == 1


def test_pending_enrolment_and_challenges_expire(store: Store, clock: FakeClock) -> None:
    f = factors(store, clock)
    pending, secret = f.begin_totp("u1")
    assert not f.has_second_factor("u1") and f.of("u1", pending=True) == [pending]
    ceremony = f.save_challenge(b"c" * 32, "login", None, ttl=60)
    other = f.save_challenge(b"d" * 32, "login", None, ttl=60)
    assert f.take_challenge(ceremony, "register") is None, "for another purpose"
    assert f.take_challenge(ceremony, "login") is None, "consumed by the wrong-purpose try"
    taken = f.take_challenge(other, "login")
    assert taken is not None and taken.challenge == b"d" * 32
    assert f.take_challenge(other, "login") is None, "once only"
    late = f.save_challenge(b"e" * 32, "login", None, ttl=60)
    clock.advance(PENDING_TTL + 1)
    assert f.take_challenge(late, "login") is None
    assert f.get("u1", pending.id) is None
    assert not f.confirm_totp("u1", pending.id, totp.code_at(secret, clock()))
    assert store.find(CHALLENGE, late) is None
