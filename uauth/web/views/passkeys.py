"""The passkey ceremonies' JSON endpoints, called by ``static/uauth/passkeys.js``.

Each ceremony is two POSTs: options (a fresh random challenge, kept in storage under an id the
browser's session holds, so it is bound to that session), then the browser's response, which
consumes the challenge once. CSRF: the page's token in the ``X-CSRFToken`` header. Answers are
``{"redirect": url}`` or ``{"error": words for the person}``, never a stack trace.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import jsonify
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from uauth.core import passkeys
from uauth.core.audit import MFA_ENROLLED
from uauth.core.audit import MFA_SUCCEEDED
from uauth.core.audit import PASSKEY_COUNTER
from uauth.core.audit import PASSKEY_FAILED
from uauth.core.audit import PASSKEY_LOGIN
from uauth.core.audit import audit
from uauth.core.passkeys import PasskeyError
from uauth.core.passkeys import relying_party
from uauth.web.errors import wait_words
from uauth.web.login import current_session
from uauth.web.login import login_batch
from uauth.web.login import safe_next
from uauth.web.login import start_session
from uauth.web.mfa import complete
from uauth.web.mfa import ip_keys
from uauth.web.mfa import needs_second_factor
from uauth.web.mfa import otp_keys
from uauth.web.mfa import passkeys_unavailable
from uauth.web.state import get_state
from uauth.web.views.mfa import _signed_in

bp = Blueprint("passkeys", __name__)

#: The ceremony this browser session is in (an id; the challenge itself stays in storage).
CEREMONY = "uauth_webauthn"
PURPOSES = ("login", "second-factor", "register")
REFUSED = "This passkey was not accepted. Try again, or sign in another way."


def _error(message: str, status: int = 400) -> ResponseReturnValue:
    return jsonify(error=message), status, {"Cache-Control": "no-store"}


def _csrf_ok() -> bool:
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except (ValidationError, CSRFError):
        return False
    return True


def _rp() -> passkeys.RelyingParty:
    state = get_state()
    return relying_party(state.issuer, state.settings.webauthn_rp_id)


@bp.post("/passkeys/options/<purpose>")
def options(purpose: str) -> ResponseReturnValue:
    """Options for ``navigator.credentials.create`` (register) or ``.get`` (login, second
    factor)."""
    if purpose not in PURPOSES:
        return _error("Unknown passkey request.", 404)
    if not _csrf_ok():
        return _error("This page expired. Reload it and try again.")
    reason = passkeys_unavailable()
    if reason or get_state().settings.mfa == "off":
        return _error(reason or "Passkeys are turned off here (UAUTH_MFA=off).", 409)
    state, rp = get_state(), _rp()
    user = _signed_in() if purpose != "login" else None
    if purpose != "login" and user is None:
        return _error("Your session ended: sign in again.", 401)
    if purpose == "register":
        assert user is not None
        if needs_second_factor(user):
            return _error("Confirm with your second factor first.", 403)
        challenge, body = passkeys.registration_options(
            rp, user_handle=user.id.encode(), username=user.username,
            display_name=str(user.profile.get("name") or user.username),
            existing=state.factors.credential_ids(user.id))
    elif purpose == "second-factor":
        assert user is not None
        allowed = [(f.credential_id or "", f.transports) for f in state.factors.of(user.id)
                   if f.type == "passkey"]
        if not allowed:
            return _error("You have no passkey here.", 409)
        challenge, body = passkeys.authentication_options(rp, allowed)
    else:
        challenge, body = passkeys.authentication_options(rp)
    session[CEREMONY] = state.factors.save_challenge(
        challenge, purpose, user.id if user else None, passkeys.CHALLENGE_TTL)
    return body, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


def _challenge(purpose: str) -> Any:
    ceremony = session.pop(CEREMONY, None)
    if not isinstance(ceremony, str) or len(ceremony) > 64:
        return None
    return get_state().factors.take_challenge(ceremony, purpose)


def _failed(why: str, user_id: str | None = None) -> ResponseReturnValue:
    """Refuse, audit and count the failure: toward the account when the passkey names one,
    toward the client's IP address always (as a wrong password would)."""
    audit(PASSKEY_FAILED, user_id=user_id, reason=why[:120])
    get_state().throttle.failed(otp_keys(user_id) if user_id is not None else ip_keys())
    return _error(REFUSED)


