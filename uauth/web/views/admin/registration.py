"""Console page for initial access tokens (dynamic client registration, RFC 7591): list the
live ones, create one (shown once) and revoke one, as ``uauth registration token create`` does."""

from __future__ import annotations

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from uauth.core.registration import create_initial_token
from uauth.core.registration import initial_tokens
from uauth.core.registration import revoke_initial_token
from uauth.web.state import get_state

from . import act
from . import checked

#: The lifetimes offered, as (seconds, label); the first one after the hour is the default.
EXPIRIES = ((3600, "1 hour"), (86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days"))
DEFAULT_EXPIRY = 7 * 86400
MAX_USES = 100000


def _page(token: str | None = None, status: int = 200) -> ResponseReturnValue:
    state = get_state()
    return render_template("uauth/admin/registration.html", token=token,
                           tokens=initial_tokens(state.store), expiries=EXPIRIES,
                           default_expiry=DEFAULT_EXPIRY, max_uses=MAX_USES,
                           mode=state.settings.registration), status


def registration_tokens() -> ResponseReturnValue:
    state = get_state()
    if request.method == "POST" and checked():
        form = request.form
        try:
            expires = int(form.get("expires", ""))
            uses = int(form.get("uses", ""))
        except ValueError:
            expires = uses = 0
        if expires not in dict(EXPIRIES) or not 1 <= uses <= MAX_USES:
            flash(f"Choose a lifetime from the list and between 1 and {MAX_USES} uses.", "error")
            return _page(status=400)
        token = create_initial_token(state.store, expires=expires, uses=uses, now=state.now())
        act("registration.token.create", uses=uses, expires=expires)
        return _page(token)
    return _page()


def registration_token_revoke() -> ResponseReturnValue:
    if checked():
        key = request.form.get("key", "")
        if revoke_initial_token(get_state().store, key):
            act("registration.token.revoke", token=key[:12])
            flash(f"Revoked the registration token {key[:12]}; it no longer registers clients.")
        else:
            flash("That registration token had already expired or been revoked.", "error")
    return redirect(url_for(".registration_tokens"))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/registration", "registration_tokens", registration_tokens,
                    methods=["GET", "POST"])
    bp.add_url_rule("/registration/revoke", "registration_token_revoke",
                    registration_token_revoke, methods=["POST"])
