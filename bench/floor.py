"""The stack's floor: the bench's operations done by Authlib's Flask integration and nothing else.

uauth is built on Flask, Authlib and gunicorn, as its brief asks. This app is what those three
cost by themselves for the same protocol work, following Authlib's documented Flask provider:
the authorization code grant with PKCE (S256 required) and an RS256 ID token, rotating refresh
tokens, client_credentials, and userinfo with Bearer tokens. Tokens are opaque (43 random
characters), as the bench gives uauth's clients and as the reference issues its own; everything
lives in this process's memory, as the reference keeps it.

With ``UAUTH_BENCH_FLOOR_DB`` (a SQLite file; :func:`create_app`'s ``database``) the codes and
tokens live there instead, in WAL mode and with ``synchronous=NORMAL`` as uauth keeps its own,
each write committed as Authlib's documented hooks commit it and a grant's two tokens at once, as
its documented token model (one row for both) does: what the same stack costs once its records
outlive the process, the cost the reference's in-memory records do not pay and uauth's durable
stores do.

It has none of what uauth adds: no store beyond its codes and tokens, no login form or session
record (a browser is signed in by a cookie on its first visit, as the reference's bench
interaction does it), no input checks, throttling, audit or access log lines, metrics, security
headers, grant limits or revocation lists. ``make bench`` serves it with ``uauth serve``'s
gunicorn settings beside uauth and the reference, and reports what it costs against the
reference: in memory, a floor that uauth's own code can approach but not pass; on SQLite, what a
durable provider pays before uauth's own work (uauth's fewer commits can do better in places:
its client_credentials grant counts fewer instructions). Never serve it for anything else.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from contextlib import nullcontext
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Generic
from typing import Protocol
from typing import TypeVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2 import current_token
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask import Response
from flask import session
from joserfc.jwk import RSAKey

#: The issuer, as the bench serves it (``UAUTH_BENCH_FLOOR_ISSUER``, set by bench.servers).
ISSUER = os.environ.get("UAUTH_BENCH_FLOOR_ISSUER", "http://127.0.0.1:5000")
REDIRECT_URI = os.environ.get("UAUTH_BENCH_FLOOR_REDIRECT", "http://127.0.0.1:8399/cb")
PUBLIC_CLIENT = "floor-spa"
SERVICE_CLIENT = ("floor-service", "floor-service-secret-0123456789abcdef0123456789")
SCOPES = {"openid", "email", "profile", "offline_access"}
USER = {"sub": "floor-user", "email": "bench@example.com", "name": "Bench User"}

KEY = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def new_token(*_: object, **__: object) -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Client:
    client_id: str
    secret: str | None
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES) if scope else ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("none" if self.secret is None else "client_secret_basic")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


CLIENTS = {
    PUBLIC_CLIENT: Client(PUBLIC_CLIENT, None, ("authorization_code", "refresh_token"),
                          (REDIRECT_URI,)),
    SERVICE_CLIENT[0]: Client(SERVICE_CLIENT[0], SERVICE_CLIENT[1], ("client_credentials",)),
}


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token:
    raw: str
    client_id: str
    scope: str
    user: dict[str, str] | None
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> dict[str, str] | None:
        return self.user


R = TypeVar("R", Code, Token)


class Table(Protocol[R]):
    """One kind of record by its key: a dict in memory, or :class:`Durable`."""

    def get(self, key: str, /) -> R | None: ...

    def __setitem__(self, key: str, record: R, /) -> None: ...

    def pop(self, key: str, default: None, /) -> R | None: ...


class Durable(Generic[R]):
    """One kind of record in a table of its own in SQLite, a record's fields as JSON; each
    statement commits by itself (autocommit) unless :meth:`Records.saving` holds it, as each of
    Authlib's documented hooks commits."""

    def __init__(self, db: sqlite3.Connection, name: str, kind: type[R]) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (key TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self.db = db
        self.kind: type[R] = kind
        self.select = f"SELECT body FROM {name} WHERE key = ?"  # noqa: S608 - our own name
        self.insert = f"INSERT INTO {name} (key, body) VALUES (?, ?)"  # noqa: S608
        self.delete = f"DELETE FROM {name} WHERE key = ? RETURNING body"  # noqa: S608

    def get(self, key: str, /) -> R | None:
        row = self.db.execute(self.select, (key,)).fetchone()
        return self.kind(**json.loads(row[0])) if row else None

    def __setitem__(self, key: str, record: R, /) -> None:
        self.db.execute(self.insert, (key, json.dumps(asdict(record))))

    def pop(self, key: str, default: None, /) -> R | None:
        row = self.db.execute(self.delete, (key,)).fetchone()
        return self.kind(**json.loads(row[0])) if row else default


@dataclass
class Records:
    """Where one floor app keeps its codes and tokens (``db``: the SQLite file's connection)."""

    codes: Table[Code]
    access: Table[Token]
    refresh: Table[Token]
    db: sqlite3.Connection | None = None

    def saving(self) -> AbstractContextManager[None]:
        """One commit for the writes inside, as Authlib's documented token model commits a
        token's access and refresh token (one row) at once; in memory, nothing to do."""
        return nullcontext() if self.db is None else transaction(self.db)

    @classmethod
    def in_memory(cls) -> Records:
        codes: dict[str, Code] = {}
        access: dict[str, Token] = {}
        refresh: dict[str, Token] = {}
        return cls(codes, access, refresh)

    @classmethod
    def in_sqlite(cls, path: str) -> Records:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return cls(Durable(db, "codes", Code), Durable(db, "access", Token),
                   Durable(db, "refresh", Token), db)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def records_of(grant: Any) -> Records:
    records: Records = grant.server.records
    return records


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code: str, req: Any) -> None:
        records_of(self).codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri,
                           req.payload.scope, req.payload.data.get("nonce"),
                           req.payload.data.get("code_challenge"),
                           req.payload.data.get("code_challenge_method"))

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = records_of(self).codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        records_of(self).codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> dict[str, str]:
        return USER


