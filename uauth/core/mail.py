"""Outgoing mail: reset, verification and invitation messages, sent off the request thread.

No Flask here: the web layer renders the message (text and HTML, from overridable templates)
and hands it to :class:`Mailer`, which returns at once. Like back-channel logout
(:mod:`uauth.core.backchannel`), delivery runs on a small thread pool per worker process: each
attempt waits at most ``UAUTH_MAIL_TIMEOUT`` seconds, a connection failure or a temporary
refusal (4xx) is retried with backoff up to ``UAUTH_MAIL_RETRIES`` times, a permanent refusal
(5xx) is not. The outcome goes to a callback (the wiring logs and audits it); a message's text,
which holds a link that works once, is never logged.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs
from urllib.parse import unquote
from urllib.parse import urlsplit

log = logging.getLogger("uauth.mail")

#: Seconds before the first retry; doubled for each further one.
BACKOFF = 0.5
#: Mails in flight per worker process.
POOL_SIZE = 2
TLS_MODES = ("none", "starttls", "ssl")


class MailConfigError(ValueError):
    """``UAUTH_SMTP_URL`` cannot be used; the message says why."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    #: ``none``, ``starttls`` (``smtp://…?starttls=true``) or ``ssl`` (``smtps://``).
    tls: str
    username: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never print the password
        return f"SmtpSettings({self.host}:{self.port}, tls={self.tls}, user={self.username!r})"


def parse_smtp_url(url: str, password: str) -> SmtpSettings:
    """``smtp://[user[:pass]@]host[:port][?starttls=true]`` or ``smtps://…`` (port 465).

    :param password: used when the URL carries none (``UAUTH_SMTP_PASSWORD``).
    :raises MailConfigError: naming what is wrong, never echoing a password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise MailConfigError("use smtp://host:port (add ?starttls=true for STARTTLS) or "
                              "smtps://host:465")
    try:
        port = parts.port
    except ValueError:
        raise MailConfigError("the port is not a number") from None
    if not parts.hostname:
        raise MailConfigError("the URL names no host")
    query = parse_qs(parts.query)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise MailConfigError(f"unknown option {sorted(unknown)[0]!r}; only starttls=true")
    starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes", "on")
    if parts.scheme == "smtps":
        if starttls:
            raise MailConfigError("smtps:// is TLS from the start; starttls=true is for smtp://")
        tls = "ssl"
    else:
        tls = "starttls" if starttls else "none"
    return SmtpSettings(
        host=parts.hostname, port=port or (465 if tls == "ssl" else 25), tls=tls,
        username=unquote(parts.username or ""),
        password=unquote(parts.password) if parts.password else password)


@dataclass(frozen=True)
class Mail:
    """One message to one person: what the web layer rendered from the mail templates."""

    to: str
    subject: str
    text: str
    html: str | None = None
    #: What the mail is for (``reset``, ``verify``, ``invite``, ``signup``): logs and audit.
    purpose: str = ""
    user_id: str | None = None


def build(sender: str, mail: Mail) -> EmailMessage:
    """A MIME message: text, and HTML as the alternative when there is one."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    domain = sender.rsplit("@", 1)[-1].strip(" >") or None
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    return message


@contextmanager
def _session(settings: SmtpSettings, timeout: float,
             context: ssl.SSLContext) -> Iterator[smtplib.SMTP]:
    """A connection greeted, in TLS as the settings say and logged in: sending and probing
    go the same way, so a probe that passes means a send would get as far. Closed (QUIT)
    on the way out."""
    client: smtplib.SMTP
    if settings.tls == "ssl":
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    with client:
        if settings.tls == "starttls":
            client.starttls(context=context)
        if settings.username:
            client.login(settings.username, settings.password)
        yield client


def deliver_once(settings: SmtpSettings, message: EmailMessage, timeout: float) -> None:
    """One attempt over SMTP; raises what smtplib raises."""
    with _session(settings, timeout, ssl.create_default_context()) as client:
        client.send_message(message)


