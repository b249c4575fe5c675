"""A real SMTP server for the tests (aiosmtpd), on a free port, collecting what it receives.

Mails are parsed with the standard library as a mail client would; ``refuse`` makes the server
answer every message with an error (a temporary 451 or a permanent 550) to test failures.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.redis_server import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()
        return content

    @property
    def text(self) -> str:
        return self.part("plain")

    def links(self) -> list[str]:
        return re.findall(r"https?://[^\s<>\"]+", self.text)


@dataclass
class _Handler:
    mails: list[Received] = field(default_factory=list)
    refuse: str | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return self.refuse
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.cond:
            self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.cond.notify_all()
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Handler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def refuse(self, answer: str | None) -> None:
        self.handler.refuse = answer

    def clear(self) -> None:
        with self.handler.cond:
            self.handler.mails.clear()

    def to(self, address: str) -> list[Received]:
        with self.handler.cond:
            return [m for m in self.handler.mails if address in m.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """The mails to ``address`` once there are ``count`` (the sender is asynchronous)."""
        deadline = time.monotonic() + timeout
        with self.handler.cond:
            while True:
                found = [m for m in self.handler.mails if address in m.recipients]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, f"no mail to {address} after {timeout} s ({len(found)} found)"
                self.handler.cond.wait(left)
