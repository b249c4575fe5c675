"""What one JWT signature costs, in-process: part of the floor under every token response.

A flow's floor on this stack is its HTTP requests as the bare Flask endpoint answers them plus
the signatures it must make (the SSO flow and a rotating refresh sign an RS256 ID token and an
RS256 access token; client_credentials signs the access token), before any OAuth logic runs.
"""

from __future__ import annotations

import secrets
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.passwords import Cost
from bench.passwords import measure

#: An access token's claims as uauth signs them (RFC 9068), sized like the bench's.
CLAIMS = {"iss": "http://127.0.0.1:5000", "sub": "b38e4e557a7bf03f15de5e9452a5ac55",
          "aud": "http://127.0.0.1:5000", "exp": 2_000_000_000, "iat": 1_999_999_000,
          "jti": secrets.token_urlsafe(16), "client_id": "c" * 22, "scope": "openid profile"}


def signing_costs(seconds: float = 0.5) -> list[Cost]:
    keys = {"RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ES256": ec.generate_private_key(ec.SECP256R1())}
    headers = {"kid": "k1", "typ": "at+jwt"}
    return [measure(f"{alg} JWT signature (PyJWT, one access token)",
                    lambda key=key, alg=alg: jwt.encode(  # type: ignore[misc]
                        {**CLAIMS, "iat": int(time.time())}, key, algorithm=alg,
                        headers=headers), seconds=seconds)
            for alg, key in keys.items()]