class IDToken(OpenIDCode):  # type: ignore[misc]
    def exists_nonce(self, nonce: str, req: Any) -> bool:
        return False

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return KEY

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": "floor"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": ISSUER, "aud": [client.client_id], "iat": now, "exp": now + 3600}

    def generate_user_info(self, user: dict[str, str], scope: str) -> UserInfo:
        return user_info(user, scope)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = records_of(self).refresh.get(refresh_token)
        return token if token is not None and not token.is_expired() else None

    def authenticate_user(self, refresh_token: Token) -> dict[str, str] | None:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        records_of(self).refresh.pop(refresh_token.raw, None)


def user_info(user: dict[str, str], scope: str) -> UserInfo:
    info = UserInfo(sub=user["sub"])
    if "email" in scope.split():
        info["email"] = user["email"]
    if "profile" in scope.split():
        info["name"] = user["name"]
    return info


def token_saver(records: Records) -> Any:
    def save_token(token: dict[str, Any], req: Any) -> None:
        user = req.user if isinstance(req.user, dict) else None
        expires = time.time() + int(token.get("expires_in", 3600))
        scope = token.get("scope", "")
        with records.saving():
            records.access[token["access_token"]] = Token(
                token["access_token"], req.client.client_id, scope, user, expires)
            if "refresh_token" in token:
                records.refresh[token["refresh_token"]] = Token(
                    token["refresh_token"], req.client.client_id, scope, user,
                    time.time() + 30 * 86400)
    return save_token


class Bearer(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, records: Records) -> None:
        super().__init__()
        self.records = records

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.records.access.get(token_string)


DISCOVERY = json.dumps({
    "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize",
    "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
    "response_types_supported": ["code"], "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "code_challenge_methods_supported": ["S256"],
})


def create_app(database: str | None = None) -> Flask:
    """The floor's app, its records in ``database`` (a SQLite file) or else in memory."""
    records = Records.in_sqlite(database) if database else Records.in_memory()
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(OAUTH2_ACCESS_TOKEN_GENERATOR=new_token,
                      OAUTH2_REFRESH_TOKEN_GENERATOR=new_token)
    server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=token_saver(records))
    server.records = records  # what the grants reach (records_of), a lookup a call
    app.extensions["floor_records"] = records  # what tools and tests reach from the app
    server.register_grant(CodeGrant, [CodeChallenge(required=True), IDToken()])
    server.register_grant(RefreshGrant, [IDToken()])  # a new ID token on refresh, as uauth
    # and the reference sign one (OpenID Connect Core §12.2)
    server.register_grant(grants.ClientCredentialsGrant)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Bearer(records))

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return Response(DISCOVERY, mimetype="application/json")

    @app.get("/authorize")
    def authorize() -> Any:
        if session.get("user") != USER["sub"]:  # signed in on the first visit, by the cookie
            session["user"] = USER["sub"]
        grant = server.get_consent_grant(end_user=USER)  # Authlib's documented two steps
        return server.create_authorization_response(grant=grant, grant_user=USER)

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.route("/userinfo", methods=["GET", "POST"])
    @require_oauth("openid")  # type: ignore[untyped-decorator]  # Authlib is untyped
    def userinfo() -> Response:
        found = current_token.get_user()
        body = user_info(found, current_token.get_scope()) if found else {}
        return Response(json.dumps(dict(body)), mimetype="application/json")

    @app.get("/")
    def health() -> str:
        return "ok"

    return app


app = create_app(os.environ.get("UAUTH_BENCH_FLOOR_DB"))
