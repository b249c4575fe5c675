"""Mail as the web layer sends it: rendered from overridable templates, with absolute links.

Templates live in ``templates/uauth/mail/<name>.txt`` (and ``.html``): a host app or an
operator's template folder overrides them like any other uauth template. Sending only queues
the mail (:class:`uauth.core.mail.Mailer`); the outcome is logged and audited when it is known.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask import render_template
from flask import url_for
from jinja2 import TemplateNotFound

from uauth.core.audit import MAIL_FAILED
from uauth.core.audit import MAIL_SENT
from uauth.core.audit import audit
from uauth.core.mail import Mail
from uauth.core.mail import Mailer
from uauth.core.mail import parse_smtp_url
from uauth.core.settings import Settings

if TYPE_CHECKING:
    from uauth.core.state import State

log = logging.getLogger("uauth.mail")

SUBJECTS = {
    "reset": "Reset your password",
    "verify": "Confirm your email address",
    "invite": "You are invited",
    "signup": "Confirm your email address to finish signing up",
}


def build_mailer(app: Flask, config: Settings) -> Mailer:
    """The app's mailer; its outcomes are audited inside the app (from the mail thread)."""
    url = config.smtp_url
    settings = parse_smtp_url(url, config.smtp_password) if url else None

    def outcome(mail: Mail, delivered: bool, attempts: int, reason: str) -> None:
        with app.app_context():
            audit(MAIL_SENT if delivered else MAIL_FAILED, user_id=mail.user_id,
                  purpose=mail.purpose, attempts=attempts, reason=reason or None)

    return Mailer(settings, config.mail_from, timeout=config.mail_timeout,
                  retries=config.mail_retries, on_outcome=outcome)


def absolute(state: State, endpoint: str, **values: Any) -> str:
    """An absolute link to one of our pages, on the issuer's origin (never the request's
    Host header, which a client chooses)."""
    parts = urlsplit(state.issuer)
    return f"{parts.scheme}://{parts.netloc}{url_for(endpoint, **values)}"


def render_mail(name: str, to: str, *, purpose: str | None = None, user_id: str | None = None,
                subject: str | None = None, **context: Any) -> Mail:
    """A mail from ``uauth/mail/<name>.txt`` and, when it exists, ``.html``."""
    text = render_template(f"uauth/mail/{name}.txt", **context)
    try:
        html: str | None = render_template(f"uauth/mail/{name}.html", **context)
    except TemplateNotFound:
        html = None
    return Mail(to=to, subject=subject or SUBJECTS.get(name, "A message from uauth"), text=text,
                html=html, purpose=purpose or name, user_id=user_id)


def send(state: State, mail: Mail) -> bool:
    """Queue a mail; False when no mail server is configured (already logged)."""
    return state.mailer.send(mail)
