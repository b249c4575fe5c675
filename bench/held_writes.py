"""What ``Store.batch`` saves a Redis store: the token endpoint's storage work at the grant cap,
sent command by command and held back, in-process against a Redis server of its own.

``python -m bench.held_writes`` runs the sequence a bench flow's token request makes once a
person holds 50 refresh-token families (an opaque access token saved, the refresh token added,
the family's note saved, the person's apps listed, the evicted family's revocation marker,
its records revoked, an audit event kept, its note deleted) both ways, alternating short timings
so that both see the same disturbances, and prints the least, the lower quartile and the median
CPU of each. On a shared machine the least is the one to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from tests.redis_server import RedisServer
from uauth.storage.redis import RedisStore

#: Notes in the person's apps index, as at the grant cap (50 families and a consent).
HELD = 51
RECORD = {"client_id": "bench-spa", "grant_id": "g" * 22, "issued_at": 1, "sid": "s" * 22,
          "scope": "openid email profile offline_access", "offline": True}


def token_writes(store: RedisStore, n: int) -> None:
    """One token request's storage work at the cap (``n`` names its records)."""
    store.save("access_token", f"a{n}", RECORD, ttl=600, grant_id=f"g{n}")
    store.add("refresh_token", f"r{n}", RECORD, ttl=600, grant_id=f"g{n}")
    store.save("app_grant", f"n{n}", RECORD, ttl=600, grant_id="apps")
    store.grant_records("apps")
    store.save("revoked", f"grant:g{n - HELD}", {"at": 1}, ttl=600)
    store.revoke_grant(f"g{n - HELD}")
    store.save("audit", f"e{n}", {"event": "family_revoked"}, ttl=600)
    store.delete("app_grant", f"n{n - HELD}")


def measure(store: RedisStore, timings: int, requests: int) -> dict[str, list[float]]:
    """CPU ms per token request, ``timings`` times each way, alternated."""
    names = itertools.count(HELD)
    for n in range(HELD):
        store.save("app_grant", f"n{n}", RECORD, ttl=600, grant_id="apps")
    ways: dict[str, Callable[[], AbstractContextManager[None]]] = {
        "one command at a time": contextlib.nullcontext, "held (Store.batch)": store.batch}
    costs: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(timings):
        for way, block in ways.items():
            started = time.process_time()
            for _ in range(requests):
                with block():
                    token_writes(store, next(names))
            costs[way].append((time.process_time() - started) / requests * 1000)
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timings", type=int, default=25, help="timings each way")
    parser.add_argument("--requests", type=int, default=150, help="token requests per timing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uauth-held-writes-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            store = RedisStore(server.url, prefix="bench-held:")
            costs = measure(store, args.timings, args.requests)
            store.close()
        finally:
            server.stop()
    print("| a token request's storage work at the grant cap, Redis (CPU ms) | least "
          "| lower quartile | median |")
    print("| --- | --- | --- | --- |")
    for way, ms in costs.items():
        quartile = statistics.quantiles(ms, n=4)[0] if len(ms) > 1 else ms[0]
        print(f"| {way} | {min(ms):.3f} | {quartile:.3f} | {statistics.median(ms):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
