"""Our subclasses of Authlib's grants: where uauth's protocol rules live.

Authlib runs each flow; these modules supply storage, the scope and redirect-URI rules, PKCE
policy, and token minting (:func:`~uauth.oauth.grants.issuance.issue_tokens`, shared by every
grant):

- ``common``: rules every grant shares (scopes, redirect URIs, response types, grant ids)
- ``issuance``: what a token response holds; refresh tokens prepared and persisted
- ``code``: authorization code + PKCE; ``front_channel``: implicit and hybrid
- ``refresh_token``: rotation and reuse detection; ``client_credentials``: machine to machine
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uauth.core.records import CODE
from uauth.core.records import REFRESH

from .client_credentials import ClientCredentialsGrant
from .code import AuthorizationCodeGrant
from .code import Pkce
from .common import USERINFO_CLAIMS
from .device_code import DeviceCodeGrant
from .front_channel import HybridGrant
from .front_channel import ImplicitGrant
from .refresh_token import RefreshTokenGrant

if TYPE_CHECKING:
    from uauth.oauth.server import UAuthServer

__all__ = ["CODE", "REFRESH", "USERINFO_CLAIMS", "register_grants"]


def register_grants(server: UAuthServer) -> None:
    server.register_grant(AuthorizationCodeGrant, [Pkce(required=True)])
    server.register_grant(ImplicitGrant)
    server.register_grant(HybridGrant, [Pkce(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(DeviceCodeGrant)
