"""``python -m bench`` (``make bench``): start the servers, drive them, print the tables.

Figures are server CPU per operation (the steady one on a shared machine), operations per
second and latency from separate client processes, and peak RSS per worker; each is also given
as a ratio to a bare Flask endpoint served the same way, and CPU as a ratio to the reference
provider measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from uauth.core.opaque import JWT
from uauth.core.settings import ACCESS_TOKEN_FORMATS

from . import report
from .factors import factor_costs
from .factors import factors_table
from .passwords import password_costs
from .require_token import require_token_costs
from .run import ALGS
from .run import ASKED_OPS
from .run import STORES
from .run import UAUTH_OPS
from .run import Settings
from .run import run_bench
from .run import run_memory
from .signing import signing_costs


def _csv(kind: type, choices: tuple[str, ...] | None = None):  # type: ignore[no-untyped-def]
    def parse(text: str) -> tuple[object, ...]:
        values = tuple(kind(v) for v in text.split(",") if v)
        if choices is not None and not set(values) <= set(choices):
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}")
        return values
    return parse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", type=_csv(str, STORES), default=STORES,
                    help="storage backends (PostgreSQL: a database of its own on "
                         "127.0.0.1:5432, or $UAUTH_TEST_POSTGRES)")
    ap.add_argument("--workers", type=_csv(int), default=(1, 2), help="gunicorn worker counts")
    ap.add_argument("--ops", type=_csv(str, (*UAUTH_OPS, *ASKED_OPS)), default=UAUTH_OPS,
                    help="operations measured (default: %(default)s; also: "
                         + ", ".join(ASKED_OPS) + ", a plain sign-in without offline_access)")
    ap.add_argument("--algs", type=_csv(str, ALGS), default=ALGS,
                    help="ID-token algorithms of the SSO flow")
    ap.add_argument("--threads", type=int, default=1,
                    help="gunicorn threads per worker (uauth serve --threads; >1 is gthread)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    ap.add_argument("--warmup", type=float, default=0.3, help="untimed seconds per measurement")
    ap.add_argument("--prewarm", type=float, default=1.0,
                    help="untimed seconds before the first measurement of each operation")
    ap.add_argument("--reference-prewarm", type=float, default=8.0,
                    help="the same for the reference provider (V8 needs longer to settle)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure everything this many times; figures are medians")
    ap.add_argument("--clients-per-worker", type=int, default=2,
                    help="client processes per server worker (one connection each)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference provider")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the stack's floor (bench/floor.py: Authlib's Flask provider alone)")
    ap.add_argument("--uauth-in-memory", action="store_true",
                    help="also serve uauth with its records in memory (bench/memory_app.py), "
                    "as the reference and the floor keep theirs: what durable storage costs")
    ap.add_argument("--memory", type=int, metavar="N", default=0,
                    help="instead: RSS per worker after N and 2N flows (e.g. 10000)")
    ap.add_argument("--memory-workers", type=int, default=1)
    ap.add_argument("--memory-steps", type=int, default=2,
                    help="how many times to run N flows (RSS is read after each)")
    ap.add_argument("--factors-only", action="store_true",
                    help="only the in-process passkey and TOTP costs (a few seconds)")
    ap.add_argument("--access-token-format", choices=ACCESS_TOKEN_FORMATS, default=JWT,
                    help="uauth's bench clients get jwt (signed) or opaque (stored) access tokens")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--workdir", type=Path, help="keep instances and logs here (default: a "
                    "temporary folder)")
    args = ap.parse_args(argv)
    settings = Settings(stores=args.stores, workers=args.workers, ops=args.ops, algs=args.algs,
                        threads=args.threads, seconds=args.seconds, warmup=args.warmup,
                        prewarm=args.prewarm, reference_prewarm=args.reference_prewarm,
                        rounds=args.rounds,
                        clients_per_worker=args.clients_per_worker,
                        reference=not args.no_reference, floor=not args.no_floor,
                        in_memory=args.uauth_in_memory, workdir=args.workdir,
                        access_token_format=args.access_token_format)
    if args.factors_only:
        print(factors_table(factor_costs()))
        return 0
    if args.memory:
        rows = run_memory(settings, args.memory, args.memory_workers, args.memory_steps)
        print(report.memory_table(rows))
        _dump(args.json, {"memory": [asdict(r) for r in rows]})
        return 0
    run = run_bench(settings)
    costs = password_costs()
    guard = require_token_costs()
    signs = signing_costs()
    print()
    print(report.results_table(run))
    print()
    print(report.passwords_table(costs + signs))
    print()
    print(report.passwords_table(guard, "host app's @require_token (in-process, one core)", "µs"))
    print()
    print(report.targets_table(run, costs, guard, signs))
    factors = factor_costs()
    print()
    print(factors_table(factors))
    _dump(args.json, {"rows": [asdict(r) for r in run.rows],
                      "passwords": [asdict(c) for c in costs],
                      "require_token": [asdict(c) for c in guard],
                      "signatures": [asdict(c) for c in signs],
                      "factors": [asdict(c) for c in factors]})
    return 0


def _dump(path: Path | None, data: object) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
