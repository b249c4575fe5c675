"""What a passkey sign-in and a TOTP check cost the server, in-process (one core).

* the assertion check alone: py_webauthn verifying an ES256 assertion (what every passkey
  sign-in or second factor pays);
* a whole passkey sign-in through the app (memory storage): ``POST /passkeys/options/login`` and
  ``POST /passkeys/login``, a session created; only those two requests are timed (the software
  authenticator's signing is the browser's part);
* a TOTP check: the pyotp comparison over the ±1 step window, and through the factor store
  (unsealing the secret, the once-per-step record) as the second-factor page does.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

from bench.passwords import Cost
from bench.passwords import measure
from tests.soft_authenticator import SoftAuthenticator
from uauth import create_app
from uauth.core import passkeys
from uauth.core import totp
from uauth.core.users import StoreUsers
from uauth.extension import get_state
from uauth.storage.memory import MemoryStore

ISSUER = "http://localhost:5000"


def _assertion_check(seconds: float) -> Cost:
    rp = passkeys.relying_party(ISSUER)
    authenticator = SoftAuthenticator(ISSUER, rp.id, counts=False)
    challenge, options = passkeys.registration_options(
        rp, user_handle=b"u1", username="ada", display_name="Ada", existing=[])
    created = passkeys.verify_registration(rp, authenticator.create(json.loads(options)),
                                           challenge)
    challenge, options = passkeys.authentication_options(rp)
    assertion = authenticator.get(json.loads(options))
    return measure("passkey: verify one ES256 assertion (py_webauthn)", lambda: (
        passkeys.verify_assertion(rp, assertion, challenge, public_key=created.public_key,
                                  sign_count=0, backup_eligible=False)), seconds=seconds)


def _sign_in(seconds: float, tmp: Path) -> list[Cost]:
    app = create_app({"UAUTH_ISSUER": ISSUER, "TESTING": True}, store=MemoryStore(),
                     instance_path=tmp / "instance")
    http = app.test_client()
    with app.app_context():
        users = get_state().users
        assert isinstance(users, StoreUsers)
        user = users.create("ada", "correct horse battery", {})
    authenticator = SoftAuthenticator(ISSUER, "localhost")
    with app.app_context():
        rp = passkeys.relying_party(ISSUER)
        challenge, options = passkeys.registration_options(
            rp, user_handle=user.id.encode(), username="ada", display_name="Ada", existing=[])
        new = passkeys.verify_registration(rp, authenticator.create(json.loads(options)),
                                           challenge)
        get_state().factors.add_passkey(user.id, new, "bench")
    rounds, cpu, wall = 0, 0.0, 0.0
    deadline = time.perf_counter() + seconds
    while rounds < 3 or time.perf_counter() < deadline:
        # untimed: the login page (a fresh CSRF token: a login renews it) and the signature,
        # which the person's authenticator makes
        match = re.search(r'data-csrf="([^"]+)"', http.get("/login").text)
        assert match, "the login page offers passkeys"
        csrf = {"X-CSRFToken": match.group(1)}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        answer = http.post("/passkeys/options/login", headers=csrf)
        cpu, wall = cpu + time.process_time() - cpu0, wall + time.perf_counter() - wall0
        assert answer.status_code == 200, answer.text
        assertion = json.dumps(authenticator.get(answer.get_json()))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        response = http.post("/passkeys/login", headers=csrf, data=assertion,
                             content_type="application/json")
        cpu, wall = cpu + time.process_time() - cpu0, wall + time.perf_counter() - wall0
        assert response.status_code == 200, response.text
        rounds += 1
    return [Cost("passkey sign-in through the app: options + assertion + new session "
                 "(memory storage)", cpu * 1e3 / rounds, wall * 1e3 / rounds)]


def _totp(seconds: float) -> list[Cost]:
    store = MemoryStore()
    from cryptography.fernet import Fernet
    from cryptography.fernet import MultiFernet

    from uauth.core.factors import Factors

    now = [1_800_000_000.0]
    factors = Factors(store, MultiFernet([Fernet(Fernet.generate_key())]), lambda: now[0])
    _, secret = factors.add_totp("u1")
    code = totp.code_at(secret, now[0])

    def page_check() -> None:
        now[0] += totp.STEP  # a new time step each time: never a replay
        assert factors.check_totp("u1", totp.code_at(secret, now[0])) is not None

    code_cost = measure("(subtracted: computing the code, as the app would)",
                        lambda: totp.code_at(secret, now[0]), seconds=seconds)
    stored = measure("TOTP check through the factor store (unseal, ±1 step, once per step)",
                     page_check, seconds=seconds)
    return [
        measure("TOTP: pyotp check of one code over the ±1 step window",
                lambda: totp.matching_step(secret, code, now[0]), seconds=seconds),
        Cost(stored.name, max(stored.cpu_ms - code_cost.cpu_ms, 0.0),
             max(stored.wall_ms - code_cost.wall_ms, 0.0)),
    ]


def factors_table(costs: list[Cost]) -> str:
    from bench.report import table

    lines = [["passkey / TOTP check (in-process, one core)", "CPU ms", "wall ms"]]
    for cost in costs:
        lines.append([cost.name, f"{cost.cpu_ms:.3f}", f"{cost.wall_ms:.3f}"])
    return table(lines)


def factor_costs(seconds: float = 1.0) -> list[Cost]:
    with tempfile.TemporaryDirectory() as tmp:
        return [_assertion_check(seconds), *_sign_in(seconds, Path(tmp)), *_totp(seconds)]
