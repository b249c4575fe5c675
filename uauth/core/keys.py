"""Signing key material: generation, JWKs, sealing for storage, and the immutable :class:`KeySet`.

Keys are kept in the configured storage (see :mod:`uauth.core.keyring`), as PKCS#8 PEM sealed with a
key derived from the app's ``SECRET_KEY`` (Fernet: AES-CBC + HMAC), so a database dump or backup
alone cannot forge tokens. The ``kid`` is the RFC 7638 thumbprint of the public key. A key's
``created`` time is when it starts signing: the newest key of an algorithm whose time has come
signs, and every key in the set is in the JWKS, so a pre-published key (future ``created``) is
known to relying parties before its first token.

PEM files named ``<alg>-<created>.pem`` (the layout of ``<instance>/keys/`` before keys moved
into storage) can still be read, to import them once.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import urlsafe_b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import OKPAlgorithm
from jwt.algorithms import RSAAlgorithm

#: Algorithms uauth can sign with; RS256 first because OpenID Connect requires it.
SUPPORTED_ALGS = ("RS256", "PS256", "ES256", "EdDSA")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_NAME = re.compile(r"^(?P<alg>RS256|PS256|ES256|EdDSA)-(?P<created>\d+)\.pem$")


class KeyFileError(Exception):
    """A key file is unreadable or of the wrong type; the message names the file."""


class KeySealError(Exception):
    """A stored key cannot be opened: SECRET_KEY changed, or the record was tampered with."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created: int
    private: PrivateKey
    public: PublicKey
    jwk: dict[str, Any] = field(default_factory=dict)


def generate_private_key(alg: str) -> PrivateKey:
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def public_jwk(public: PublicKey) -> dict[str, Any]:
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {k: v for k, v in jwk.items() if k not in {"key_ops", "alg", "use", "kid"}}


_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"),
                       "OKP": ("crv", "kty", "x")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as ``kid``."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _matches(alg: str, private: Any) -> bool:
    if alg in ("RS256", "PS256"):
        return isinstance(private, rsa.RSAPrivateKey)
    if alg == "ES256":
        return isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    return isinstance(private, ed25519.Ed25519PrivateKey)


def make_signing_key(alg: str, created: int, private: PrivateKey) -> SigningKey:
    public = private.public_key()
    jwk = public_jwk(public)
    kid = thumbprint(jwk)
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return SigningKey(kid, alg, created, private, public, jwk)


def load_key_file(path: Path) -> SigningKey:
    match = _NAME.match(path.name)
    if match is None:
        raise KeyFileError(f"{path}: key files are named <alg>-<unix time>.pem")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    alg = match["alg"]
    if not _matches(alg, private):
        raise KeyFileError(f"{path}: the key type does not fit {alg}")
    return make_signing_key(alg, int(match["created"]), private)  # type: ignore[arg-type]


def pem_of(key: SigningKey) -> bytes:
    return key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_signing_key(alg: str, created: int) -> SigningKey:
    return make_signing_key(alg, created, generate_private_key(alg))


def sealer(secrets: Iterable[str | bytes], *, info: bytes = b"uauth signing keys v1"
           ) -> MultiFernet:
    """Seals with the first secret (``SECRET_KEY``), opens with any (``SECRET_KEY_FALLBACKS``).

    Each Fernet key is HKDF-SHA256 of the secret, so the secret itself never touches the keys;
    ``info`` separates purposes (TOTP secrets are sealed under their own derived key).
    """
    fernets = []
    for secret in secrets:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=info).derive(raw)
        fernets.append(Fernet(urlsafe_b64encode(derived)))
    if not fernets:
        raise ValueError("SECRET_KEY is required to seal signing keys")
    return MultiFernet(fernets)


def seal(key: SigningKey, box: MultiFernet) -> dict[str, Any]:
    """The storage form of a key: public facts in clear, the private key sealed."""
    return {"kid": key.kid, "alg": key.alg, "created": key.created,
            "sealed": box.encrypt(pem_of(key)).decode("ascii")}


def unseal(entry: dict[str, Any], box: MultiFernet) -> SigningKey:
    """Open a stored key; the kid must match the key inside, so entries cannot be swapped."""
    try:
        pem = box.decrypt(str(entry["sealed"]).encode("ascii"))
    except InvalidToken:
        raise KeySealError(
            f"signing key {entry.get('kid')} cannot be opened with this SECRET_KEY; restore the "
            "SECRET_KEY it was sealed with (or list the old one in SECRET_KEY_FALLBACKS)"
        ) from None
    private = serialization.load_pem_private_key(pem, password=None)
    alg = str(entry["alg"])
    if not _matches(alg, private):
        raise KeySealError(f"signing key {entry.get('kid')}: the key type does not fit {alg}")
    key = make_signing_key(alg, int(entry["created"]), private)  # type: ignore[arg-type]
    if key.kid != entry["kid"]:
        raise KeySealError(f"signing key {entry.get('kid')}: kid does not match the key")
    return key


class KeySet:
    """The keys one worker signs and verifies with, parsed once."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self._keys = sorted(keys, key=lambda k: (k.created, k.kid))
        self._by_kid = {k.kid: k for k in self._keys}
        self._jwks = {"keys": [k.jwk for k in reversed(self._keys)]}

    @classmethod
    def load(cls, directory: Path) -> KeySet:
        if not directory.is_dir():
            return cls([])
        return cls([load_key_file(p) for p in sorted(directory.glob("*.pem"))])

    @property
    def keys(self) -> list[SigningKey]:
        """Every key, oldest first."""
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def signing_key(self, alg: str, now: float) -> SigningKey:
        """The newest key for ``alg`` that is already due (pre-published keys wait)."""
        due = [k for k in self._keys if k.alg == alg and k.created <= now]
        if not due:
            raise LookupError(f"no signing key for {alg}; run `uauth keys rotate --alg {alg}`")
        return due[-1]

    def verification_key(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (built once per key set)."""
        return self._jwks
