"""A real uauth under gunicorn, started the way an operator starts it (``uauth serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import requests

from tests.redis_server import free_port


class LiveServer:
    def __init__(self, instance: Path, *, storage: str, workers: int = 2,
                 env: dict[str, str] | None = None) -> None:
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = storage
        self.workers = workers
        self.extra_env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.log_path = instance.parent / f"gunicorn-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"UAUTH_ISSUER": self.url, "UAUTH_STORAGE": self.storage,
                    "UAUTH_INSTANCE": str(self.instance)})
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``uauth`` against this server's instance and storage."""
        return subprocess.run([sys.executable, "-m", "uauth", *args], input=stdin,
                              capture_output=True, text=True, env=self.env(), timeout=60)

    def start(self) -> LiveServer:
        with open(self.log_path, "w") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uauth serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or a worker still booting on a loaded machine.
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uauth serve did not answer: {self.log_path.read_text()[-2000:]}")

    def _spawn(self, log: IO[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "uauth", "serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, text=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text()
