"""Time-based one-time passwords (RFC 6238) with pyotp: secrets, codes, the enrolment QR code.

No Flask and no storage here: :mod:`uauth.factors` keeps the (sealed) secrets and the time
steps already used, so a code is accepted once only.
"""

from __future__ import annotations

import pyotp

#: Seconds per code (RFC 6238 §4: X = 30).
STEP = 30
DIGITS = 6
#: Steps either side of now a code may come from (RFC 6238 §5.2: clock drift, typing time).
WINDOW = 1


def new_secret() -> str:
    """A 160-bit random secret in base32 (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code, drawn here (no external service sees the secret).
    segno is imported here, by the enrolment page alone (a worker's memory is kept for the rest)."""
    import segno

    svg: str = segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")
    return svg


def normalise(code: str) -> str:
    """What people type: spaces and dashes are dropped."""
    return "".join(ch for ch in code if not ch.isspace() and ch != "-")


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (within ±:data:`WINDOW` of ``now``) whose code is ``code``, or None.

    Every candidate is compared in constant time (pyotp's ``verify`` uses
    :func:`hmac.compare_digest`).
    """
    code = normalise(code)
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = int(now) // STEP
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if totp.verify(code, for_time=step * STEP) and found is None:
            found = step
    return found


def code_at(secret: str, now: float) -> str:
    """The code for ``now`` (the CLI and tests)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).at(int(now))
