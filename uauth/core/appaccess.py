"""Ending every app's access to an account at once (issue 17: offline_access after a takeover).

Ending a login session revokes the grants issued in it, except ``offline_access`` ones, which
OIDC Core §11 lets outlive the login. After an account takeover that is the wrong default for
the owner: the intruder's apps keep refresh tokens through a password change and "sign out
everywhere". This is the one switch that ends them all: every grant the account gave any client
is revoked and every remembered consent withdrawn, as "Revoke" on ``/account`` does for one app.

Used when the owner ticks "also end app access" (password change, sign out everywhere), and
always by ``uauth user disable`` and ``uauth user set-password`` (an operator's reset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uauth.core.records import APP_GRANT
from uauth.core.records import CONSENT

from .consents import apps_group
from .consents import revoke_app

if TYPE_CHECKING:
    from uauth.core.state import State


def end_app_access(state: State, user_id: str) -> int:
    """Revoke every app's grants and consent for ``user_id``; returns the number of apps."""
    clients = {record["client_id"]
               for kind, _, record in state.store.grant_records(apps_group(user_id))
               if kind in (APP_GRANT, CONSENT)}
    for client_id in sorted(clients):
        revoke_app(state, user_id, client_id)
    return len(clients)
