"""A software WebAuthn authenticator: real ES256 keys, real CBOR and signatures, so the server's
py_webauthn verification runs exactly as for a browser (``fmt: none`` attestation, as Chromium
sends by default). Tests use it where a browser would add nothing; the Chromium tests use the
DevTools virtual authenticator instead.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.encode_cbor import encode_cbor

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str
    backup_eligible: bool = False
    user_verified: bool = True
    #: Start counting at 1 (0 would mean "no counter" and switch the check off).
    counts: bool = True
    credentials: list[Credential] = field(default_factory=list)

    def _flags(self, extra: int = 0) -> int:
        flags = UP | extra
        if self.user_verified:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """What ``navigator.credentials.create`` returns, as JSON."""
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big")}
        cred = Credential(secrets.token_bytes(16), key, options["rp"]["id"],
                          base64url_to_bytes(options["user"]["id"]))
        self.credentials.append(cred)
        auth_data = (hashlib.sha256(cred.rp_id.encode()).digest()
                     + bytes([self._flags(AT)]) + struct.pack(">I", cred.sign_count)
                     + bytes(16) + struct.pack(">H", len(cred.id)) + cred.id + encode_cbor(cose))
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": bytes_to_base64url(cred.id), "rawId": bytes_to_base64url(cred.id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(self._client_data(
                    "webauthn.create", options["challenge"], origin)),
                    "attestationObject": bytes_to_base64url(attestation),
                    "transports": ["internal"]}}

    def get(self, options: dict[str, Any], *, credential: Credential | None = None,
            origin: str | None = None, sign_count: int | None = None) -> dict[str, Any]:
        """What ``navigator.credentials.get`` returns, as JSON."""
        cred = credential or self.credentials[-1]
        if self.counts:
            cred.sign_count += 1
        count = cred.sign_count if sign_count is None else sign_count
        auth_data = (hashlib.sha256(cred.rp_id.encode()).digest() + bytes([self._flags()])
                     + struct.pack(">I", count))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = cred.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": bytes_to_base64url(cred.id), "rawId": bytes_to_base64url(cred.id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(client_data),
                             "authenticatorData": bytes_to_base64url(auth_data),
                             "signature": bytes_to_base64url(signature),
                             "userHandle": bytes_to_base64url(cred.user_handle)}}
