"""``uauth check``: does this deployment work, end to end?

It checks the configuration, storage and keys, then talks HTTP to the server (a running one at
``--url``, or this app served in-process on a loopback port) like a relying party and a browser
would: health, discovery, JWKS, and a complete authorization-code + PKCE flow with a throwaway
client and user, which it removes afterwards whatever happened. Each step prints one line; the
result is True only if every step passed.
"""

from __future__ import annotations

import http.cookiejar
import secrets
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urljoin
from urllib.parse import urlsplit

import jwt
import requests
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from uauth.core import sessions
from uauth.core import totp
from uauth.core.attributes import catalogue
from uauth.core.audittrail import forget as forget_audit
from uauth.core.claims import SALT
from uauth.core.clients import Registration
from uauth.core.clients import list_clients
from uauth.core.clients import register_client
from uauth.core.clients import registration_rules
from uauth.core.clients import remove_client
from uauth.core.consents import apps_group
from uauth.core.consents import revoke_app
from uauth.core.models import User
from uauth.core.opaque import looks_opaque
from uauth.core.records import APP_GRANT
from uauth.core.records import ENDED
from uauth.core.records import REVOKED
from uauth.core.records import SESSION
from uauth.core.records import SETTING
from uauth.core.state import State
from uauth.core.tokens import decode_signed
from uauth.core.tokens import half_hash
from uauth.core.tokens import sign
from uauth.core.users import StoreUsers

#: Never contacted: the check reads the code from the redirect instead of following it.
CALLBACK = "http://127.0.0.1:9/uauth-check/callback"
TIMEOUT = 10


class StepFailed(Exception):
    """A step failed; the message says what was seen."""


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "fields": [], "buttons": []})
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1]["fields"].append((a["name"], a.get("value", "")))
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))


