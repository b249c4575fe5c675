"""A real Redis Cluster owned by the test session: three primaries and three replicas on free
ports, made with ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from typing import cast

import redis


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ephemeral_floor() -> int:
    """The lowest port Linux gives outgoing connections (and ``free_port``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def cluster_ports(n: int) -> list[int]:
    """``n`` distinct free ports whose cluster bus ports (port + 10000) are free too, both below
    the ephemeral range: a port there can be taken by any outgoing connection between this
    check and the node's bind (a bus port at 38868 was, once, and the node did not start)."""
    rng = random.SystemRandom()
    top = min(30000, ephemeral_floor() - 10000)
    if top < 20000 + 10 * n:  # an unusual range: keep below 65535 at least
        top = 30000
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20000, top)
        if port not in ports and port + 10000 not in ports and _bindable(port) \
                and _bindable(port + 10000):
            ports.append(port)
    return ports


def cluster_required() -> bool:
    return os.environ.get("UAUTH_REQUIRE_REDIS_CLUSTER") == "1"


class RedisClusterServer:
    """Six ``redis-server`` processes; a primary fails over to its replica within ~1 s
    (``cluster-node-timeout 500``)."""

    def __init__(self, directory: Path, primaries: int = 3) -> None:
        self.directory = directory
        self.ports = cluster_ports(primaries * 2)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])

    def start_node(self, port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        folder = self.directory / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(folder / "nodes.conf"), "--cluster-node-timeout", "500",
             # a replica may always take over (a loaded test machine can delay its pings)
             "--cluster-replica-validity-factor", "0",
             "--save", "", "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
             "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        while True:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.processes[port].poll() is not None:
                    raise RuntimeError(f"redis-server --cluster-enabled did not start on {port}"
                                       ) from None
                time.sleep(0.02)

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not installed")
        for port in self.ports:
            self.start_node(port)
        made = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout[-500:]}")
        self.wait_ok()
        self.wait_replicas_in_sync()

    def wait_replicas_in_sync(self, timeout: float = 30) -> None:
        """Every replica has finished its first sync, so any primary may fail over."""
        deadline = time.monotonic() + timeout
        for port in self.ports:
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                while True:
                    info = cast(dict[str, Any], client.info("replication"))
                    if info.get("role") != "slave" or info.get("master_link_status") == "up":
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"replica {port} did not sync")
                    time.sleep(0.05)
            finally:
                client.close()

    def info(self, port: int) -> dict[str, str]:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            text = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        if isinstance(text, bytes):
            text = text.decode()
        return dict(line.split(":", 1) for line in str(text).split() if ":" in line)

    def wait_ok(self, timeout: float = 30) -> None:
        """Every running node says ``cluster_state:ok`` and agrees on the nodes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                alive = [p for p, proc in self.processes.items() if proc.poll() is None]
                if all(self.info(p).get("cluster_state") == "ok" for p in alive) and \
                        all(self.primary_ports(p) for p in alive):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def primary_ports(self, via: int | None = None) -> list[int]:
        """Ports of the nodes that serve slots now (primaries), as node ``via`` sees them."""
        port = via or next(p for p, proc in self.processes.items() if proc.poll() is None)
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return sorted({int(entry[2][1]) for entry in slots})

    def replica_of(self, primary: int) -> int:
        for port in self.ports:
            if port == primary or self.processes[port].poll() is not None:
                continue
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                info = cast(dict[str, Any], client.info("replication"))
            finally:
                client.close()
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary:
                return port
        raise RuntimeError(f"no replica of {primary}")

    def wait_failover(self, victim: int, timeout: float = 30) -> None:
        """A replica serves ``victim``'s slots now, as every other node sees it."""
        deadline = time.monotonic() + timeout
        alive = [p for p, proc in self.processes.items() if proc.poll() is None and p != victim]
        while True:
            try:
                if all(victim not in self.primary_ports(p) for p in alive):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from {victim}")
            time.sleep(0.1)
        self.wait_ok(timeout)

    def describe(self, key: str) -> str:
        """What each running node says of ``key``: its role, who serves the key's slot and
        whether it holds the key, with the last lines of its log (for a failure's message)."""
        lines = []
        for port, process in self.processes.items():
            if process.poll() is not None:
                lines.append(f"{port}: stopped")
                continue
            client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)

            def ask(*command: object, client: redis.Redis = client) -> Any:
                try:
                    return client.execute_command(*command)  # type: ignore[no-untyped-call]
                except redis.RedisError as exc:
                    return exc

            slot = ask("CLUSTER", "KEYSLOT", key)
            slots = ask("CLUSTER", "SLOTS")
            owners = slots if isinstance(slots, Exception) or isinstance(slot, Exception) else [
                int(entry[2][1]) for entry in slots if int(entry[0]) <= int(slot) <= int(entry[1])]
            lines.append(f"{port}: {ask('ROLE')!r}; slot {slot} served by {owners}; "
                         f"holds the key: {ask('EXISTS', key)!r}")
            client.close()
            log = self.directory / str(port) / "redis.log"
            if log.exists():
                lines.extend("    " + line for line in log.read_text().splitlines()[-8:])
        return "\n".join(lines)

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.kill()
        process.wait()

    def commands_processed(self) -> int:
        """Commands the primaries have run (``INFO stats``), for round-trip counts."""
        total = 0
        for port in self.primary_ports():
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                total += int(cast(dict[str, Any], client.info("stats"))["total_commands_processed"])
            finally:
                client.close()
        return total

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
