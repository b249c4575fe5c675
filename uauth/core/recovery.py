"""Recovery codes: ten one-time codes a person keeps on paper for when their second factor is
lost. Stored only as digests (:func:`uauth.storage.hash_key` of the user id and the code), each
redeemable once (:mod:`uauth.factors` consumes them atomically).
"""

from __future__ import annotations

import secrets

from uauth.storage import hash_key

COUNT = 10
#: Crockford-like alphabet without look-alikes (no 0/O, 1/I/L).
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
#: 3 groups of 4 characters: log2(31) * 12 ≈ 59 bits per code.
_GROUPS = 3


def new_codes(count: int = COUNT) -> list[str]:
    """Fresh random codes, formatted ``xxxx-xxxx-xxxx``."""
    return ["-".join("".join(secrets.choice(_ALPHABET) for _ in range(4))
                     for _ in range(_GROUPS)) for _ in range(count)]


def normalise(code: str) -> str:
    """Case, spaces and dashes do not matter when a code is typed back."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def looks_like_code(code: str) -> bool:
    text = normalise(code)
    return len(text) == 4 * _GROUPS and all(ch in _ALPHABET for ch in text)


def digest(user_id: str, code: str) -> str:
    """Storage key of one user's code: another user's code never matches."""
    return hash_key(f"{user_id}:{normalise(code)}")
