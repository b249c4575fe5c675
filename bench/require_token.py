"""What a host app's ``@uauth.require_token`` costs per request, in-process (one core).

A Flask app embeds uauth (SQLite storage, as ``make run`` serves it) and protects a view; the
decorated view is called inside one pushed request context carrying ``Authorization: Bearer``,
so what is timed is the decorator's own work: reading the header, validating the RFC 9068
token, the revocation check and the user lookup (two storage reads), and the scope check.
Flask's request handling, which any view pays, is not counted.

* first sight: a token this worker has not verified before (the signature is checked);
* seen before: the same token again, as an API sees a client's token during its life
  (:mod:`uauth.core.verified`).

Each figure is the least CPU of five timings (:func:`bench.passwords.least`): on a shared
machine, a single timing of this call gave 31 µs and, five minutes later, 56 µs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Flask

from bench.passwords import Cost
from bench.passwords import least
from uauth import UAuth
from uauth.core.tokens import mint_access_token
from uauth.core.users import StoreUsers
from uauth.core.verified import VerifiedTokens
from uauth.extension import get_state

ISSUER = "http://localhost:5000"
#: The issue's target for the repeat case, in µs of CPU per request.
TARGET_US = 50.0


def require_token_costs(seconds: float = 1.0) -> list[Cost]:
    with tempfile.TemporaryDirectory(prefix="uauth-require-token-") as tmp:
        app = Flask(__name__, instance_path=str(Path(tmp) / "instance"))
        app.config.update(SECRET_KEY="bench-" + "x" * 40, UAUTH_ISSUER=ISSUER,
                          UAUTH_STORAGE=f"sqlite:///{tmp}/uauth.db")
        uauth = UAuth(app)

        @uauth.require_token(scope="notes")
        def notes() -> str:
            return "ok"

        with app.app_context():
            state = get_state()
            users = state.users
            assert isinstance(users, StoreUsers)
            user = users.create("ada", "correct horse battery", {})
            token, _ = mint_access_token(state, client_id="notes-app", sub=user.id,
                                         scope="openid notes", grant_id=None)
        headers = {"Authorization": f"Bearer {token}"}
        with app.test_request_context("/api/notes", headers=headers):
            assert notes() == "ok"
            state = get_state()
            seen = state.verified
            state.verified = VerifiedTokens(size=0)
            first = least("require_token: a token seen for the first time (µs)", notes,
                          seconds=seconds)
            state.verified = seen
            again = least("require_token: the same token again (µs)", notes, seconds=seconds)
            # Both loops timed the accepted path, not a 401 challenge answered instead.
            assert notes() == "ok" and len(state.verified) == 1
    return [Cost(c.name, c.cpu_ms * 1e3, c.wall_ms * 1e3) for c in (first, again)]
