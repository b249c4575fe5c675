"""Changes an administrator makes to registered apps (clients), shared by console and CLI.

Registration itself is :func:`uauth.clients.register_client`; these are the changes after it.
No Flask here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from uauth.core.clients import RegistrationError
from uauth.core.clients import check_redirect_uri
from uauth.core.clients import save_client
from uauth.core.consents import apps_of
from uauth.core.groups import get as get_group
from uauth.core.models import Client
from uauth.core.models import User
from uauth.storage import Store
from uauth.storage import hash_key


def rotate_secret(store: Store, client: Client) -> str:
    """A new client secret (returned once, stored hashed); the old one stops working at once
    (within ``UAUTH_CLIENT_CACHE_TTL`` on other workers)."""
    if client.is_public:
        raise RegistrationError("a public client has no secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_key(secret)
    save_client(store, client)
    return secret


def update(store: Store, client: Client, *, name: str, redirect_uris: Iterable[str],
           allowed_groups: Iterable[str], first_party: bool) -> list[str]:
    """Change what an admin may edit; returns the names of the fields that changed.

    :raises RegistrationError: naming the bad value; nothing is saved then.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise RegistrationError("a name is 1-100 characters")
    uris = list(dict.fromkeys(u.strip() for u in redirect_uris if u.strip()))
    if "authorization_code" in client.grant_types and not uris:
        raise RegistrationError("at least one redirect URI is needed")
    for uri in uris:
        check_redirect_uri(uri)
        host = urlsplit(uri).hostname
        if (client.subject_type == "pairwise" and not client.sector_identifier_uri
                and client.sector_identifier and host != client.sector_identifier):
            # pairwise subjects are computed for the sector fixed at registration
            raise RegistrationError(f"{uri} is not on {client.sector_identifier}, this "
                                    "pairwise client's sector; register a new client instead")
    groups = list(dict.fromkeys(g.strip() for g in allowed_groups if g.strip()))
    for group in groups:
        if get_group(store, group) is None:
            raise RegistrationError(f"no group {group!r}")
    changed = [field for field, old, new in (
        ("name", client.name, name), ("redirect_uris", client.redirect_uris, uris),
        ("allowed_groups", client.allowed_groups, groups),
        ("first_party", client.first_party, first_party)) if old != new]
    if changed:
        client.name, client.redirect_uris = name, uris
        client.allowed_groups, client.first_party = groups, first_party
        save_client(store, client)
    return changed


def who_has_access(store: Store, users: Any, client_id: str, now: int) -> list[User]:
    """People holding a live grant for the client (the account page's "apps with access")."""
    return [user for user in users.list()
            if any(app.client_id == client_id for app in apps_of(store, user.id, now))]
