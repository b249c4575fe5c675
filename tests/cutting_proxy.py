"""A TCP proxy that can cut a connection partway through a server's answer.

A kept connection that fails while its replies are being read is hard to bring about with a
real server alone: Redis answers a pipeline in one go. Put between a client and a server, this
proxy passes everything on both ways until :meth:`CuttingProxy.cut_after` arms it; then the next
bytes from the server are passed on only up to the given count, and that connection is closed
on both sides, as a network failure or a server crash would leave it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.redis_server import free_port


class CuttingProxy:
    """Listens on 127.0.0.1:``port`` and forwards each connection to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._cut: int | None = None
        self.cuts = 0
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, count: int) -> None:
        """Pass on only ``count`` more bytes of the next server answer, then close that
        connection."""
        with self._lock:
            self._cut = count

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while data := source.recv(65536):
                cut = None
                if from_server:
                    with self._lock:
                        cut, self._cut = self._cut, None
                if cut is None:
                    sink.sendall(data)
                    continue
                sink.sendall(data[:cut])
                self.cuts += 1
                break
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
