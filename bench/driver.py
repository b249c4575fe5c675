"""The load driver: relying parties and browsers as plain keep-alive HTTP clients (stdlib only).

It speaks only the protocol (discovery, /authorize, a login form when one is shown, /token,
/userinfo), so the same code drives uauth and the reference provider. Each client process holds
one connection and one cookie jar, like one browser or one relying-party backend.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

REDIRECTS = {301, 302, 303, 307, 308}
#: Redirect hops one authorization may take (authorize, login, interaction pages, back).
MAX_HOPS = 12


class Failure(Exception):
    """An operation did not end as the protocol says it should."""


class Unsupported(Failure):
    """The provider refused the operation as not offered (e.g. ``unsupported_grant_type``)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Connection:
    """One keep-alive HTTP/1.1 connection to one origin, with a cookie jar.

    Servers that close after each response (gunicorn's sync worker) are reconnected
    transparently; the cost of that is the server's and is measured with it.
    """

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None
        self.requests = 0

    def send(self, method: str, url: str, *, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        reply, set_cookies = self._exchange(method, target, body, head)
        self.requests += 1
        for cookie in set_cookies:
            self._keep_cookie(cookie)
        return reply

    def _exchange(self, method: str, target: str, body: str | None, head: dict[str, str]
                  ) -> tuple[Reply, list[str]]:
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self._conn.request(method, target, body=body, headers=head)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.will_close:
            self.close()
        return reply, response.headers.get_all("Set-Cookie") or []

    def _keep_cookie(self, header: str) -> None:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.strip().partition("=")
        attributes = attributes.lower()
        if not value or "max-age=0" in attributes or "1970" in attributes:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class _FormParser(HTMLParser):
    """The first ``<form>`` of a page: its action and the values of its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._state = "before"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self._state == "before":
            self._state, self.action = "inside", values.get("action", "")
        elif tag == "input" and self._state == "inside" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._state == "inside":
            self._state = "after"


def read_form(page: bytes) -> tuple[str, dict[str, str]] | None:
    parser = _FormParser()
    parser.feed(page.decode("utf-8", "replace"))
    return None if parser.action is None else (parser.action, parser.fields)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636 §4.1-4.2."""
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Target:
    """A provider and the clients and user provisioned on it."""

    issuer: str
    #: Public first-party client (PKCE, no consent) for code flows, refresh and userinfo.
    spa_client: str
    redirect_uri: str
    #: Confidential client allowed ``client_credentials``: (client_id, client_secret).
    service_client: tuple[str, str] | None = None
    #: Username and password for a login form; None when the provider logs in by itself.
    login: tuple[str, str] | None = None
    scope: str = "openid email profile offline_access"
    #: The access tokens the clients get: ``jwt`` (three segments) or ``opaque`` (no dot).
    access_token_format: str = "jwt"
    #: Discovery document, fetched once by the orchestrator and handed to every client.
    metadata: dict[str, Any] = field(default_factory=dict)

    def discover(self, conn: Connection | None = None) -> Target:
        conn = conn or Connection(self.issuer)
        reply = conn.send("GET", self.issuer + "/.well-known/openid-configuration")
        if reply.status != 200:
            raise Failure(f"discovery at {self.issuer} answered {reply.status}")
        return Target(**{**self.__dict__, "metadata": reply.json()})


class Agent:
    """One browser and the relying party's backend: two connections, as in real life, so the
    back channel (/token, /userinfo) never carries the browser's session cookie."""

    def __init__(self, target: Target, connect: Callable[[str], Connection] = Connection) -> None:
        self.t = target
        self.browser = connect(target.issuer)
        self.backend = connect(target.issuer)
        self.refresh_token: str | None = None
        self.access_token: str | None = None

    def authorize(self, *, pushed: bool = False, scope: str | None = None) -> tuple[str, str]:
        """GET /authorize with PKCE, through any login pages, to the code at the redirect URI;
        ``pushed``: the relying party's backend pushes the request first (RFC 9126) and the
        browser carries only its ``request_uri``; ``scope``: other than the target's."""
        verifier, challenge = pkce_pair()
        state = b64url(secrets.token_bytes(12))
        query = {"response_type": "code", "client_id": self.t.spa_client,
                 "redirect_uri": self.t.redirect_uri, "scope": scope or self.t.scope,
                 "state": state,
                 "nonce": b64url(secrets.token_bytes(12)), "code_challenge": challenge,
                 "code_challenge_method": "S256"}
        if pushed:
            query = {"client_id": self.t.spa_client, "request_uri": self._push(query)}
        url = self.t.metadata["authorization_endpoint"] + "?" + urlencode(query)
        reply = self.browser.send("GET", url)
        for _ in range(MAX_HOPS):
            if reply.status in REDIRECTS:
                url = urljoin(url, reply.headers["location"])
                if url.startswith(self.t.redirect_uri):
                    params = dict(parse_qsl(urlsplit(url).query))
                    if params.get("state") != state or "code" not in params:
                        raise Failure(f"authorization response without code: {params}")
                    return params["code"], verifier
                reply = self.browser.send("GET", url)
            elif reply.status == 200 and self.t.login is not None:
                reply, url = self._submit_login(url, reply.body)
            else:
                raise Failure(f"authorize: {reply.status} at {url}: {reply.body[:200]!r}")
        raise Failure("authorize: too many redirects")

    def _push(self, query: dict[str, str]) -> str:
        """POST the authorization request to the pushed authorization request endpoint (a
        public client: ``client_id`` in the body); its ``request_uri``."""
        endpoint = self.t.metadata.get("pushed_authorization_request_endpoint")
        if not endpoint:
            raise Unsupported("no pushed_authorization_request_endpoint")
        reply = self.backend.send("POST", endpoint, form=query)
        if reply.status != 201:
            raise Failure(f"par: {reply.status} {reply.body[:200]!r}")
        return str(reply.json()["request_uri"])

    def _submit_login(self, url: str, page: bytes) -> tuple[Reply, str]:
        form = read_form(page)
        if form is None or self.t.login is None:
            raise Failure(f"authorize: a page without a login form at {url}")
        action, fields = form
        fields.update(username=self.t.login[0], password=self.t.login[1])
        target = urljoin(url, action) if action else url
        reply = self.browser.send("POST", target, form=fields)
        if reply.status not in REDIRECTS:
            raise Failure(f"login: {reply.status} at {target}")
        return reply, target

    def token(self, form: dict[str, str], *, confidential: bool = False) -> dict[str, Any]:
        headers = {}
        if confidential:
            headers = self._service_auth()
        else:
            form = {**form, "client_id": self.t.spa_client}
        reply = self.backend.send("POST", self.t.metadata["token_endpoint"], form=form,
                                  headers=headers)
        if reply.status != 200:
            error = _error_code(reply)
            message = f"token ({form['grant_type']}): {reply.status} {reply.body[:200]!r}"
            if error in ("unsupported_grant_type", "unauthorized_client"):
                raise Unsupported(f"{form['grant_type']}: {error}")
            raise Failure(message)
        return reply.json()

    def _service_auth(self) -> dict[str, str]:
        """The service client's ``client_secret_basic`` header."""
        assert self.t.service_client is not None
        client_id, secret = self.t.service_client
        pair = f"{client_id}:{secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def userinfo(self, access_token: str) -> dict[str, Any]:
        reply = self.backend.send("GET", self.t.metadata["userinfo_endpoint"],
                                  headers={"Authorization": "Bearer " + access_token})
        if reply.status != 200:
            raise Failure(f"userinfo: {reply.status} {reply.body[:200]!r}")
        return reply.json()

    # --- operations: each is one measured unit ----------------------------------------------

    def flow(self, *, pushed: bool = False, scope: str | None = None) -> None:
        """authorize -> code -> token (code + verifier) -> userinfo, with the session kept."""
        code, verifier = self.authorize(pushed=pushed, scope=scope)
        tokens = self.token({"grant_type": "authorization_code", "code": code,
                             "redirect_uri": self.t.redirect_uri, "code_verifier": verifier})
        if "id_token" not in tokens:
            raise Failure("no id_token in the token response")
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens.get("refresh_token", self.refresh_token)
        self.userinfo(tokens["access_token"])

    def pushed_flow(self) -> None:
        """The flow with its request pushed first (RFC 9126): /par, then /authorize with the
        ``request_uri``, token, userinfo."""
        self.flow(pushed=True)

    def sign_in(self) -> None:
        """The flow of a plain sign-in: the target's scope without ``offline_access``, so no
        refresh token comes (a provider may reuse the session's grant for the client)."""
        scope = " ".join(s for s in self.t.scope.split() if s != "offline_access")
        self.flow(scope=scope)

    def login_flow(self) -> None:
        """A first visit: a new browser session, so the flow includes the password login."""
        self.browser.cookies.clear()
        self.flow()

    def refresh(self) -> None:
        """One rotating refresh_token grant, always with the newest refresh token."""
        if self.refresh_token is None:
            raise Failure("no refresh token: the flow did not issue one")
        tokens = self.token({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
        if tokens.get("refresh_token") in (None, self.refresh_token):
            raise Failure("the refresh token was not rotated")
        self.refresh_token = tokens["refresh_token"]

    def client_credentials(self) -> None:
        tokens = self.token({"grant_type": "client_credentials"}, confidential=True)
        token = str(tokens.get("access_token", ""))
        if self.t.access_token_format == "opaque":
            if "." in token or len(token) < 43:
                raise Failure("client_credentials did not return an opaque access token")
        elif token.count(".") != 2:
            raise Failure("client_credentials did not return a JWT access token")

    def repeat_userinfo(self) -> None:
        if self.access_token is None:
            raise Failure("no access token")
        self.userinfo(self.access_token)

    def introspect(self) -> None:
        """A resource server (the service client) introspects the flow's access token, as it
        would on each API call it serves with an opaque token (RFC 7662)."""
        endpoint = self.t.metadata.get("introspection_endpoint")
        if not endpoint:
            raise Unsupported("no introspection_endpoint")
        if self.access_token is None or self.t.service_client is None:
            raise Failure("no access token, or no service client to introspect it")
        reply = self.backend.send("POST", endpoint, form={
            "token": self.access_token, "token_type_hint": "access_token"},
            headers=self._service_auth())
        if reply.status != 200 or reply.json().get("active") is not True:
            raise Failure(f"introspect: {reply.status} {reply.body[:200]!r}")

    @property
    def requests(self) -> int:
        return self.browser.requests + self.backend.requests

    def get(self, path: str) -> None:
        reply = self.browser.send("GET", self.t.issuer + path)
        if reply.status != 200:
            raise Failure(f"GET {path}: {reply.status}")


def _error_code(reply: Reply) -> str | None:
    try:
        return str(reply.json().get("error"))
    except ValueError:
        return None


#: Operation name -> (setup run once per client before timing, the timed operation).
OPERATIONS: dict[str, tuple[Callable[[Agent], None], Callable[[Agent], None]]] = {
    "flow": (Agent.flow, Agent.flow),
    "login": (lambda a: None, Agent.login_flow),
    "refresh": (Agent.flow, Agent.refresh),
    "cc": (lambda a: None, Agent.client_credentials),
    "userinfo": (Agent.flow, Agent.repeat_userinfo),
    "introspect": (Agent.flow, Agent.introspect),
    "par": (Agent.flow, Agent.pushed_flow),
    "sso": (Agent.flow, Agent.sign_in),
    "bare": (lambda a: None, lambda a: a.get("/")),
}


def prepare(target: Target, operation: str, connect: Callable[[str], Connection] = Connection
            ) -> tuple[Agent, Callable[[], None]]:
    """An agent set up for ``operation`` (raises :class:`Unsupported`/:class:`Failure`)."""
    agent = Agent(target, connect)
    setup, step = OPERATIONS[operation]
    setup(agent)
    step(agent)  # one untimed run: proves the operation works before any timing starts

    def run() -> None:
        step(agent)

    return agent, run


def timed(run: Callable[[], None], *, seconds: float, count: int) -> tuple[list[float], int, str]:
    """Run until ``seconds`` pass or ``count`` operations are done: (latencies, errors, first)."""
    latencies: list[float] = []
    errors, first = 0, ""
    deadline = time.perf_counter() + seconds
    while len(latencies) + errors < count and time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            run()
        except (Failure, OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            errors += 1
            first = first or repr(exc)
            if errors > 20:
                break
            continue
        latencies.append(time.perf_counter() - start)
    return latencies, errors, first
