"""Authlib's AuthorizationServer, bound to one app's state: grants, clients, token persistence."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cached_property
from functools import lru_cache
from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Payload
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Response
from flask import json
from flask import request as http_request
from werkzeug.datastructures import MultiDict

from uauth.core.audit import CLIENT_AUTH_FAILED
from uauth.core.audit import CLIENT_AUTH_THROTTLED
from uauth.core.audit import audit
from uauth.core.cimd import is_metadata_url
from uauth.core.cimd import resolve
from uauth.core.models import Client

from .client_assertion import register as register_private_key_jwt
from .end_session import EndSession
from .endpoints import register_endpoints
from .grants import register_grants
from .grants.device_code import DeviceAuthorization
from .registration import register as register_registration

if TYPE_CHECKING:
    from uauth.core.state import State


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, data: MultiDict[str, str]) -> None:
        self._data = data

    @property
    def data(self) -> MultiDict[str, str]:
        return self._data

    @cached_property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key in self._data:
            values[key].extend(self._data.getlist(key))
        return values


@lru_cache(maxsize=8)
def _check_transport(issuer: str) -> None:
    """Authlib's transport check (``InsecureTransportError``), once per issuer: a request's URI
    is the issuer and a path, so its answer is the issuer's (an exception is not cached)."""
    InsecureTransportError.check(issuer + "/")


class UAuthRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request whose parameters the view chose (query+form, or a JSON body).

    The transport check runs against the configured issuer, which start-up already forced to
    https or loopback, so TLS terminated at a proxy works. ``OAuth2Request.__init__`` is not
    called: it would make that check on every request (parsing the URI and, on loopback, an
    IP address) and test ``headers or {}``, which walks the whole WSGI environ; 15 µs of a
    token request. The fields it sets are set here, and a test compares them with Authlib's.
    """

    def __init__(self, method: str, path: str, headers: Any, data: MultiDict[str, str],
                 issuer: str) -> None:
        _check_transport(issuer)
        self.method = method
        self.uri = issuer + path
        self.headers = headers
        self._body: Any = None
        self.payload = _Payload(data)
        self.client: Any = None
        self.auth_method: Any = None
        self.user: Any = None
        self.authorization_code: Any = None
        self.refresh_token: Any = None
        self.credential: Any = None
        self._scope: Any = None

    def set_param(self, name: str, value: str) -> None:
        """Replace one parameter for the grant (a default the server chose), leaving the
        view's own copy of the parameters as the client sent them."""
        data = self.payload.data.copy()
        data[name] = value
        self.payload = _Payload(data)

    @property
    def form(self) -> MultiDict[str, str]:
        return self.payload.data


class ClientThrottled(OAuth2Error):  # type: ignore[misc]
    """Too many failed client authentications from here: 429 with ``Retry-After``."""

    error = "invalid_client"
    status_code = 429

    def __init__(self, wait: int) -> None:
        super().__init__("Too many failed client authentications; retry later.")
        self.wait = wait

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.wait))]


def claimed_client_id(request: OAuth2Request) -> str:
    """The client id a request claims (Basic header, else the body), before authentication."""
    basic_id, _ = extract_basic_authorization(request.headers)
    return str(basic_id or request.payload.data.get("client_id") or "-")


def authenticates_twice(request: OAuth2Request) -> bool:
    """True when a request authenticates more than once (Basic and a secret or assertion in
    the body), which RFC 6749 §2.3 forbids."""
    basic_id, _ = extract_basic_authorization(request.headers)
    data = request.payload.data
    return bool(basic_id) and bool(data.get("client_secret") or data.get("client_assertion"))


class UAuthServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, state: State) -> None:
        super().__init__(scopes_supported=None)
        self.state = state
        #: The discovery document (RFC 8414), built by the web layer and set by the wiring;
        #: dynamic registration checks client metadata against it.
        self.discovery: Callable[[], dict[str, Any]] | None = None

    def query_client(self, client_id: str) -> Client | None:
        if is_metadata_url(client_id) and self.state.settings.cimd != "off":
            return resolve(self.state, client_id)  # invalid_client, with the reason
        return self.state.clients.get(client_id)

    def authenticate_client(self, request: OAuth2Request, methods: list[str],
                            endpoint: str = "token") -> Client:
        """Authlib's client authentication, throttled per client and address (throttle.py):
        storage is touched only when authentication fails."""
        if authenticates_twice(request):
            raise InvalidRequestError("Use one client authentication method per request "
                                      "(RFC 6749 section 2.3).")
        throttle = self.state.throttle
        claimed = claimed_client_id(request)
        keys = throttle.client_keys(claimed, http_request.remote_addr)
        wait = throttle.locally_blocked(keys)
        if wait:
            audit(CLIENT_AUTH_THROTTLED, client_id=claimed, endpoint=endpoint, retry_after=wait)
            raise ClientThrottled(wait)
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            wait = throttle.failed(keys, shared=False)
            audit(CLIENT_AUTH_FAILED, client_id=claimed, endpoint=endpoint,
                  retry_after=wait or None)
            if wait:
                raise ClientThrottled(wait) from None
            raise
        return client

    def save_token(self, token: dict[str, Any], request: UAuthRequest) -> None:
        """Nothing left to save: what must be stored (a refresh token, an opaque access
        token's claims) was stored where the tokens were issued
        (:func:`uauth.oauth.grants.issuance.issue_tokens`); JWTs are never stored."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise RuntimeError("uauth views build the OAuth request themselves")

    def create_json_request(self, request: Any) -> Any:
        raise RuntimeError("uauth views build the OAuth request themselves")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(body, status=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def build_server(state: State) -> UAuthServer:
    server = UAuthServer(state)
    register_private_key_jwt(server)
    register_grants(server)
    register_registration(server)
    register_endpoints(server)
    server.register_endpoint(EndSession)
    server.register_endpoint(DeviceAuthorization)
    return server
