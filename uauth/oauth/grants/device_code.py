"""The device authorization grant (RFC 8628): Authlib's endpoint and grant over
:mod:`uauth.core.device`.

``/device_authorization`` authenticates the client as /token does (public clients too), checks
it registered the grant and the scope rules of /authorize, and answers a device code, a user
code and where to enter it. ``scope`` is optional there (§3.1): without it the device gets the
client's registered scopes that this provider knows. At /token the device polls:
``authorization_pending`` until the person decides, ``slow_down`` (and 5 s more interval) when
it polls too fast, ``access_denied``, ``expired_token``; an approved device code is redeemed
exactly once.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oauth2.rfc8628 import AuthorizationPendingError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as AuthlibDeviceCodeGrant
from authlib.oauth2.rfc8628 import ExpiredTokenError
from authlib.oauth2.rfc8628 import SlowDownError
from flask import url_for

from uauth.core.consents import grant_lifetime
from uauth.core.consents import remember_grant
from uauth.core.device import APPROVED
from uauth.core.device import DENIED
from uauth.core.device import DeviceGrant
from uauth.core.device import find_device_grant
from uauth.core.device import note_poll
from uauth.core.device import redeem
from uauth.core.device import start
from uauth.core.mfa import acr_for
from uauth.core.models import Client
from uauth.core.models import User
from uauth.core.tokens import Authentication
from uauth.core.users import expect_user

from .common import active_user
from .common import check_requested_scope
from .common import new_grant_id
from .common import state_of
from .context import IssueContext
from .issuance import IssuesTokens
from .issuance import wants_refresh_token

if TYPE_CHECKING:
    from uauth.core.state import State
    from uauth.oauth.server import UAuthRequest

__all__ = ["DEVICE_CODE_GRANT_TYPE", "DeviceAuthorization", "DeviceCodeGrant"]

#: The JSON answer holds the device's secret: never cached (RFC 8628 §3.2, RFC 6749 §5.1).
_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
            ("Pragma", "no-cache")]


def verification_uri(state: State) -> str:
    parts = urlsplit(state.issuer)
    return f"{parts.scheme}://{parts.netloc}{url_for('uauth.device.device')}"


def device_scope(server: Any, request: UAuthRequest, client: Client) -> str:
    """The scope of a device authorization request: as asked, under the scope rules of
    /authorize; when absent (it is OPTIONAL, RFC 8628 §3.1), the client's registered scopes
    this provider knows (RFC 6749 §3.3: a pre-defined default)."""
    if request.payload.scope:
        check_requested_scope(SimpleNamespace(request=request, server=server,
                                              context=IssueContext()))
        return " ".join(dict.fromkeys(str(request.payload.scope).split()))
    known = server.state.settings.known_scope_set
    default = " ".join(s for s in dict.fromkeys(client.scope.split()) if s in known)
    if not default:
        raise InvalidScopeError("A scope is required: this client has no default scope.")
    return default


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """RFC 8628 §3.1-3.2, for clients registered with the device_code grant type."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def create_endpoint_response(self, request: UAuthRequest
                                 ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("This client is not registered for the device "
                                          "authorization grant.")
        state: State = self.server.state
        scope = device_scope(self.server, request, client)
        ttl = state.settings.device_code_ttl
        interval = state.settings.device_poll_interval
        started = start(state.store, client.client_id, scope, ttl=ttl, interval=interval,
                        now=state.now())
        uri = verification_uri(state)
        return 200, {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": uri,
            "verification_uri_complete": add_params_to_uri(uri, [("user_code",
                                                                  started.user_code)]),
            "expires_in": ttl,
            "interval": interval,
        }, _HEADERS


class DeviceCodeGrant(IssuesTokens, AuthlibDeviceCodeGrant):  # type: ignore[misc]
    """RFC 8628 §3.4-3.5: the device polls /token with its device code."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        """A poll's reads and writes in one batch: the device code's record with when it last
        polled, then the poll's note, held to the end (pending), or the spend with its user
        (approved)."""
        with state_of(self).store.batch():
            super().validate_token_request()

    def query_device_credential(self, device_code: str) -> DeviceGrant:
        found = find_device_grant(state_of(self).store, device_code)
        if found is None:  # RFC 6749 §5.2: an unknown grant is invalid_grant
            raise InvalidGrantError("The device code is unknown.")
        return found

    def validate_device_credential(self, credential: DeviceGrant) -> User:
        state = state_of(self)
        now = state.now()
        device_code = str(self.request.payload.data["device_code"])
        if credential.is_expired(now):
            raise ExpiredTokenError("The device code has expired; start again.")
        if credential.status == DENIED:
            raise AccessDeniedError("The person denied the request.")
        if credential.status == APPROVED:
            expect_user(state.users, str(credential.user_id))  # read as the code is spent
            redeemed = redeem(state.store, device_code)
            user = active_user(self, str(credential.user_id))
            if user is None or not redeemed:
                raise InvalidGrantError("The device code was already used.")
            return user
        if note_poll(state.store, device_code, credential, now):
            raise SlowDownError("Polling too fast: wait 5 seconds more between polls.")
        raise AuthorizationPendingError("The person has not decided yet.")

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request: UAuthRequest = self.request
        credential: DeviceGrant = request.credential
        client: Client = request.client
        state = state_of(self)
        grant_id = new_grant_id()
        self.context = IssueContext(
            auth=Authentication(auth_time=int(credential.auth_time or state.now()),
                                amr=tuple(credential.amr), acr=acr_for(credential.amr)),
            grant_id=grant_id)
        # A grant with refresh tokens starts its family with them, inside the response's batch
        # (issue_refresh_token); one without is noted here.
        if not wants_refresh_token(client, credential.scope):
            remember_grant(state.store, request.user.id, client.client_id, grant_id,
                           lives=grant_lifetime(state.settings, offline=False), now=state.now(),
                           offline=False)
        body: dict[str, Any] = self.generate_token(user=request.user, scope=credential.scope,
                                                   include_refresh_token=True)
        self.save_token(body)
        return 200, body, self.TOKEN_RESPONSE_HEADER
