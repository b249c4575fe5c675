"""Tables (Markdown, so one run pastes into docs/performance.md) and the targets, checked."""

from __future__ import annotations

import math
from collections.abc import Iterable

from uauth.core.opaque import JWT
from uauth.core.opaque import OPAQUE

from .passwords import Cost
from .run import MemoryRow
from .run import Row
from .run import Run

MB = 1024 * 1024
LABELS = {
    "bare": "bare Flask GET / (baseline)",
    "flow": "SSO code+PKCE flow",
    "sso": "plain sign-in (SSO flow without offline_access)",
    "login": "code+PKCE flow, new session (password login)",
    "refresh": "rotating refresh_token grant",
    "cc": "client_credentials (JWT access token)",
    "userinfo": "userinfo (GET, Bearer JWT)",
}
ORDER = ["bare", "flow", "sso", "refresh", "cc", "userinfo", "login"]
PROVIDERS = {"bare": 0, "reference": 1, "floor": 2, "uauth-memory": 3, "uauth": 4}


#: What the label says of uauth's access tokens when the bench's clients get opaque ones (the
#: reference provider's flow and refresh tokens are opaque too; its client_credentials, JWT).
OPAQUE_LABELS = {"cc": "client_credentials (uauth: opaque access token)",
                 "userinfo": "userinfo (GET, Bearer; uauth: opaque token)"}


def label(row: Row, token_format: str = JWT) -> str:
    text = (OPAQUE_LABELS if token_format == OPAQUE else LABELS).get(row.op, LABELS[row.op])
    return f"{text} {row.alg}" if row.op in ("flow", "sso", "login") else text


def _ratio(value: float, base: float | None) -> str:
    if base is None or not base or math.isnan(value) or math.isnan(base):
        return ""
    return f" ({value / base:.2f}×)"


def table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                   + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def find(rows: Iterable[Row], provider: str, op: str, store: str | None = None,
         workers: int | None = None, alg: str = "RS256") -> Row | None:
    for row in rows:
        if (row.provider == provider and row.op == op and row.alg == alg and row.result
                and (store is None or row.store == store)
                and (workers is None or row.workers == workers)):
            return row
    return None


def results_table(run: Run) -> str:
    """One line per (operation, provider, store, workers); ratios to the bare endpoint served
    with the same worker count, and CPU also to the reference provider."""
    rows = sorted(run.rows, key=lambda r: (ORDER.index(r.op), r.alg != "RS256", r.alg,
                                           PROVIDERS[r.provider], r.store, r.workers))
    lines = [["operation", "provider", "store", "w", "ops/s (×bare)", "p50 ms (×bare)",
              "p99 ms (×bare)", "CPU ms/op (×bare)", "CPU ×ref", "RSS MB/worker (×bare)",
              "server cores", "req/op"]]
    for row in rows:
        head = [label(row, run.settings.access_token_format), row.provider, row.store,
                str(row.workers or "")]
        r = row.result
        if r is None or r.cpu_ms_per_op is None:
            lines.append(head + [row.note, "", "", "", "", "", "", ""])
            continue
        bare_row = find(run.rows, "bare", "bare", workers=row.workers)
        bare = bare_row.result if bare_row else None
        ref_row = find(run.rows, "reference", row.op, alg=row.alg)
        ref = ref_row.result if ref_row and row.provider != "reference" else None
        lines.append(head + [
            f"{r.ops_per_s:,.0f}" + _ratio(r.ops_per_s, bare.ops_per_s if bare else None),
            f"{r.p50_ms:.2f}" + _ratio(r.p50_ms, bare.p50_ms if bare else None),
            f"{r.p99_ms:.2f}" + _ratio(r.p99_ms, bare.p99_ms if bare else None),
            f"{r.cpu_ms_per_op:.2f}"
            + _ratio(r.cpu_ms_per_op, bare.cpu_ms_per_op if bare else None),
            f"{r.cpu_ms_per_op / ref.cpu_ms_per_op:.2f}×" if ref and ref.cpu_ms_per_op else "",
            f"{r.peak_rss / MB:.0f}" + _ratio(r.peak_rss, bare.peak_rss if bare else None),
            f"{r.server_cores:.2f}",
            f"{r.http_requests / r.ops:.1f}"
            + (f"; {r.errors} errors, first: {r.first_error[:80]}" if r.errors else ""),
        ])
    return table(lines)


def _cpu(row: Row | None) -> float | None:
    return row.result.cpu_ms_per_op if row and row.result else None


def _against(value: float, line: float, unit: str = "×") -> str:
    """``value`` to two decimals, or to three where two would read as ``line`` itself: a
    figure a hair past its line must not print as the line beside a verdict that it missed."""
    shown = f"{value:.2f}"
    return (f"{value:.3f}" if shown == f"{line:.2f}" else shown) + unit


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


#: HTTP requests and RS256 signatures each operation cannot do without (bench/signing.py):
#: with JWT access tokens, and with opaque ones (only the ID token is signed).
FLOORS = {"flow": (3, 2), "refresh": (1, 2), "cc": (1, 1)}
OPAQUE_FLOORS = {"flow": (3, 1), "refresh": (1, 1), "cc": (1, 0)}


