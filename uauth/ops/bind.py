"""Where the server listens, and what that says about its issuer.

Left unset, ``UAUTH_ISSUER`` follows a loopback address uauth serves on (``make run
BIND=127.0.0.1:5055`` just works). Any other address (``0.0.0.0:8000``, a unix socket) says
nothing about the URL people and clients reach the provider at, so uauth refuses to start
rather than publish ``http://127.0.0.1:5000`` as every endpoint. Used by ``uauth serve`` and by
:mod:`uauth.wsgi` under plain gunicorn.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

from flask import Config

from uauth.core.settings import ConfigError
from uauth.core.settings import is_loopback_host
from uauth.storage.filemodes import FILE_MODE


def split_bind(bind: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); None for a unix socket or fd."""
    if bind.startswith(("unix:", "fd://")):
        return None
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 (gunicorn's reading of ":80")


def loopback_origin(binds: list[str]) -> str | None:
    """``http://HOST:PORT`` when the server listens on exactly one loopback address."""
    if len(binds) != 1:
        return None
    parts = split_bind(binds[0])
    if parts is None or not is_loopback_host(parts[0]):
        return None
    host = f"[{parts[0]}]" if ":" in parts[0] else parts[0]
    return f"http://{host}:{parts[1]}"


def no_issuer(binds: list[str], config_file: Path) -> ConfigError:
    """The refusal: what is wrong, and the line that fixes it."""
    where = ", ".join(binds) or "no address"
    return ConfigError(
        f"uauth listens on {where}, which is not a loopback address, so it cannot tell the URL "
        "that people and clients reach it at; set UAUTH_ISSUER to that URL, e.g. "
        "`UAUTH_ISSUER=https://id.example.com` in the environment or "
        f"`UAUTH_ISSUER = \"https://id.example.com\"` in {config_file}")


def issuer_from_config_file(config_file: Path) -> str | None:
    """``UAUTH_ISSUER`` as the instance's config.py sets it, if it does."""
    values = Config(str(config_file.parent))
    values.from_pyfile(str(config_file), silent=True)
    issuer = values.get("UAUTH_ISSUER")
    return str(issuer) if issuer else None


def port_in_use(bind: str) -> str | None:
    """Why ``bind`` cannot be served (e.g. ``127.0.0.1:5000 is in use by pid 42 (gunicorn)``),
    or None when it is free. Binds and closes a socket the way gunicorn will."""
    parts = split_bind(bind)
    if parts is None:
        return None
    host, port = parts
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                holder = _listener(port)
                return f"{bind} is in use" + (f" by {holder}" if holder else "")
            return f"cannot listen on {bind}: {exc.strerror}"
    return None


def _listener(port: int) -> str | None:
    """``pid N (name)`` of the process listening on ``port``, when /proc lets us see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl local_address rem_address st ... inode
            listening = len(fields) > 9 and fields[3] == "0A"
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    return f"pid {pid} ({_program(argv.split(chr(0)))})"
        except OSError:
            continue
    return "another process"


def _program(argv: list[str]) -> str:
    """``gunicorn``, ``uauth``: the program, past the interpreter that runs it."""
    names = [Path(arg).name for arg in argv if arg]
    if len(names) > 1 and names[0].startswith("python"):
        rest = [n for n in names[1:] if not n.startswith("-")]
        return f"{names[0]} {rest[0]}" if rest else names[0]
    return names[0] if names else "?"


#: Written by ``uauth serve`` in the instance folder while it runs, so ``uauth check`` finds the
#: server (and the issuer it publishes) without ``--url``.
SERVING_FILE = "serving.json"


def record_serving(instance: Path, bind: str, issuer: str) -> Path:
    """Note where ``uauth serve`` listens (owner-only, as every file uauth writes)."""
    path = instance / SERVING_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps({"bind": bind, "issuer": issuer, "pid": os.getpid()}) + "\n")
    return path


def running_server(instance: Path) -> tuple[str, str] | None:
    """(origin to reach it at, issuer) of the ``uauth serve`` running on this instance."""
    try:
        found = json.loads((instance / SERVING_FILE).read_text())
        os.kill(int(found["pid"]), 0)  # still running?
    except (OSError, ValueError, KeyError, TypeError):
        return None
    parts = split_bind(str(found["bind"]))
    if parts is None:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(parts[0], parts[0])  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{parts[1]}", str(found["issuer"])
