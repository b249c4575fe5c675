"""Passkeys (WebAuthn Level 2/3) with py_webauthn: the relying party's ceremonies, no Flask.

The relying party ID is the issuer's host (``UAUTH_WEBAUTHN_RP_ID`` may name a parent domain);
the expected origin is the issuer's origin. Browsers refuse an IP address as RP ID
(``SecurityError: This is an invalid domain``), so an issuer on ``127.0.0.1`` has no passkeys:
:func:`unavailable_reason` says why, and what to set.

Registration asks for a discoverable credential (a passkey) and user verification; sign-in
accepts only user-verified assertions, so a passkey alone is a multi-factor login (RFC 8176:
``hwk`` or ``swk``, ``user``, ``mfa``). Sign counts must grow when the authenticator keeps one,
and the backup-eligible flag may never change for a credential (WebAuthn L3 §6.1.3).

py_webauthn is imported by the ceremonies themselves, on a worker's first passkey request: it
and its dependencies hold 5 MB per worker, and most requests (every token, userinfo and
password login) never need it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Milliseconds the browser gives the person; the server-side challenge lives a little longer.
TIMEOUT_MS = 120_000
CHALLENGE_TTL = 180
#: Longest credential JSON worth parsing (an attestation with a certificate chain is ~4 KiB).
MAX_RESPONSE_BYTES = 16_384


class PasskeyError(Exception):
    """A WebAuthn response that must be refused; the message is for logs, not for people."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origin: str


def unavailable_reason(issuer: str, rp_id: str) -> str | None:
    """Why passkeys cannot work with this issuer, in words for the account page; None if they
    can."""
    host = urlsplit(issuer).hostname or ""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return (f"Passkeys need a domain name: browsers refuse the IP address {host} as a "
                "passkey's relying party. Set UAUTH_ISSUER to a name, such as "
                "http://localhost:5000 on this machine or https://id.example.com.")
    if rp_id != host and not host.endswith("." + rp_id):
        return (f"UAUTH_WEBAUTHN_RP_ID ({rp_id}) must be the issuer's host ({host}) or a "
                "parent domain of it.")
    return None


def relying_party(issuer: str, configured_rp_id: str = "") -> RelyingParty:
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    return RelyingParty(id=configured_rp_id or host, name=host,
                        origin=f"{parts.scheme}://{parts.netloc}")


def registration_options(rp: RelyingParty, *, user_handle: bytes, username: str,
                         display_name: str, existing: list[str]) -> tuple[bytes, str]:
    """``(challenge, options JSON)`` for ``navigator.credentials.create``: a discoverable
    credential with user verification, none of the person's existing ones again."""
    from webauthn import generate_registration_options
    from webauthn import options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import AuthenticatorSelectionCriteria
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor
    from webauthn.helpers.structs import ResidentKeyRequirement
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=user_handle, user_name=username,
        user_display_name=display_name, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c))
                             for c in existing],
    )
    return options.challenge, options_to_json(options)


def authentication_options(rp: RelyingParty, allowed: list[tuple[str, list[str]]] | None = None
                           ) -> tuple[bytes, str]:
    """``(challenge, options JSON)`` for ``navigator.credentials.get``; ``allowed`` lists
    ``(credential id, transports)`` for a second factor, none for a discoverable sign-in."""
    from webauthn import generate_authentication_options
    from webauthn import options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import AuthenticatorTransport
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor
    from webauthn.helpers.structs import UserVerificationRequirement

    descriptors = [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(cid),
        transports=[AuthenticatorTransport(t) for t in transports
                    if t in AuthenticatorTransport._value2member_map_])
        for cid, transports in allowed or []]
    options = generate_authentication_options(
        rp_id=rp.id, timeout=TIMEOUT_MS, allow_credentials=descriptors or None,
        user_verification=UserVerificationRequirement.REQUIRED)
    return options.challenge, options_to_json(options)


@dataclass(frozen=True)
class NewCredential:
    credential_id: str
    public_key: str
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    aaguid: str
    transports: list[str]


def parse(raw: str | bytes) -> dict[str, Any]:
    """The browser's credential JSON, bounded; :class:`PasskeyError` if it is not one."""
    if len(raw) > MAX_RESPONSE_BYTES:
        raise PasskeyError("response too large")
    try:
        data = json.loads(raw)
    except ValueError:
        raise PasskeyError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(
            data.get("response"), dict):
        raise PasskeyError("not a WebAuthn credential")
    return data


def verify_registration(rp: RelyingParty, credential: dict[str, Any], challenge: bytes
                        ) -> NewCredential:
    from webauthn import verify_registration_response
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import CredentialDeviceType

    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"registration refused: {exc}") from None
    transports = credential["response"].get("transports") or []
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up, aaguid=verified.aaguid,
        transports=[str(t) for t in transports if isinstance(t, str)][:8],
    )


@dataclass(frozen=True)
class Assertion:
    sign_count: int
    backed_up: bool


def verify_assertion(rp: RelyingParty, credential: dict[str, Any], challenge: bytes, *,
                     public_key: str, sign_count: int, backup_eligible: bool) -> Assertion:
    """Check an assertion against the stored credential.

    py_webauthn refuses a sign count that did not grow (when either count is non-zero): a
    cloned authenticator (WebAuthn §6.1.1). The backup-eligible flag is fixed at creation.
    """
    from webauthn import verify_authentication_response
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import CredentialDeviceType

    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=base64url_to_bytes(public_key),
            credential_current_sign_count=sign_count, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"assertion refused: {exc}") from None
    eligible = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    if eligible != backup_eligible:
        raise PasskeyError("assertion refused: the backup eligibility flag changed")
    return Assertion(verified.new_sign_count, verified.credential_backed_up)


def amr_of(backup_eligible: bool) -> list[str]:
    """RFC 8176 methods of a user-verified passkey: a synced (backup-eligible) key is held in
    software (``swk``), a device-bound one in hardware (``hwk``)."""
    return ["swk" if backup_eligible else "hwk", "user", "mfa"]
