"""A real https server on loopback, its certificate from a trustme test CA, standing in for the
sites that publish client ID metadata documents and JWK Sets."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme


@dataclass
class Site:
    """Serves ``documents[path] = (status, body, headers)``; ``origin`` is its https URL."""

    origin: str
    ca_file: Path
    documents: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path

    def publish(self, path: str, document: Any, status: int = 200, **headers: str) -> str:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.documents[path] = (status, body, {"Content-Type": "application/json", **headers})
        return self.url(path)


@contextmanager
def serve(tmp: Path, host: str = "127.0.0.1") -> Iterator[Site]:
    ca = trustme.CA()
    cert = ca.issue_cert(host)
    ca_file = tmp / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    site: Site

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            site.hits.append(self.path)
            if self.path == "/slow":
                time.sleep(7)
            status, body, headers = site.documents.get(self.path, (404, b"", {}))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            return None  # a fetcher that gave up is expected

    server = Server((host, 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    site = Site(f"https://{host}:{server.server_address[1]}", ca_file)
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