def forms(html: str) -> list[dict[str, Any]]:
    """The forms of a page: action, method, input fields and named buttons."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class _SecureCookiesOverHttp(http.cookiejar.DefaultCookiePolicy):
    """Send ``Secure`` cookies over http too: an https issuer checked at its backend's http
    address (``--url http://10.0.0.5:8000``) or in-process still keeps its login session."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return True


class Report:
    """Prints one line per step and remembers whether any failed."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.failed = False

    def ok(self, step: str, detail: str) -> None:
        self.echo(f"[ok]   {step:<10} {detail}")

    def warn(self, step: str, detail: str) -> None:
        self.echo(f"[warn] {step:<10} {detail}")

    def fail(self, step: str, detail: str) -> None:
        self.failed = True
        self.echo(f"[FAIL] {step:<10} {detail}")


#: Stand-in values by attribute type, so the throwaway user has every required attribute.
_SAMPLES = {"text": "uauth check", "email": "check@example.invalid", "phone": "+15555550100",
            "date": "2000-01-01"}


def throwaway_profile(state: State, username: str) -> dict[str, Any]:
    """An email address, and a value for each attribute ``UAUTH_REQUIRED_ATTRIBUTES`` asks of
    every user, so the flow is not stopped by the required-attributes page."""
    known = catalogue(state.settings.attributes)
    profile: dict[str, Any] = {"email": f"{username}@example.invalid"}
    for name in state.settings.required_attributes:
        attribute = known[name]
        if attribute.type == "choice" and attribute.choices:
            profile.setdefault(name, attribute.choices[0][0])
        else:
            profile.setdefault(name, _SAMPLES.get(attribute.type, "uauth check"))
    return profile


class Checker:
    """One run of the check against ``state`` (this deployment's config and storage)."""

    def __init__(self, state: State, base: str, report: Report) -> None:
        self.state = state
        self.issuer = state.issuer
        self.base = base.rstrip("/")
        self.report = report
        self.http = requests.Session()
        self.http.cookies.set_policy(_SecureCookiesOverHttp())
        self.created: dict[str, Any] = {}

    def at(self, url: str) -> str:
        """``url`` of the issuer's origin, reached at the origin being checked."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.issuer))
        if not url.startswith(origin + "/"):
            raise StepFailed(f"{url} is not under the issuer's origin {origin}")
        return self.base + url[len(origin):]

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=TIMEOUT, **kwargs)

    # --- before any HTTP ------------------------------------------------------------------

    def keys(self) -> None:
        rows = self.state.keys.describe()
        algs = self.state.settings.signing_algs
        for alg in algs:
            active = [r for r in rows if r.key.alg == alg and r.status == "active"]
            if not active:
                raise StepFailed(f"no active {alg} key; run `uauth keys rotate --alg {alg} --now`")
            token = sign(self.state, {"iss": self.issuer, "sub": "uauth-check", "iat": 0,
                                      "exp": self.state.now() + 60}, typ="JWT", alg=alg)
            decode_signed(self.state, token, typ=None, audience=None)
        pending = sum(1 for r in rows if r.status == "next")
        retiring = sum(1 for r in rows if r.status == "retiring")
        self.report.ok("keys", f"{', '.join(algs)} sign and verify; {len(rows)} published "
                       f"({pending} next, {retiring} retiring)")
        stranded = [c.client_id for c in list_clients(self.state.store)
                    if c.id_token_signed_response_alg not in (None, *algs)]
        if stranded:
            raise StepFailed(f"clients {', '.join(stranded)} registered an ID token algorithm "
                             "that UAUTH_SIGNING_ALGS does not enable")

    # --- the server, over HTTP -------------------------------------------------------------

    def health(self) -> None:
        prefix = self.state.settings.url_prefix
        for path in ("/healthz", "/readyz"):
            response = self.get(self.base + prefix + path)
            if response.status_code != 200:
                raise StepFailed(f"GET {prefix}{path} -> {response.status_code} {response.text}")
        self.report.ok("server", f"{self.base}{prefix}: /healthz and /readyz answer 200")

    def discovery(self) -> dict[str, Any]:
        response = self.get(self.at(self.issuer + "/.well-known/openid-configuration"))
        if response.status_code != 200:
            raise StepFailed(f"discovery -> {response.status_code}")
        meta: dict[str, Any] = response.json()
        if meta.get("issuer") != self.issuer:
            raise StepFailed(f"the server's issuer is {meta.get('issuer')!r}, this config's "
                             f"{self.issuer!r}: is it the same deployment?")
        for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint",
                     "jwks_uri"):
            if not str(meta.get(name, "")).startswith(self.issuer + "/"):
                self.report.warn("discovery", f"{name} {meta.get(name)} is not under the "
                                 "issuer; check UAUTH_URL_PREFIX against the issuer's path")
            self.at(str(meta[name]))
        self.report.ok("discovery", f"issuer {self.issuer} and every endpoint under its origin")
        return meta

    def jwks(self, meta: dict[str, Any]) -> jwt.PyJWKSet:
        document = self.get(self.at(meta["jwks_uri"])).json()
        published = {k["kid"] for k in document["keys"]}
        active = {r.key.kid for r in self.state.keys.describe() if r.status == "active"}
        if not active <= published:
            raise StepFailed("the server does not publish the keys storage holds: does it use "
                             "the same UAUTH_STORAGE (and UAUTH_REDIS_PREFIX) and SECRET_KEY?")
        self.report.ok("jwks", f"publishes {len(published)} key(s), every active one included")
        return jwt.PyJWKSet.from_dict(document)

    # --- the flow ---------------------------------------------------------------------------

    def provision(self) -> tuple[str, str, str, str]:
        state = self.state
        assert isinstance(state.users, StoreUsers)
        username = f"uauth-check-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(24)
        user = state.users.create(username, password, throwaway_profile(state, username))
        self.created["user"] = user
        if state.settings.mfa == "required":  # the flow then asks for a second step
            _, self.created["totp"] = state.factors.add_totp(user.id, "uauth check")
        # Pairwise like the deployment's clients once it has a salt; never the one to make it.
        salted = state.store.find(SETTING, SALT) is not None
        client, secret = register_client(state.store, Registration(
            name="uauth check", redirect_uris=[CALLBACK], scope="openid email",
            grant_types=["authorization_code"], subject_type=None if salted else "public"),
            registration_rules(state), now=state.now())
        self.created["client"] = client.client_id
        assert secret is not None
        self.report.ok("provision", f"throwaway user {username} and client {client.client_id}")
        return username, password, client.client_id, secret

    def authorize(self, url: str, username: str, password: str) -> dict[str, str]:
        """Drive login and consent like a person; returns the redirect's parameters."""
        response = self.get(url)
        self.report.ok("flow", f"GET authorization endpoint -> {_outcome(response)}")
        for _ in range(8):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if target.startswith(CALLBACK):
                    query = parse_qs(urlsplit(target).query)
                    return {k: v[0] for k, v in query.items()}
                response = self.get(target)
                continue
            page = forms(response.text)
            if response.status_code == 200 and page and any(
                    name == "password" for name, _ in page[0]["fields"]):
                response = self.submit(response, page[0], {"username": username,
                                                            "password": password})
                self.report.ok("flow", f"POST login form -> {_outcome(response)}")
                continue
            if response.status_code == 200 and page and self.created.get("totp") and any(
                    name == "otp" for name, _ in page[0]["fields"]):
                code = totp.code_at(self.created["totp"], self.state.clock())
                response = self.submit(response, page[0], {"otp": code})
                self.report.ok("flow", f"POST second factor (TOTP) -> {_outcome(response)}")
                continue
            if response.status_code == 200 and page and page[0]["buttons"]:
                response = self.submit(response, page[0], {}, ("consent", "allow"))
                self.report.ok("flow", f"POST consent (allow) -> {_outcome(response)}")
                continue
            raise StepFailed(f"unexpected page {urlsplit(response.url).path} "
                             f"({response.status_code})")
        raise StepFailed("too many redirects and pages before the client's callback")

    def submit(self, page: requests.Response, form: dict[str, Any], values: dict[str, str],
               button: tuple[str, str] | None = None) -> requests.Response:
        data = dict(form["fields"])
        data.update(values)
        if button:
            data[button[0]] = button[1]
        action = urljoin(page.url, form["action"] or page.url)
        return self.http.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)

    def flow(self, meta: dict[str, Any], keys: jwt.PyJWKSet) -> None:
        username, password, client_id, secret = self.provision()
        verifier, nonce, csrf = (secrets.token_urlsafe(48), secrets.token_urlsafe(12),
                                 secrets.token_urlsafe(12))
        url = add_params_to_uri(self.at(meta["authorization_endpoint"]), [
            ("response_type", "code"), ("client_id", client_id), ("redirect_uri", CALLBACK),
            ("scope", "openid email"), ("state", csrf), ("nonce", nonce),
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256")])
        params = self.authorize(url, username, password)
        if params.get("state") != csrf or params.get("iss") != self.issuer or "code" not in params:
            raise StepFailed(f"the callback lacks code, state or iss: {sorted(params)}")
        self.report.ok("flow", "redirected to the client with code, state and iss")
        response = self.http.post(self.at(meta["token_endpoint"]), auth=(client_id, secret),
                                  timeout=TIMEOUT, data={
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": CALLBACK, "code_verifier": verifier})
        if response.status_code != 200:
            raise StepFailed(f"POST /token -> {response.status_code} {response.text}")
        token = response.json()
        self.report.ok("flow", "POST /token with the PKCE verifier -> 200")
        claims = self.verify(token, keys, client_id, nonce)
        info = self.get(self.at(meta["userinfo_endpoint"]),
                        headers={"Authorization": f"Bearer {token['access_token']}"})
        if info.status_code != 200 or info.json().get("sub") != claims["sub"]:
            raise StepFailed(f"GET /userinfo -> {info.status_code} {info.text}")
        self.report.ok("flow", "GET /userinfo -> 200, same subject")

    def verify(self, token: dict[str, Any], keys: jwt.PyJWKSet, client_id: str, nonce: str
               ) -> dict[str, Any]:
        """Verify both tokens as a relying party and a resource server would, with the JWKS (an
        opaque access token, ``UAUTH_ACCESS_TOKEN_FORMAT = "opaque"``, is left to /userinfo)."""
        checked = [("id_token", client_id)]
        opaque = looks_opaque(token["access_token"])
        if not opaque:
            checked.append(("access_token", self.issuer))
        results = []
        for name, audience in checked:
            header = jwt.get_unverified_header(token[name])
            key = keys[header["kid"]]
            results.append(jwt.decode(token[name], key.key, algorithms=[header["alg"]],
                                      audience=audience, issuer=self.issuer))
        claims = results[0]
        alg = jwt.get_unverified_header(token["id_token"])["alg"]
        if claims.get("nonce") != nonce or claims.get("at_hash") != half_hash(
                token["access_token"], alg):
            raise StepFailed("the ID token's nonce or at_hash is wrong")
        self.report.ok("flow", f"ID token ({alg}) verified with the JWKS, the access token "
                       "is opaque (checked at /userinfo)" if opaque else
                       f"ID token ({alg}) and access token verified with the JWKS")
        return claims

    def cleanup(self) -> None:
        """Remove everything the check created, the tombstones of its revocations included
        (they would otherwise outlive it by weeks): no token of it exists any more."""
        store = self.state.store
        user: User | None = self.created.get("user")
        client_id = self.created.get("client")
        tombstones: list[tuple[str, str]] = []
        if user:
            tombstones += [(REVOKED, f"grant:{r['grant_id']}") for kind, _, r in
                           store.grant_records(apps_group(user.id)) if kind == APP_GRANT]
            tombstones += [(ENDED, key) for kind, key, _ in
                           store.grant_records(sessions.user_group(user.id))
                           if kind == SESSION]
        if client_id:
            if user:  # consent, grant notes, and the grants' tokens
                revoke_app(self.state, user.id, client_id)
            remove_client(store, client_id)
        if user:
            sessions.end_all(self.state, user.id)
            self.state.factors.reset(user.id)
            store.revoke_grant(apps_group(user.id))  # what is left of the user's: subjects
            StoreUsers(store, self.state.clock).delete(user)
        for kind, key in tombstones:
            store.delete(kind, key)
        if user or client_id:  # the audit events it caused, kept for the console
            forget_audit(store, user_id=user.id if user else None, client_id=client_id,
                         grants=[key.removeprefix("grant:") for kind, key in tombstones
                                 if kind == REVOKED])
        if self.created:
            self.report.ok("cleanup", "removed the throwaway client, user, login session, "
                           "consent and grant")


def _outcome(response: requests.Response) -> str:
    """``302 /login`` or ``200``: the status and, for a redirect, where to (never its query)."""
    if response.is_redirect:
        return f"{response.status_code} {urlsplit(response.headers['Location']).path}"
    return str(response.status_code)


@contextmanager
def serve_in_process(app: Flask) -> Iterator[str]:
    """This app on a free loopback port, in a thread, for the check's HTTP steps."""
    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """The check prints its own steps."""

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def run(state: State, base: str, report: Report) -> bool:
    """Every step against the server at ``base``; True when the deployment works."""
    checker = Checker(state, base, report)
    steps: list[Callable[[], Any]] = [checker.keys, checker.health]
    try:
        for step in steps:
            step()
        meta = checker.discovery()
        keys = checker.jwks(meta)
        if isinstance(state.users, StoreUsers):
            checker.flow(meta, keys)
        else:
            report.warn("flow", "skipped: users live in the host app's directory, where this "
                        "command cannot create a throwaway user")
    except StepFailed as exc:
        report.fail("check", str(exc))
    except requests.RequestException as exc:
        report.fail("check", f"cannot reach the server at {base}: {type(exc).__name__}")
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        report.fail("check", f"unexpected answer: {type(exc).__name__}: {exc}")
    finally:
        checker.cleanup()
    return not report.failed