def targets_table(run: Run, passwords: list[Cost], require_token: list[Cost] | None = None,
                  signatures: list[Cost] | None = None) -> str:
    """The performance targets against this run's figures (1-worker servers for CPU per op):
    issue 22's, and issue 20's for PostgreSQL and Redis Cluster. Against the reference, the
    floor is shown too: the operation's requests as the bare endpoint answers them plus its
    RS256 signatures, before any OAuth logic; and, when it was served, the stack's floor
    (bench/floor.py): the same operation done by Authlib's Flask provider alone, its records in
    memory and, on uauth's SQLite line, in SQLite too."""
    rows = run.rows
    one = min(run.settings.workers)
    lines = [["target", "measured", "verdict"]]
    bare = _cpu(find(rows, "bare", "bare", workers=one))
    rs256 = next((c.cpu_ms for c in signatures or [] if c.name.startswith("RS256")), None)

    opaque = run.settings.access_token_format == OPAQUE

    def vs_reference(op: str, limit: float, what: str) -> None:
        ref = _cpu(find(rows, "reference", op))
        requests, signs = (OPAQUE_FLOORS if opaque else FLOORS)[op]
        floor = requests * bare + signs * rs256 if bare and rs256 else None
        stack = _cpu(find(rows, "floor", op, "memory"))
        for store in run.settings.stores:
            ours = _cpu(find(rows, "uauth", op, store, one))
            ok = None if ours is None or ref is None else ours <= limit * ref
            shown = (f"{ours:.2f} vs {ref:.2f} ms = {_against(ours / ref, limit)}" if ours and ref
                     else _missing(rows, op, store))
            if floor and ref:
                shown += (f"; floor {floor:.2f} ms = {floor / ref:.2f}× ({requests} bare "
                          f"request{'s' if requests > 1 else ''} + {signs} RS256)")
            if stack and ref:
                shown += f"; Authlib alone {stack:.2f} ms = {stack / ref:.2f}×"
            durable = _cpu(find(rows, "floor", op, store))  # served beside SQLite only
            if durable and ref:
                shown += f", on {store} {durable:.2f} ms = {durable / ref:.2f}×"
            lines.append([f"{what} ({store}): CPU ≤ {limit:.1f}× reference", shown, _verdict(ok)])

    vs_reference("flow", 1.0, "SSO code+PKCE flow, RS256 ID token")
    vs_reference("refresh", 1.0, "rotating refresh")
    vs_reference("cc", 1.0, "client_credentials, " + ("opaque AT" if opaque else "RS256 JWT AT"))
    stack_userinfo = _cpu(find(rows, "floor", "userinfo", "memory"))
    for store in run.settings.stores:
        ours = _cpu(find(rows, "uauth", "userinfo", store, one))
        shown = (f"{_against(ours, bare + 0.15, '')} vs {bare:.2f} + 0.15 ms" if ours and bare
                 else "not measured")
        if ours and bare and stack_userinfo:
            shown += f"; Authlib alone {stack_userinfo:.2f} ms"
            durable = _cpu(find(rows, "floor", "userinfo", store))
            if durable:
                shown += f", on {store} {durable:.2f} ms"
        lines.append([f"userinfo ({store}): CPU ≤ bare Flask endpoint + 0.15 ms", shown,
                      _verdict(None if not (ours and bare) else ours <= bare + 0.15)])
    in_memory = _in_memory(rows, bare, one)
    if in_memory:
        lines.append(["uauth with its records in memory (--uauth-in-memory; a measure of what "
                      "durable storage costs, not a target)", in_memory, "–"])
    again = next((c for c in require_token or [] if "again" in c.name), None)
    first = next((c for c in require_token or [] if "first" in c.name), None)
    lines.append(["require_token in a host app (a token seen before): ≤ 50 µs CPU",
                  f"{again.cpu_ms:.0f} µs (first sight {first.cpu_ms:.0f} µs)"
                  if again and first else "not measured",
                  _verdict(None if again is None else again.cpu_ms <= 50)])
    kdf = next((c for c in passwords if c.name.startswith("PBKDF2")), None)
    cc = _cpu(find(rows, "uauth", "cc", workers=one))
    if kdf:
        ok = None if cc is None else kdf.cpu_ms + cc >= 100 * cc
        lines.append(["client_credentials ≥ 100× cheaper than a KDF-checked secret",
                      f"{(kdf.cpu_ms + cc) / cc:,.0f}× ({kdf.cpu_ms:.0f} ms KDF)" if cc
                      else f"cc not measured ({kdf.cpu_ms:.0f} ms per KDF check)", _verdict(ok)])
    for store, base, limit, what in (
            ("redis", "sqlite", 1.1, "Redis CPU per flow ≤ 1.1× SQLite"),
            ("postgres", "sqlite", 1.3, "PostgreSQL CPU per flow ≤ 1.3× SQLite"),
            ("redis-cluster", "redis", 1.2, "Redis Cluster CPU per flow ≤ 1.2× single Redis")):
        ours, theirs = (_cpu(find(rows, "uauth", "flow", s, one)) for s in (store, base))
        lines.append([what, _against(ours / theirs, limit) if ours and theirs else "not measured",
                      _verdict(None if not (ours and theirs) else ours <= limit * theirs)])
    for store in run.settings.stores:
        lines.append(_scaling(rows, store))
    # What a worker holds at the end of the run, and its high-water mark: the peak includes the
    # 19 MiB argon2id borrows for a password check while one runs (returned after it).
    held = max((r.result.rss for r in rows if r.provider == "uauth" and r.result), default=0)
    peak = max((r.result.peak_rss for r in rows if r.provider == "uauth" and r.result),
               default=0)
    lines.append(["≤ 80 MB RSS per worker (held at the end of this run; flat over 30,000 "
                  "flows: --memory)", f"{held / MB:.0f} MB (peak during a password check "
                  f"{peak / MB:.0f} MB)" if held else "not measured",
                  _verdict(held <= 80 * MB if held else None)])
    return table(lines)


