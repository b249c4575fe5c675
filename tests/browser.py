"""A scripted browser for the provider's pages: real HTTP, real cookies, real forms and CSRF."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

from uauth.ops.selfcheck import forms


class Browser:
    """Follows the provider's redirects and fills in its pages, stopping at the client."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.pages: list[str] = []

    def _inside(self, url: str) -> bool:
        return url.startswith(self.base + "/") or url.startswith("/")

    def submit(self, page: requests.Response, values: dict[str, str], button: tuple[str, str]
               | None = None) -> requests.Response:
        form = forms(page.text)[0]
        data = dict(form["fields"])
        data.update(values)
        if button:
            data[button[0]] = button[1]
        action = urljoin(page.url, str(form["action"]) or page.url)
        return self.http.post(action, data=data, allow_redirects=False, timeout=10)

    def authorize(self, url: str, *, username: str = "alice", password: str = "password123",
                  consent: str = "allow", max_steps: int = 12,
                  login_fields: tuple[str, str] = ("username", "password")) -> requests.Response:
        """Drive an authorization request to the response that leaves the provider.

        Returns the final response: a redirect to the client (``Location``), a form_post page,
        or an error page.
        """
        response = self.http.get(url, allow_redirects=False, timeout=10)
        for _ in range(max_steps):
            self.pages.append(response.url)
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if not self._inside(target):
                    return response
                response = self.http.get(target, allow_redirects=False, timeout=10)
                continue
            path = urlsplit(response.url).path
            if response.status_code in (200, 401) and path.endswith("/login"):
                name_field, password_field = login_fields
                response = self.submit(response, {name_field: username, password_field: password})
                if response.status_code == 401:
                    return response
                continue
            if response.status_code == 200 and 'name="consent"' in response.text:
                response = self.submit(response, {}, ("consent", consent))
                continue
            return response
        raise AssertionError(f"too many steps: {self.pages}")


def location(response: requests.Response) -> str:
    assert response.is_redirect, (response.status_code, response.text[:500])
    return str(response.headers["Location"])


def csrf_token(html: str, prefix: str = "") -> str:
    """The CSRF token of the (``prefix``-ed, for pages with several forms) form on a page."""
    name = f"{prefix}-csrf_token" if prefix else "csrf_token"
    match = re.search(rf'name="{name}" type="hidden" value="([^"]+)"', html)
    assert match, f"no {name} on the page"
    return match.group(1)


def callback(response: requests.Response, redirect_uri: str) -> tuple[str, dict[str, str]]:
    """The authorization response as the client receives it: its mode and its parameters.

    A redirect carries them in the query or the fragment; a form_post page in hidden fields of
    a form that posts to the redirect URI (what its script, or a person pressing the button,
    submits).
    """
    if response.is_redirect:
        target = str(response.headers["Location"])
        parts = urlsplit(target)
        assert target.startswith(redirect_uri), target
        if parts.fragment:
            assert not parts.query, "parameters in one place only"
            return "fragment", dict(parse_qsl(parts.fragment, keep_blank_values=True))
        return "query", dict(parse_qsl(parts.query, keep_blank_values=True))
    assert response.status_code == 200, (response.status_code, response.text[:500])
    page = forms(response.text)
    assert len(page) == 1 and page[0]["action"] == redirect_uri, page
    assert str(page[0]["method"]).lower() == "post"
    return "form_post", dict(page[0]["fields"])
