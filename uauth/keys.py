"""Signing keys: generated on first run, parsed once per worker, published as a JWKS.

Keys live in ``<instance>/keys/`` as PKCS#8 PEM files (mode 0600) named ``<alg>-<created>.pem``;
the file name is the whole manifest, so a shared instance folder is all several hosts need to
agree. The ``kid`` is the RFC 7638 thumbprint of the public key. The newest key of an algorithm
whose creation time has passed signs; every loaded key stays in the JWKS so tokens it signed keep
validating until the key file is retired.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
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


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created: int
    private: PrivateKey
    public: PublicKey
    path: Path | None = None
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


def make_signing_key(alg: str, created: int, private: PrivateKey,
                     path: Path | None = None) -> SigningKey:
    public = private.public_key()
    jwk = public_jwk(public)
    kid = thumbprint(jwk)
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return SigningKey(kid, alg, created, private, public, path, jwk)


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
    return make_signing_key(alg, int(match["created"]), private, path)  # type: ignore[arg-type]


def write_key_file(directory: Path, alg: str, created: int | None = None) -> SigningKey:
    """Generate a key and write it with mode 0600 (never readable by others, even briefly)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = int(time.time()) if created is None else created
    private = generate_private_key(alg)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / f"{alg}-{created}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return make_signing_key(alg, created, private, path)


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

    @classmethod
    def ensure(cls, directory: Path, algs: list[str] | tuple[str, ...]) -> KeySet:
        """Load the keys, first generating one for every algorithm that has none."""
        keyset = cls.load(directory)
        missing = [alg for alg in algs if alg not in keyset.algorithms]
        for alg in missing:
            write_key_file(directory, alg)
        return cls.load(directory) if missing else keyset

    @property
    def algorithms(self) -> set[str]:
        return {k.alg for k in self._keys}

    def __len__(self) -> int:
        return len(self._keys)

    def signing_key(self, alg: str, now: float | None = None) -> SigningKey:
        """The newest key for ``alg`` that is already due (pre-published keys wait)."""
        now = time.time() if now is None else now
        due = [k for k in self._keys if k.alg == alg and k.created <= now]
        if not due:
            raise LookupError(f"no signing key for {alg}; run `uauth keys rotate --alg {alg}`")
        return due[-1]

    def verification_key(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (built once per key set)."""
        return self._jwks
