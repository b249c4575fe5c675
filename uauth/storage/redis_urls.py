"""The Redis URLs uauth accepts, read without the Redis client: settings validate them in every
worker, and a worker on SQLite or PostgreSQL should not load a driver it never uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import unquote
from urllib.parse import urlsplit

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEME = "redis+sentinel"


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, dict[str, Any]]:
    """``redis+sentinel://[:password@]host:port[,host:port…]/service[/db][?sentinel_password=…]``

    Returns the Sentinel addresses, the service (master) name, the database number and the
    connection options for the master (its password). Raises ValueError with the reason.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    addresses = parse_addresses(hosts, "sentinel address")
    segments = [seg for seg in parts.path.split("/") if seg]
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("the path must be /<service name>[/<db number>]")
    options = parse_credentials(userinfo)
    query = parse_qs(parts.query)
    if "sentinel_password" in query:
        options["sentinel_password"] = query["sentinel_password"][0]
    return addresses, segments[0], int(segments[1]) if len(segments) == 2 else 0, options


def parse_addresses(hosts: str, what: str) -> list[tuple[str, int]]:
    """``host:port[,host:port…]`` (a URL's netloc after the credentials), as the Sentinel and
    the cluster URLs list their servers. Raises ValueError naming ``what`` was wrong."""
    addresses = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{what} {item!r} must be host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def parse_credentials(userinfo: str) -> dict[str, Any]:
    """``[user]:password`` from a URL, as redis-py's connection options."""
    options: dict[str, Any] = {}
    username, _, password = userinfo.partition(":")
    if password:
        options["password"] = unquote(password)
    if username:
        options["username"] = unquote(username)
    return options


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """``redis+cluster://[user:password@]host:port[,host:port…][?…]``: the seed nodes and the
    connection options (credentials, TLS). Raises ValueError with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"the scheme must be one of {', '.join(CLUSTER_SCHEMES)}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = parse_addresses(hosts, "cluster node")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0; drop the path")
    options = parse_credentials(userinfo)
    if parts.scheme == "rediss+cluster":
        options["ssl"] = True
        query = parse_qs(parts.query)
        if "ssl_ca_certs" in query:
            options["ssl_ca_certs"] = query["ssl_ca_certs"][0]
    return nodes, options
