"""The second factor in the web layer: the authorization step, and the helpers its pages share.

:func:`require_second_factor` runs after the login (uauth's page or a host app's) and before
required attributes and consent: when :func:`uauth.core.mfa.asked_for` says so and the
session's ``amr`` has no ``mfa`` yet, the person is sent to ``/login/second-factor`` (a TOTP
code, a recovery code or a passkey), or to ``/login/enrol`` when they have no second factor,
and then back to the request (:mod:`uauth.web.views.mfa`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oidc.core.errors import InteractionRequiredError
from flask import redirect
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from uauth.core.audit import RECOVERY_CODE_USED
from uauth.core.audit import audit
from uauth.core.factors import Factor
from uauth.core.mfa import asked_for
from uauth.core.mfa import elevated
from uauth.core.mfa import requested_acr
from uauth.core.models import User
from uauth.core.passkeys import relying_party
from uauth.core.passkeys import unavailable_reason
from uauth.core.sessions import elevate
from uauth.core.throttle import Limit
from uauth.core.throttle import digest
from uauth.core.tokens import Authentication
from uauth.web.login import cookie_user_id
from uauth.web.login import current_session
from uauth.web.state import get_state

if TYPE_CHECKING:
    from uauth.web.steps import Interaction


def policy() -> str:
    return get_state().settings.mfa


def passkeys_unavailable() -> str | None:
    """Why this provider cannot offer passkeys (an IP address as issuer), or None."""
    state = get_state()
    rp = relying_party(state.issuer, state.settings.webauthn_rp_id)
    return unavailable_reason(state.issuer, rp.id)


def passkeys_offered() -> bool:
    """The login page offers passkeys unless they are off or cannot work (an IP address)."""
    return policy() != "off" and passkeys_unavailable() is None


def needs_second_factor(user: User, has_factor: bool | None = None) -> bool:
    """True when this signed-in person has a second factor but this session has not used it:
    their account pages wait for it (a password alone must not change their factors).
    ``has_factor``: what the page's own listing said, else read."""
    login = current_session()
    if policy() == "off" or login is None or "mfa" in login.amr:
        return False
    return get_state().factors.has_second_factor(user.id) if has_factor is None else has_factor


def after_password(user: User, next_url: str | None) -> str:
    """Where a password login goes: on to ``next``, by way of the second factor when the
    person has one (an authorization request would ask for it anyway)."""
    target = next_url or url_for("uauth.ui.home")
    if needs_second_factor(user):
        return url_for("uauth.mfa.second_factor", next=target)
    return target


def otp_keys(user_id: str) -> dict[str, Limit]:
    """Wrong codes count like wrong passwords: per account and per IP address, in storage."""
    throttle = get_state().throttle
    return {"otp:" + digest(user_id): throttle.policy.key_limit,
            "login-ip:" + (request.remote_addr or "-"): throttle.policy.ip_limit}


def ip_keys() -> dict[str, Limit]:
    throttle = get_state().throttle
    return {"login-ip:" + (request.remote_addr or "-"): throttle.policy.ip_limit}


def check_code(user: User, code: str, listed: list[Factor] | None = None
               ) -> tuple[str | None, int | None]:
    """``(method, recovery codes left)`` for a TOTP or recovery code of ``user``; method None
    when it is neither (wrong, replayed, from another step, already used). ``listed``: the
    person's factors as the page has read them."""
    factors = get_state().factors
    if factors.check_totp(user.id, code, listed) is not None:
        return "otp", None
    left = factors.use_recovery_code(user.id, code)
    if left is not None:
        audit(RECOVERY_CODE_USED, user_id=user.id, left=left)
        return "otp", left
    return None, None


def complete(methods: list[str]) -> None:
    """The second factor was presented: the browser's session now says so (``amr``)."""
    login = current_session()
    assert login is not None
    elevate(get_state(), login, elevated(login.amr, methods))


def _step_lists(user: User | None, auth: Authentication | None) -> bool:
    """Whether :func:`require_second_factor` lists this person's factors: signed in, without
    a second factor in this session, under a policy that has factors."""
    return user is not None and auth is not None and "mfa" not in auth.amr \
        and policy() != "off"


def expect_factors() -> None:
    """Read the signed-in person's factors with their session, in the caller's batch:
    ``/authorize`` then waits once for both (:func:`listed_factor` takes the answer). The
    person's id is flask-login's, in the cookie, before the session is read."""
    user_id = cookie_user_id()
    if user_id is not None and policy() != "off":
        get_state().factors.expect(user_id)


def listed_factor(user: User | None, auth: Authentication | None) -> bool | None:
    """Whether ``user`` has a second factor, when :func:`require_second_factor` will ask;
    None when it will not. Called in the batch of :func:`expect_factors`."""
    if not _step_lists(user, auth):
        return None
    assert user is not None
    return get_state().factors.has_second_factor(user.id)


def require_second_factor(ix: Interaction) -> ResponseReturnValue | None:
    """A second factor when policy, the client or the request ask for one."""
    state = get_state()
    if ix.user is None or ix.auth is None or "mfa" in ix.auth.amr:
        return None
    acr = requested_acr(ix.params)
    if policy() == "off":
        if acr.essential and acr.wants_mfa:  # OIDC Core §5.5.1.1: an unmet essential acr
            raise AccessDeniedError("A second factor was required, and this provider has "
                                    "none enabled.")
        return None
    has_factor = ix.has_factor
    if has_factor is None:
        has_factor = state.factors.has_second_factor(ix.user.id)
    if not asked_for(policy(), has_factor=has_factor, client_requires=ix.client.require_mfa,
                     acr=acr):
        return None
    if "none" in ix.prompts:
        raise InteractionRequiredError("The user must present a second factor first.")
    back = url_for("uauth.ui.authorize") + "?" + urlencode(list(ix.params.items(multi=True)))
    return _second_factor_page(has_factor, back)


def second_factor_before(user: User, amr: list[str], *, client_requires: bool, back: str,
                         has_factor: bool | None = None) -> ResponseReturnValue | None:
    """The same rule for pages that approve a client outside ``/authorize`` (the device page):
    the policy or the client may ask for a second factor that this session has not used.
    ``has_factor``: what the page's own listing said (:func:`listed_factor`), else read."""
    if "mfa" in amr or policy() == "off":
        return None
    if has_factor is None:
        has_factor = get_state().factors.has_second_factor(user.id)
    if not asked_for(policy(), has_factor=has_factor, client_requires=client_requires,
                     acr=requested_acr({})):
        return None
    return _second_factor_page(has_factor, back)


def _second_factor_page(has_factor: bool, back: str) -> ResponseReturnValue:
    """Present the factor the person has, or set one up; then ``back``."""
    target = "uauth.mfa.second_factor" if has_factor else "uauth.mfa.enrol"
    return redirect(url_for(target, next=back))