def probe(settings: SmtpSettings, timeout: float) -> str | None:
    """Connect, greet, TLS and log in as sending would, without sending; why not, or None."""
    context = ssl.create_default_context()
    try:
        with _session(settings, timeout, context) as client:
            code, _ = client.noop()
            if code != 250:
                return f"the server answered NOOP with {code}"
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _permanent(exc: Exception) -> bool:
    """A 5xx answer (a refused recipient, failed authentication): sending again won't help."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        return bool(codes) and all(c >= 500 for c in codes)
    return isinstance(code, int) and code >= 500


#: Called once per mail with (mail, delivered, attempts, reason).
Outcome = Callable[[Mail, bool, int, str], None]


class Mailer:
    """The per-worker sender: a thread pool, created after fork on first use."""

    def __init__(self, settings: SmtpSettings | None, sender: str, *, timeout: float,
                 retries: int, on_outcome: Outcome | None = None) -> None:
        self.settings = settings
        self.sender = sender
        self.timeout = timeout
        self.retries = retries
        self.on_outcome = on_outcome
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: set[Future[bool]] = set()

    @property
    def configured(self) -> bool:
        """True when mail can be sent at all (``UAUTH_SMTP_URL`` and ``UAUTH_MAIL_FROM``)."""
        return self.settings is not None and bool(self.sender)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A pool inherited through fork has no threads in the child: start anew.
                self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="uauth-mail")
                self._pid = os.getpid()
                self._pending = set()
            return self._pool

    def send(self, mail: Mail) -> bool:
        """Queue one mail and return at once; False (and nothing queued) without SMTP."""
        if not self.configured:
            log.warning("no mail sent (%s): UAUTH_SMTP_URL or UAUTH_MAIL_FROM is not set",
                        mail.purpose or "mail")
            return False
        future = self._executor().submit(self._deliver, mail)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def run(self, job: Callable[[], object]) -> bool:
        """Run ``job`` on the mail thread (work whose duration must not show in a page's
        answer, such as finding whom to mail); False (and nothing run) without SMTP."""
        if not self.configured:
            return False

        def wrapped() -> bool:
            try:
                job()
            except Exception:
                log.exception("mail job failed")
                return False
            return True

        future = self._executor().submit(wrapped)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float) -> bool:
        """Wait for queued mail and the mail a queued job queues in turn (the CLI, before it
        exits; tests); False if some is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or wait(pending, timeout=left).not_done:
                return False

    def deadline(self) -> float:
        """Longest one mail can take, retries and backoff included."""
        return (self.retries + 1) * self.timeout * 3 + BACKOFF * (1 << self.retries)

    def _deliver(self, mail: Mail) -> bool:
        attempts, reason, delivered = 0, "", False
        try:
            attempts, reason = self._attempts(mail)
            delivered = not reason
        except Exception as exc:  # never let a thread die silently
            reason = type(exc).__name__
            log.exception("mail (%s) failed", mail.purpose)
        if self.on_outcome is not None:
            try:
                self.on_outcome(mail, delivered, attempts, reason)
            except Exception:
                log.exception("mail outcome callback failed")
        return delivered

    def _attempts(self, mail: Mail) -> tuple[int, str]:
        assert self.settings is not None
        message = build(self.sender, mail)
        reason = ""
        attempt = 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF * (1 << (attempt - 1)))
            try:
                deliver_once(self.settings, message, self.timeout)
            except (smtplib.SMTPException, OSError) as exc:
                code = getattr(exc, "smtp_code", None)
                reason = f"{type(exc).__name__}{f' {code}' if code else ''}"
                if _permanent(exc):
                    break
                continue
            log.info("mail (%s) delivered", mail.purpose)
            return attempt + 1, ""
        log.warning("mail (%s) failed after %d attempt(s): %s", mail.purpose, attempt + 1,
                    reason)
        return attempt + 1, reason