@bp.post("/passkeys/login")
def login() -> ResponseReturnValue:
    """A discoverable sign-in, or a passkey as the second factor (``?second=1``)."""
    second = request.args.get("second") == "1"
    purpose = "second-factor" if second else "login"
    if not _csrf_ok():
        return _error("This page expired. Reload it and try again.")
    state = get_state()
    factors, throttle = state.factors, state.throttle
    try:
        credential: dict[str, Any] | None = passkeys.parse(request.get_data())
        unparsed = ""
    except PasskeyError as exc:
        credential, unparsed = None, str(exc)
    credential_id = None if credential is None else str(credential["id"])
    # Three trips where there were five: the address's blocks with the passkey's index; the
    # challenge's spend; the account's blocks, with the passkey's record where the spend could
    # not carry it (SQLite). Refused in the same order as when each was read in turn.
    with state.store.batch():
        if credential_id is not None:
            factors.expect_passkey(credential_id)
        wait = throttle.wait(ip_keys())
        if wait:
            return _error(wait_words(wait), 429)
        index = None if credential_id is None else factors.passkey_index(credential_id)
        challenge = _challenge(purpose)
        if challenge is None:
            return _failed("no live challenge for this session (expired, used or foreign)")
        if credential is None:
            return _failed(unparsed)
        owner_wait = 0 if index is None else throttle.wait(otp_keys(index[0]))
        factor = None if index is None else factors.passkey_of(index)
        if factor is None:
            return _failed("unknown credential (removed, or never registered here)")
        if second and factor.user_id != challenge.user_id:
            return _failed("a passkey of another user", challenge.user_id)
        if owner_wait:
            return _error(wait_words(owner_wait), 429)
    try:
        assertion = passkeys.verify_assertion(
            _rp(), credential, challenge.challenge, public_key=factor.public_key or "",
            sign_count=factor.sign_count, backup_eligible=factor.backup_eligible)
    except PasskeyError as exc:
        if "sign count" in str(exc):
            audit(PASSKEY_COUNTER, user_id=factor.user_id, factor=factor.id[:8])
        return _failed(str(exc), factor.user_id)
    methods = passkeys.amr_of(factor.backup_eligible)
    next_url = safe_next(request.args.get("next")) or url_for("uauth.ui.home")
    # The sign count with the user's read, the session with the audit event: two trips.
    with login_batch(factor.user_id):
        state.factors.passkey_used(factor, assertion.sign_count, assertion.backed_up)
        if second:
            login_session = current_session()
            if login_session is None or login_session.user_id != factor.user_id:
                return _error("Your session ended: sign in again.", 401)
            complete(methods[:1])
            audit(MFA_SUCCEEDED, user_id=factor.user_id, method="passkey")
            return jsonify(redirect=next_url)
        user = state.users.get(factor.user_id)
        if user is None or not user.is_active:
            return _failed("passkey of a disabled or removed account", factor.user_id)
        start_session(user, tuple(methods))
        audit(PASSKEY_LOGIN, user_id=user.id, method=methods[0])
    return jsonify(redirect=next_url)


@bp.post("/passkeys/register")
def register() -> ResponseReturnValue:
    user = _signed_in()
    if not _csrf_ok():
        return _error("This page expired. Reload it and try again.")
    if user is None:
        return _error("Your session ended: sign in again.", 401)
    challenge = _challenge("register")
    if challenge is None or challenge.user_id != user.id:
        return _failed("no live registration challenge for this session", user.id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return _failed("not a registration request", user.id)
    name = str(body.get("name") or "").strip()[:60] or "Passkey"
    try:
        new = passkeys.verify_registration(_rp(), body["credential"], challenge.challenge)
    except PasskeyError as exc:
        return _failed(str(exc), user.id)
    state = get_state()
    if state.factors.passkey(new.credential_id) is not None:
        return _error("This passkey is registered already.", 409)
    factor = state.factors.add_passkey(user.id, new, name)
    audit(MFA_ENROLLED, user_id=user.id, method="passkey", factor=factor.id[:8])
    login_session = current_session()
    if login_session is not None and "mfa" not in login_session.amr:
        complete(passkeys.amr_of(new.backup_eligible)[:1])  # just proved with the passkey
    next_url = safe_next(request.args.get("next")) or url_for("uauth.account.account")
    return jsonify(redirect=next_url)