def _in_memory(rows: list[Row], bare: float | None, workers: int) -> str:
    """uauth with ``memory://`` storage, as the targets would judge it: each operation against
    the reference, userinfo against the bare endpoint."""
    parts = []
    for op, what in (("flow", "flow"), ("refresh", "refresh"), ("cc", "client_credentials")):
        ours = _cpu(find(rows, "uauth-memory", op, "memory", workers))
        ref = _cpu(find(rows, "reference", op))
        if ours and ref:
            parts.append(f"{what} {ours:.2f} vs {ref:.2f} ms = {ours / ref:.2f}×")
    ours = _cpu(find(rows, "uauth-memory", "userinfo", "memory", workers))
    if ours and bare:
        parts.append(f"userinfo {ours:.2f} vs {bare:.2f} + 0.15 ms")
    return "; ".join(parts)


def _missing(rows: list[Row], op: str, store: str) -> str:
    note = next((r.note for r in rows if r.provider == "uauth" and r.op == op
                 and r.store == store and r.note), "")
    return note or "not measured"


def _scaling(rows: list[Row], store: str) -> list[str]:
    """Token-endpoint throughput, 2 workers over 1 (client_credentials, else refresh, else the
    whole flow). The load generator shares the machine's cores with the server, so when the
    2-worker server could not even use 1.7 cores the ratio says more about the machine than
    about uauth; then the projection from CPU per operation (2 x cpu1 / cpu2: what 2 workers
    give on 2 free cores) is shown and no verdict is given."""
    title = f"2 workers ≥ 1.7× one worker's token-endpoint throughput ({store})"
    for op in ("cc", "refresh", "flow"):
        one, two = (find(rows, "uauth", op, store, w) for w in (1, 2))
        if not (one and two and one.result and two.result):
            continue
        a, b = one.result, two.result
        ratio = b.ops_per_s / a.ops_per_s
        shown = f"{ratio:.2f}× ({LABELS[op].split(' (')[0]})"
        if ratio >= 1.7 or b.server_cores >= 1.7 or not (a.cpu_ms_per_op and b.cpu_ms_per_op):
            return [title, shown, _verdict(ratio >= 1.7)]
        projected = 2 * a.cpu_ms_per_op / b.cpu_ms_per_op
        return [title, f"{shown}; server had {b.server_cores:.2f} cores; projected "
                f"{projected:.2f}× from CPU/op", "n/a (machine-bound)"]
    return [title, "not measured", "n/a"]


def passwords_table(costs: list[Cost], title: str = "password/secret check (in-process, "
                    "one core)", unit: str = "ms") -> str:
    lines = [[title, f"CPU {unit}", f"wall {unit}"]]
    for cost in costs:
        lines.append([cost.name, f"{cost.cpu_ms:.3f}" if cost.cpu_ms < 1 else f"{cost.cpu_ms:.1f}",
                      f"{cost.wall_ms:.3f}" if cost.wall_ms < 1 else f"{cost.wall_ms:.1f}"])
    return table(lines)


def memory_table(rows: list[MemoryRow]) -> str:
    """RSS per worker (MB; "a / b" for several workers) after each step of N flows, and the
    growth over the last step."""
    steps = max((len(r.rss) for r in rows), default=0)
    n = rows[0].flows if rows else 0
    lines = [["store", "workers"] + [f"RSS MB after {n * (i + 1):,} flows" for i in range(steps)]
             + ["growth in the last step", "peak MB", "CPU ms/flow"]]
    for row in rows:
        cells = [" / ".join(f"{v / MB:.1f}" for v in step) for step in row.rss]
        cells += [""] * (steps - len(cells))
        growth = ""
        if len(row.rss) >= 2:
            growth = " / ".join(f"{(b - a) / MB:+.1f}"
                                for a, b in zip(row.rss[-2], row.rss[-1], strict=False))
        lines.append([row.store, str(row.workers), *cells, row.note or growth,
                      " / ".join(f"{v / MB:.1f}" for v in row.peak),
                      f"{row.cpu_ms_per_flow:.2f}" if row.cpu_ms_per_flow else ""])
    return table(lines)
