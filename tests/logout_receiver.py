"""A relying party's back-channel logout endpoint, on loopback, for tests.

Paths choose the behaviour: ``/ok`` answers 200, ``/fail`` 500, ``/refuse`` 400, ``/slow`` 200
after :data:`SLOW_SECONDS`, ``/hang`` 200 after :data:`HANG_SECONDS` (longer than any timeout). Every POST is recorded so a test can wait for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

SLOW_SECONDS = 2.0
HANG_SECONDS = 30.0
STATUS = {"/ok": 200, "/fail": 500, "/refuse": 400, "/slow": 200, "/hang": 200}


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    form: dict[str, list[str]]

    @property
    def logout_token(self) -> str:
        return self.form["logout_token"][0]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("ascii")
                path = self.path.split("?")[0]
                if path == "/slow":
                    time.sleep(SLOW_SECONDS)
                if path == "/hang":
                    time.sleep(HANG_SECONDS)
                with receiver._changed:
                    receiver.received.append(Received(
                        path, self.headers.get("Content-Type", ""), parse_qs(body)))
                    receiver._changed.notify_all()
                self.send_response(STATUS.get(path, 404))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    def wait_for(self, path: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` POSTs to ``path``, waiting up to ``timeout`` seconds for them."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.at(path)) >= count, timeout=timeout)
            found = self.at(path)
        assert len(found) >= count, f"{len(found)} POST(s) to {path}, expected {count}"
        return found[:count]

    def posts_within(self, path: str, seconds: float = 1.0) -> list[Received]:
        """POSTs to ``path`` arriving within ``seconds``: deliveries run concurrently, so a
        check that one never comes needs a bound, not a glance."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self.at(path)), timeout=seconds)
            return self.at(path)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@contextmanager
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running._thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        running._thread.join()
