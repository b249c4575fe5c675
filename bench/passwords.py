"""What a password hash costs, in-process: uauth's argon2id, and a KDF-hashed client secret.

Password logins are dominated by argon2id by design (OWASP's parameters, see ``uauth/users.py``).
Client secrets are high-entropy, so uauth checks them with SHA-256 + a constant-time compare; the
PBKDF2 figure shows what a token endpoint pays when it hashes client secrets like passwords
(as django-oauth-toolkit does with Django's default hasher).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from uauth.core.users import HASHER
from uauth.storage import hash_key

#: Django 5.2's default PBKDF2-SHA256 iteration count (its default password hasher).
DJANGO_PBKDF2_ITERATIONS = 1_000_000


@dataclass(frozen=True)
class Cost:
    name: str
    cpu_ms: float
    wall_ms: float


def measure(name: str, fn: Callable[[], object], *, seconds: float = 1.0,
            at_least: int = 3) -> Cost:
    fn()  # warm caches and lazy initialisation
    done = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while done < at_least or time.perf_counter() - wall0 < seconds:
        fn()
        done += 1
    return Cost(name, (time.process_time() - cpu0) * 1e3 / done,
                (time.perf_counter() - wall0) * 1e3 / done)


def least(name: str, fn: Callable[[], object], *, seconds: float = 1.0, timings: int = 5
          ) -> Cost:
    """The least CPU of ``timings`` timings of ``seconds / timings`` each: on a shared machine
    a neighbour's burst only ever adds to a timing, so the least is the code's own cost (what
    ``timeit`` reports, and ``bench.profile --repeat``)."""
    return min((measure(name, fn, seconds=seconds / timings) for _ in range(max(1, timings))),
               key=lambda cost: cost.cpu_ms)


def password_costs(seconds: float = 1.0) -> list[Cost]:
    password = "correct horse battery staple"  # noqa: S105 - measured, never stored
    stored = HASHER.hash(password)
    secret = "x" * 43
    label = (f"argon2id m={HASHER.memory_cost // 1024} MiB t={HASHER.time_cost} "
             f"p={HASHER.parallelism}")
    return [
        measure(f"{label}: verify (one login)", lambda: HASHER.verify(stored, password),
                seconds=seconds),
        measure(f"{label}: hash (set/rehash password)", lambda: HASHER.hash(password),
                seconds=seconds),
        measure(f"PBKDF2-SHA256 {DJANGO_PBKDF2_ITERATIONS:,} it (a KDF-hashed client secret)",
                lambda: hashlib.pbkdf2_hmac("sha256", secret.encode(), b"salt" * 4,
                                            DJANGO_PBKDF2_ITERATIONS), seconds=seconds, at_least=2),
        measure("SHA-256 (uauth's client-secret check)", lambda: hash_key(secret),
                seconds=min(seconds, 0.2)),
    ]
