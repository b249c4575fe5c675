"""A small HTTP server on loopback for what lives outside the provider in a test: a relying
party's page, a sector identifier document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@contextmanager
def serve(documents: Mapping[str, bytes], content_type: str,
          posted: list[bytes] | None = None) -> Iterator[str]:
    """Serve ``documents`` by path (read at request time, so a test may change them); 404
    otherwise. POSTs are answered the same way, their bodies appended to ``posted`` (a form_post
    response arriving at a relying party). Yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if posted is not None:
                posted.append(body)
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            body = documents.get(urlsplit(self.path).path)
            self.send_response(404 if body is None else 200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
