"""The bench's clients and user, registered in an app's own store: what ``uauth client add`` and
``uauth user add`` give a served deployment (``bench.servers.Uauth.provision``), for an app the
bench builds in-process (``bench.profile``) or that keeps its records in memory
(``bench.memory_app``)."""

from __future__ import annotations

from flask import Flask

from uauth.core.clients import Registration
from uauth.core.clients import register_client
from uauth.core.users import StoreUsers
from uauth.extension import get_state

from .servers import PASSWORD
from .servers import REDIRECT_URI
from .servers import USERNAME


def provision(app: Flask, access_token_format: str) -> tuple[str, tuple[str, str]]:
    """A first-party public client (PKCE, no consent page), a confidential client allowed
    client_credentials that may introspect any access token (a resource server), and a user
    with a password; the public client's id and the service client's id and secret."""
    with app.app_context():
        state = get_state()
        spa, _ = register_client(state.store, Registration(
            name="bench-spa", redirect_uris=[REDIRECT_URI], public=True, first_party=True,
            access_token_format=access_token_format))
        service, secret = register_client(state.store, Registration(
            name="bench-service", redirect_uris=[], grant_types=["client_credentials"],
            access_token_format=access_token_format, introspect_any_token=True))
        StoreUsers(state.store, state.clock).create(
            USERNAME, PASSWORD, {"email": "bench@example.com", "email_verified": True,
                                 "name": "Bench User"})
    return spa.client_id, (service.client_id, secret or "")
