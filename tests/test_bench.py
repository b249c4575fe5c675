"""The bench's own parts still fit uauth: its agent completes a real flow, /proc accounting and
the report work. Nothing here is timed; ``make bench`` does the measuring."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench import access_line
from bench import held_writes
from bench import instructions
from bench import own_work
from bench import procstat
from bench import read_ahead
from bench import served_instructions
from bench import storage
from bench import wal_pages
from bench.driver import Failure
from bench.driver import Target
from bench.driver import pkce_pair
from bench.driver import prepare
from bench.driver import read_form
from bench.load import Result
from bench.passwords import Cost
from bench.profile import InProcess
from bench.profile import build
from bench.report import results_table
from bench.report import targets_table
from bench.require_token import require_token_costs
from bench.run import Row
from bench.run import Run
from bench.run import Settings
from bench.run import median_result
from bench.servers import FLOOR_OPS
from bench.servers import USERNAME
from bench.signing import signing_costs
from tests.conftest import unique_prefix
from uauth.core import audit
from uauth.core import grantlimits
from uauth.core.consents import apps_group
from uauth.core.grantlimits import MAX_GRANTS_PER_CLIENT
from uauth.core.records import APP_GRANT
from uauth.extension import get_state
from uauth.ops.logs import DirectLines
from uauth.ops.logs import JsonFormatter
from uauth.storage.redis import RedisStore
from uauth.web import requestlog
from uauth.web import steps
from uauth.web.views import authorize


def test_agent_logs_in_once_then_runs_sso_flows(tmp_path: Path) -> None:
    app, target = build("memory", tmp_path, None)
    agent, run = prepare(target, "flow", lambda _: InProcess(app))
    first_token = agent.access_token
    sent = agent.requests
    run()
    assert agent.access_token and agent.access_token != first_token
    assert agent.refresh_token
    # authorize (straight to the code: the session is kept), token, userinfo
    assert agent.requests - sent == 3
    assert "uauth_session" not in agent.backend.cookies


@pytest.mark.parametrize("operation", ["refresh", "cc"])
def test_token_grants_are_measured(tmp_path: Path, operation: str) -> None:
    app, target = build("memory", tmp_path, None)
    agent, run = prepare(target, operation, lambda _: InProcess(app))
    sent = agent.requests
    run()
    assert agent.requests - sent == 1


@pytest.mark.parametrize("access_token_format", ["opaque", "jwt"])
def test_a_resource_server_introspects_the_flows_access_token(
        tmp_path: Path, access_token_format: str) -> None:
    """``--op introspect``: the service client, registered as a resource server, introspects
    the browser client's access token, one request each; a token it cannot see fails."""
    app, target = build("memory", tmp_path, None, access_token_format=access_token_format)
    agent, run = prepare(target, "introspect", lambda _: InProcess(app))
    sent = agent.requests
    run()
    assert agent.requests - sent == 1
    agent.access_token = "not-a-token"
    with pytest.raises(Failure, match="introspect"):
        run()


def test_a_pushed_flow_sends_the_request_first_and_the_browser_only_its_uri(
        tmp_path: Path) -> None:
    """``--op par``: /par from the relying party's backend, then /authorize with the
    ``request_uri`` alone, token and userinfo; a refused push fails the operation."""
    app, target = build("memory", tmp_path, None)
    agent, run = prepare(target, "par", lambda _: InProcess(app))
    first_token = agent.access_token
    sent = agent.requests
    run()
    assert agent.requests - sent == 4
    assert agent.access_token and agent.access_token != first_token
    agent.t = replace(target, redirect_uri="https://elsewhere.example/cb")
    with pytest.raises(Failure, match="par: 400"):
        run()


def test_a_sign_in_asks_for_no_offline_access_and_gets_no_refresh_token(
        tmp_path: Path) -> None:
    """``--op sso``: the flow of a plain sign-in (authorize, token, userinfo), its scope the
    target's without ``offline_access``: the response brings no refresh token."""
    app, target = build("memory", tmp_path, None)
    agent, run = prepare(target, "sso", lambda _: InProcess(app))
    agent.refresh_token = None
    sent = agent.requests
    run()
    assert agent.requests - sent == 3
    assert agent.access_token and agent.refresh_token is None


@pytest.mark.parametrize("operation", ["flow", "refresh", "cc"])
def test_the_bench_clients_can_get_opaque_access_tokens(tmp_path: Path, operation: str) -> None:
    app, target = build("memory", tmp_path, None, access_token_format="opaque")
    agent, run = prepare(target, operation, lambda _: InProcess(app))
    run()  # the agent checks cc's token format and userinfo's answer itself
    assert agent.access_token is None or "." not in agent.access_token


def test_login_form_is_read_with_its_csrf_token() -> None:
    page = (b'<html><form method="post" novalidate><input id="csrf_token" name="csrf_token" '
            b'type="hidden" value="abc"><input name="username"></form><form action="/x">'
            b'<input name="other" value="1"></form>')
    assert read_form(page) == ("", {"csrf_token": "abc", "username": ""})


def test_pkce_pair_is_s256() -> None:
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(verifier) <= 128


def test_cpu_of_a_process_tree_is_read_from_proc() -> None:
    before = procstat.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert procstat.cpu_seconds(os.getpid()) - before >= 0.03
    memory = procstat.memory(os.getpid())
    assert memory is not None and memory.peak >= memory.rss > 0


def _result(cpu: float, ops_per_s: float) -> Result:
    return Result(ops=100, errors=0, first_error="", seconds=100 / ops_per_s, p50_ms=1.0,
                  p99_ms=2.0, cpu_ms_per_op=cpu, peak_rss=50 << 20, rss=50 << 20,
                  http_requests=300, server_cores=0.5)


def test_figures_are_medians_and_ratios_to_bare_and_reference() -> None:
    merged = median_result([_result(1.0, 100), _result(3.0, 300), _result(2.0, 200)])
    assert merged.cpu_ms_per_op == 2.0 and merged.ops_per_s == pytest.approx(200)
    run = Run(Settings())
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.5, 1000)),
                Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                Row("uauth", "sqlite", 1, "flow", result=_result(3.0, 200)),
                Row("uauth", "sqlite", 1, "cc", note="not supported yet: cc")]
    table = results_table(run)
    line = next(line for line in table.splitlines() if "uauth" in line and "flow" in line)
    assert "3.00 (6.00×)" in line and "1.50×" in line and "200 (0.20×)" in line
    assert "not supported yet: cc" in table


def test_targets_table_gives_a_verdict_per_target() -> None:
    run = Run(Settings(stores=("sqlite", "redis"), workers=(1,)))
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.30, 1000)),
                Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                Row("uauth", "sqlite", 1, "flow", result=_result(1.9, 200)),
                Row("uauth", "redis", 1, "flow", result=_result(2.2, 200)),
                Row("uauth", "sqlite", 1, "userinfo", result=_result(0.40, 900)),
                Row("uauth", "redis", 1, "userinfo", result=_result(0.50, 900))]
    guard = [Cost("require_token: a token seen for the first time (µs)", 180.0, 180.0),
             Cost("require_token: the same token again (µs)", 40.0, 40.0)]
    signs = [Cost("RS256 JWT signature (PyJWT, one access token)", 0.4, 0.4)]
    lines = targets_table(run, [], guard, signs).splitlines()

    def verdict(start: str) -> str:
        return _target(lines, start)[1]

    assert verdict("SSO code+PKCE flow, RS256 ID token (sqlite)") == "met"
    assert "floor 1.70 ms = 0.85× (3 bare requests + 2 RS256)" in next(
        line for line in lines if "flow, RS256 ID token (redis)" in line)
    assert verdict("SSO code+PKCE flow, RS256 ID token (redis)") == "MISSED"
    assert verdict("rotating refresh (sqlite)") == "n/a"
    assert verdict("userinfo (sqlite)") == "met" and verdict("userinfo (redis)") == "MISSED"
    assert verdict("require_token") == "met"
    assert verdict("Redis CPU per flow ≤ 1.1× SQLite") == "MISSED"
    assert verdict("≤ 80 MB RSS") == "met"


def _target(lines: list[str], start: str) -> list[str]:
    """The measured figure and the verdict of the targets table's line for ``start``."""
    found = next(line for line in lines if line.lstrip("| ").startswith(start))
    return [cell.strip() for cell in found.split("|")[2:4]]


def test_a_figure_a_hair_past_its_line_is_printed_to_three_decimals() -> None:
    """Rounded to two decimals, a ratio just over its line reads as the line itself beside a
    missed verdict (run BS: Redis over 1.1× SQLite printed as 1.10×); near a line the figure
    gets a third decimal, elsewhere it keeps two."""
    run = Run(Settings(stores=("sqlite", "redis"), workers=(1,)))
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.28, 1000)),
                Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                Row("uauth", "sqlite", 1, "flow", result=_result(2.97, 200)),
                Row("uauth", "redis", 1, "flow", result=_result(3.27, 200)),
                Row("reference", "memory", 1, "refresh", result=_result(1.0, 300)),
                Row("uauth", "sqlite", 1, "refresh", result=_result(1.004, 300)),
                Row("uauth", "sqlite", 1, "userinfo", result=_result(0.434, 900)),
                Row("uauth", "redis", 1, "userinfo", result=_result(0.52, 900))]
    lines = targets_table(run, [], None, []).splitlines()
    assert _target(lines, "Redis CPU per flow ≤ 1.1× SQLite") == ["1.101×", "MISSED"]
    refresh, verdict = _target(lines, "rotating refresh (sqlite)")
    assert refresh.startswith("1.00 vs 1.00 ms = 1.004×") and verdict == "MISSED"
    assert _target(lines, "SSO code+PKCE flow, RS256 ID token (sqlite)")[0].startswith(
        "2.97 vs 2.00 ms = 1.49×")
    assert _target(lines, "userinfo (sqlite)") == ["0.434 vs 0.28 + 0.15 ms", "MISSED"]
    assert _target(lines, "userinfo (redis)") == ["0.52 vs 0.28 + 0.15 ms", "MISSED"]


def _opaque_run(*rows: Row) -> Run:
    """A one-worker SQLite run with opaque access tokens: the bare endpoint at 0.30 ms, then
    ``rows``."""
    run = Run(Settings(stores=("sqlite",), workers=(1,), access_token_format="opaque"))
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.30, 1000)), *rows]
    return run


def _providers(run: Run, label: str) -> list[str]:
    """The providers of the results table's lines for the operation labelled ``label``."""
    return [line.split("|")[2].strip() for line in results_table(run).splitlines()
            if label in line]


def test_the_stack_floor_is_shown_beside_the_reference_and_the_userinfo_target() -> None:
    run = _opaque_run(Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                      Row("floor", "memory", 1, "flow", result=_result(1.6, 300)),
                      Row("floor", "memory", 1, "userinfo", result=_result(0.38, 900)),
                      Row("uauth", "sqlite", 1, "flow", result=_result(2.2, 200)),
                      Row("uauth", "sqlite", 1, "userinfo", result=_result(0.50, 900)))
    lines = targets_table(run, [], None, []).splitlines()
    flow = next(line for line in lines if "flow, RS256 ID token (sqlite)" in line)
    assert "2.20 vs 2.00 ms = 1.10×; Authlib alone 1.60 ms = 0.80×" in flow
    assert "0.50 vs 0.30 + 0.15 ms; Authlib alone 0.38 ms" in next(
        line for line in lines if "userinfo (sqlite)" in line)
    assert _providers(run, "SSO code") == ["reference", "floor", "uauth"]


def test_a_plain_sign_in_is_tabled_after_the_flow_beside_the_reference_with_no_target() -> None:
    """``--ops sso``: its lines follow the flow's, each with its ratio to the reference's own
    sign-in, and no target line judges it."""
    run = _opaque_run(Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                      Row("reference", "memory", 1, "sso", result=_result(2.2, 300)),
                      Row("floor", "memory", 1, "sso", result=_result(1.8, 300)),
                      Row("uauth", "sqlite", 1, "refresh", result=_result(1.5, 200)),
                      Row("uauth", "sqlite", 1, "sso", result=_result(3.3, 200)),
                      Row("uauth", "sqlite", 1, "flow", result=_result(3.0, 200)))
    lines = results_table(run).splitlines()
    ops = [line.split("|")[1].strip() for line in lines[2:]]
    sign_in = "plain sign-in (SSO flow without offline_access) RS256"
    assert ops == ["bare Flask GET / (baseline)", *["SSO code+PKCE flow RS256"] * 2,
                   *[sign_in] * 3, "rotating refresh_token grant"]
    assert _providers(run, "plain sign-in") == ["reference", "floor", "uauth"]
    assert "1.50×" in next(line for line in lines if sign_in in line and "uauth" in line)
    assert not any("sign-in" in line for line in targets_table(run, [], None, []).splitlines())


def test_uauth_in_memory_is_a_measure_beside_the_targets_never_a_verdict() -> None:
    """``--uauth-in-memory``: its figures against the reference and the bare endpoint, on a
    line of their own; the per-store target lines and the RSS line ignore it."""
    held = replace(_result(0.41, 900), rss=120 << 20, peak_rss=140 << 20)  # a memory store
    run = _opaque_run(Row("reference", "memory", 1, "refresh", result=_result(1.0, 300)),
                      Row("uauth-memory", "memory", 1, "refresh", result=_result(0.95, 300)),
                      Row("uauth-memory", "memory", 1, "userinfo", result=held),
                      Row("uauth", "sqlite", 1, "refresh", result=_result(1.5, 200)))
    lines = targets_table(run, [], None, []).splitlines()
    line = next(line for line in lines if "records in memory" in line)
    assert "refresh 0.95 vs 1.00 ms = 0.95×; userinfo 0.41 vs 0.30 + 0.15 ms" in line
    assert line.rstrip(" |").endswith("–")
    assert "1.50 vs 1.00 ms = 1.50×" in next(
        line for line in lines if "rotating refresh (sqlite)" in line)
    assert not any("(memory)" in line for line in lines), "no target line of its own"
    assert "50 MB (peak during a password check 50 MB)" in next(
        line for line in lines if "RSS per worker" in line), "the served stores' workers only"
    assert _providers(run, "refresh") == ["reference", "uauth-memory", "uauth"]


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_the_stack_floor_answers_every_bench_operation_with_a_verifiable_id_token(
        tmp_path: Path, durable: bool) -> None:
    import jwt

    from bench import floor

    app = floor.create_app(str(tmp_path / "floor.db")) if durable else floor.app
    target = Target(issuer=floor.ISSUER, spa_client=floor.PUBLIC_CLIENT,
                    redirect_uri=floor.REDIRECT_URI, service_client=floor.SERVICE_CLIENT,
                    access_token_format="opaque").discover(InProcess(app))
    for operation in FLOOR_OPS:  # the plain sign-in too
        agent, run = prepare(target, operation, lambda _: InProcess(app))
        run()  # the agent raises Failure on any answer the bench would not accept
    assert agent.refresh_token is not None
    tokens = agent.token({"grant_type": "refresh_token", "refresh_token": agent.refresh_token})
    public = floor.KEY.as_dict(private=False)
    claims = jwt.decode(tokens["id_token"], jwt.PyJWK(public).key, algorithms=["RS256"],
                        audience=floor.PUBLIC_CLIENT, issuer=floor.ISSUER)
    assert claims["sub"] == floor.USER["sub"] and claims["email"] == floor.USER["email"]
    assert (tmp_path / "floor.db").exists() is durable


def test_the_stack_floor_on_sqlite_keeps_its_records_in_the_file(tmp_path: Path) -> None:
    """``UAUTH_BENCH_FLOOR_DB``: the floor's codes and tokens are rows of the file, committed
    as Authlib's hooks write them, so another app on the file (another process, after a
    restart) honours them; a spent code and a rotated refresh token are gone from it."""
    import sqlite3

    from bench import floor

    database = tmp_path / "floor.db"
    app = floor.create_app(str(database))
    target = Target(issuer=floor.ISSUER, spa_client=floor.PUBLIC_CLIENT,
                    redirect_uri=floor.REDIRECT_URI, service_client=floor.SERVICE_CLIENT,
                    access_token_format="opaque").discover(InProcess(app))
    agent, run = prepare(target, "flow", lambda _: InProcess(app))
    run()
    first = agent.refresh_token
    assert first is not None
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                  for table in ("codes", "access", "refresh")}
        assert counts["codes"] == 0, "every code spent"
        assert counts["access"] == counts["refresh"] > 0, "a pair a flow"
        body = db.execute("SELECT body FROM refresh WHERE key = ?", (first,)).fetchone()[0]
        assert json.loads(body)["client_id"] == floor.PUBLIC_CLIENT
    again = floor.create_app(str(database))  # a second worker, or the next start
    refreshed = _floor_token(again, {"grant_type": "refresh_token", "refresh_token": first,
                                     "client_id": floor.PUBLIC_CLIENT})
    assert refreshed["refresh_token"] != first and "id_token" in refreshed
    replay = _floor_token(app, {"grant_type": "refresh_token", "refresh_token": first,
                                "client_id": floor.PUBLIC_CLIENT})
    assert replay["error"] == "invalid_grant", "rotated on the other app, so spent here too"
    with contextlib.closing(sqlite3.connect(database)) as db:
        keys = {key for key, in db.execute("SELECT key FROM refresh")}
        assert refreshed["refresh_token"] in keys and first not in keys
        assert len(keys) == counts["refresh"], "one spent, one issued"


def test_the_stack_floor_on_sqlite_commits_a_grants_tokens_at_once(tmp_path: Path) -> None:
    """As Authlib's documented model keeps a token's pair in one row: a refresh reads its
    token, commits the new pair in one transaction and then deletes the old token; each other
    statement commits by itself."""
    from bench import floor

    app = floor.create_app(str(tmp_path / "floor.db"))
    target = Target(issuer=floor.ISSUER, spa_client=floor.PUBLIC_CLIENT,
                    redirect_uri=floor.REDIRECT_URI, service_client=floor.SERVICE_CLIENT,
                    access_token_format="opaque").discover(InProcess(app))
    agent, run = prepare(target, "flow", lambda _: InProcess(app))
    run()
    assert agent.refresh_token is not None
    statements: list[str] = []
    db = app.extensions["floor_records"].db
    db.set_trace_callback(lambda sql: statements.append(sql.split()[0]))
    refreshed = _floor_token(app, {"grant_type": "refresh_token",
                                   "refresh_token": agent.refresh_token,
                                   "client_id": floor.PUBLIC_CLIENT})
    db.set_trace_callback(None)
    assert "access_token" in refreshed
    assert statements == ["SELECT", "BEGIN", "INSERT", "INSERT", "COMMIT", "DELETE"]


def _floor_token(app: Any, form: dict[str, str]) -> dict[str, Any]:
    answer = app.test_client().post("/token", data=form)
    body: dict[str, Any] = answer.get_json()
    return body


def test_the_stack_floor_on_sqlite_is_shown_on_uauths_sqlite_lines_only() -> None:
    """When the bench served the floor on SQLite too, uauth's SQLite target lines show what the
    same stack costs durably; the other stores' lines show the floor in memory alone."""
    run = Run(Settings(stores=("sqlite", "redis"), workers=(1,), access_token_format="opaque"))
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.30, 1000)),
                Row("reference", "memory", 1, "refresh", result=_result(1.0, 300)),
                Row("floor", "memory", 1, "refresh", result=_result(0.9, 300)),
                Row("floor", "sqlite", 1, "refresh", result=_result(1.05, 300)),
                Row("floor", "memory", 1, "userinfo", result=_result(0.38, 900)),
                Row("floor", "sqlite", 1, "userinfo", result=_result(0.41, 900)),
                Row("uauth", "sqlite", 1, "refresh", result=_result(1.4, 200)),
                Row("uauth", "redis", 1, "refresh", result=_result(1.5, 200)),
                Row("uauth", "sqlite", 1, "userinfo", result=_result(0.50, 900)),
                Row("uauth", "redis", 1, "userinfo", result=_result(0.55, 900))]
    lines = targets_table(run, [], None, []).splitlines()

    def line(start: str) -> str:
        return _target(lines, start)[0]

    assert ("1.40 vs 1.00 ms = 1.40×; Authlib alone 0.90 ms = 0.90×, on sqlite 1.05 ms = "
            "1.05×") in line("rotating refresh (sqlite)")
    redis = line("rotating refresh (redis)")
    assert "Authlib alone 0.90 ms = 0.90×" in redis and "on sqlite" not in redis
    assert "0.50 vs 0.30 + 0.15 ms; Authlib alone 0.38 ms, on sqlite 0.41 ms" in line(
        "userinfo (sqlite)")
    redis = line("userinfo (redis)")
    assert "Authlib alone 0.38 ms" in redis and "on sqlite" not in redis
    stores = [cells.split("|")[3].strip() for cells in results_table(run).splitlines()
              if "refresh_token grant" in cells and "| floor " in cells]
    assert stores == ["memory", "sqlite"]


@pytest.mark.slow
def test_uauth_in_memory_is_served_by_uauth_serve_with_its_own_clients(tmp_path: Path) -> None:
    """bench/memory_app.py provisions each app it builds; the served worker's clients are the
    ones the bench drives, and nothing reaches a file: memory:// keeps it all in the worker."""
    from bench.servers import serve_in_memory

    ops = (("flow", "RS256"), ("cc", "RS256"), ("flow", "ES256"))
    server = serve_in_memory(tmp_path, 1, ops, "opaque")
    try:
        assert server.provider == "uauth-memory" and server.store == "memory"
        assert server.ops == (("flow", "RS256"), ("cc", "RS256")), "its one client signs RS256"
        for operation in ("flow", "cc"):
            agent, run = prepare(server.targets["RS256"], operation)  # real HTTP, gunicorn
            run()
            assert agent.requests > 0
        assert not list((tmp_path / "instance-memory").glob("*.db")), "no SQLite file"
    finally:
        server.stop()


@pytest.mark.slow
def test_a_served_deployments_resource_server_introspects_the_flows_token(
        tmp_path: Path) -> None:
    """``uauth client add --introspect-any-token``: the served deployment's service client may
    introspect the flow's access token, as the one ``bench.provision`` registers in-process,
    so ``bench.served_instructions`` can count ``--op introspect`` on SQLite."""
    from bench.servers import Uauth

    deployment = Uauth(tmp_path, "sqlite", access_token_format="opaque")
    deployment.provision()
    server = deployment.serve(1, 1, (("introspect", "RS256"),))
    try:
        agent, run = prepare(server.targets["RS256"], "introspect")  # real HTTP, gunicorn
        run()
        assert agent.requests > 0
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_the_stack_floor_is_served_as_the_bench_serves_it(tmp_path: Path, store: str) -> None:
    from bench.servers import serve_floor

    server = serve_floor(tmp_path, ("flow", "cc"), store)
    try:
        assert server.provider == "floor" and server.store == store
        assert server.ops == (("flow", "RS256"), ("cc", "RS256"))
        for operation in ("flow", "cc"):
            agent, run = prepare(server.targets["RS256"], operation)  # real HTTP, gunicorn
            run()
            assert agent.requests > 0
    finally:
        server.stop()
    assert len(list(tmp_path.glob("floor-*.db"))) == (store == "sqlite"), "its own file"


def test_the_stack_floor_keeps_its_records_in_memory_or_sqlite_only(tmp_path: Path) -> None:
    from bench.run import floor_stores
    from bench.servers import serve_floor

    with pytest.raises(ValueError, match="not redis"):
        serve_floor(tmp_path, ("flow",), "redis")
    # make bench serves the durable floor beside uauth on SQLite, and only there
    assert floor_stores(Settings(stores=("sqlite", "redis"))) == ("memory", "sqlite")
    assert floor_stores(Settings(stores=("redis", "postgres"))) == ("memory",)
    assert floor_stores(Settings(stores=("sqlite",), floor=False)) == ()


def test_targets_with_opaque_access_tokens_count_one_signature_and_judge_held_memory() -> None:
    """With ``--access-token-format opaque`` only the ID token is signed, so the floors count
    one RS256 signature fewer; the RSS target judges what a worker holds, and shows the peak a
    password check reaches (argon2id's 19 MiB, returned after it) beside it."""
    run = Run(Settings(stores=("sqlite",), workers=(1,), access_token_format="opaque"))
    busy = Result(ops=100, errors=0, first_error="", seconds=1.0, p50_ms=1.0, p99_ms=2.0,
                  cpu_ms_per_op=1.0, peak_rss=95 << 20, rss=70 << 20, http_requests=100,
                  server_cores=0.5)
    run.rows = [Row("bare", "-", 1, "bare", result=_result(0.30, 1000)),
                Row("reference", "memory", 1, "flow", result=_result(2.0, 300)),
                Row("reference", "memory", 1, "cc", result=_result(1.0, 300)),
                Row("uauth", "sqlite", 1, "flow", result=_result(2.2, 200)),
                Row("uauth", "sqlite", 1, "cc", result=busy)]
    signs = [Cost("RS256 JWT signature (PyJWT, one access token)", 0.4, 0.4)]
    lines = targets_table(run, [], None, signs).splitlines()
    assert "floor 1.30 ms = 0.65× (3 bare requests + 1 RS256)" in next(
        line for line in lines if "flow, RS256 ID token (sqlite)" in line)
    assert "(1 bare request + 0 RS256)" in next(
        line for line in lines if "client_credentials, opaque AT (sqlite)" in line)
    memory = next(line for line in lines if "≤ 80 MB RSS" in line)
    assert "70 MB (peak during a password check 95 MB)" in memory and "| met" in memory
    assert "client_credentials (uauth: opaque access token)" in results_table(run)


def test_require_token_is_measured_through_a_host_app() -> None:
    first, again = require_token_costs(seconds=0.01)
    assert "first" in first.name and "again" in again.name
    assert first.cpu_ms > 0 and again.cpu_ms > 0


def test_signatures_are_measured_with_real_keys() -> None:
    costs = signing_costs(seconds=0.01)
    assert [c.name.split()[0] for c in costs] == ["RS256", "ES256"]
    assert all(c.cpu_ms > 0 for c in costs)


def test_py_spy_samples_are_charged_to_the_component_of_their_innermost_frame() -> None:
    from bench.spy import read_raw
    from bench.spy import report

    serve = ("handle (/v/lib/python3.11/site-packages/gunicorn/workers/sync.py:135);"
             "wsgi_app (/v/lib/python3.11/site-packages/flask/app.py:1479)")
    raw = [f"{serve};token (/w/uauth/web/views/token.py:55);"
           "_run (/w/uauth/storage/sqlite.py:112) 6\n",
           f"{serve};emit (/py/lib/python3.11/logging/__init__.py:1098) 3\n",
           "handle (/v/lib/python3.11/site-packages/gunicorn/workers/sync.py:135) 1\n",
           "not a sample line\n"]
    samples = read_raw(raw)
    assert samples.total == 10
    assert samples.by_component == {"uauth storage": 6, "log lines (logging)": 3,
                                    "gunicorn: HTTP parsing, socket writes, closing": 1}
    assert samples.by_frame["token (uauth/web/views/token.py)"] == 6
    assert samples.by_frame["wsgi_app (flask/app.py)"] == 9
    assert samples.by_frame["emit (logging/__init__.py)"] == 3
    text = report(samples, "cc", "sqlite", 2.0, top=5)
    assert "| uauth storage | 60% | 1.20 |" in text and "| log lines (logging) | 30% | 0.60 |" in text


@pytest.mark.slow
def test_py_spy_samples_a_served_worker(tmp_path: Path) -> None:
    from bench.spy import spy

    samples, result = spy("sqlite", "cc", 2.0, 200, "opaque", tmp_path)
    assert result.ops > 0 and samples.total > 50, (samples.total, result)
    assert samples.by_frame["token (uauth/web/views/token.py)"] > 0
    assert samples.by_component["gunicorn: HTTP parsing, socket writes, closing"] > 0


def test_two_counters_of_one_method_made_at_once_both_count() -> None:
    """``bench.storage`` counts a Redis command as a wait and as a request: two counters of
    one method, both made before either starts."""
    from bench.storage import Counter

    class Server:
        def send(self) -> int:
            return 1

    original = Server.send
    first, second = Counter(Server, "send"), Counter(Server, "send")
    with first, second:
        assert Server().send() == 1
    assert (first.calls, second.calls) == (1, 1)
    assert Server.send is original, "the method is put back"


def test_bench_storage_counts_each_trip_to_sqlite_once(tmp_path: Path) -> None:
    """A statement alone is one trip; held writes committed at a batch's end are one too."""
    from bench.storage import waits
    from uauth.storage.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "count.sqlite3")
    store.ping()
    (counter,) = waits("sqlite")
    with counter:
        with store.batch():
            store.save("code", "a", {"n": 1}, ttl=60)
            store.save("code", "b", {"n": 2}, ttl=60)
        assert counter.calls == 1, "the batch's end: one transaction"
        with store.batch():
            store.save("code", "c", {"n": 3}, ttl=60)
            assert store.find("code", "a") == {"n": 1}
        assert store.find("code", "c") == {"n": 3}
    assert counter.calls == 3, "the held save with the read, then a read alone"
    store.close()


def test_strace_counts_are_read_per_operation() -> None:
    from bench.syscalls import read_summary
    from bench.syscalls import report

    table = ["% time     seconds  usecs/call     calls    errors syscall",
             "------ ----------- ----------- --------- --------- ----------------",
             " 37.25    0.102168           8       900           pwrite64",
             "  1.13    0.003086           8        30         2 accept4",
             "  0.99    0.002713           7        30           poll",
             "------ ----------- ----------- --------- --------- ----------------",
             "100.00    0.274248           8       960         2 total"]
    calls = read_summary(table)
    assert calls == {"pwrite64": 900, "accept4": 30, "poll": 30}
    text = report(calls, "flow", "sqlite", top=2)  # a flow is three requests: 10 operations
    assert "96 system calls per operation (10 operations counted)" in text
    assert "| pwrite64 | 90.0 |" in text and "| poll |" not in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_strace_counts_a_served_workers_calls(tmp_path: Path) -> None:
    from bench.syscalls import count

    calls = count("sqlite", "cc", 2.0, "opaque", tmp_path)
    assert calls.get("accept4", 0) > 10, calls
    assert calls.get("pwrite64", 0) > 0, "the opaque token's commit writes the WAL"


def test_profile_repeat_prints_the_least_cpu_of_its_timings(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import bench.profile as profile_module

    real = profile_module.profile
    timings: list[float] = []

    def counted(*args: object, with_profiler: bool, **kwargs: object) -> object:
        result = real(*args, with_profiler=with_profiler, **kwargs)  # type: ignore[arg-type]
        if not with_profiler:
            timings.append(result[1])
        return result

    monkeypatch.setattr(profile_module, "profile", counted)
    assert profile_module.main(["--op", "cc", "--count", "3", "--repeat", "3",
                                "--breakdown"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert len(timings) == 3
    assert f"{min(timings):.3f} CPU ms per operation in-process (3 operations)" in first
    assert "each timing" not in first
    timings.clear()
    assert profile_module.main(["--op", "cc", "--count", "3", "--repeat", "3", "--each",
                                "--breakdown"]) == 0
    each = capsys.readouterr().out.splitlines()[0]
    assert each == ("cc on sqlite, CPU ms per operation, each timing of 3: "
                    + " ".join(f"{t:.2f}" for t in timings)), "every timing, in order"


def test_profile_counts_the_access_log_only_when_asked(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--access-log`` logs as ``uauth serve`` does, to /dev/null: a line per request is
    formatted and written, so its cost is in the figure."""
    import bench.profile as profile_module

    logger = logging.getLogger("uauth")
    for kept in (logger, logging.getLogger("uauth.audit")):  # configure_logging sets both
        monkeypatch.setattr(kept, "handlers", list(kept.handlers))
        monkeypatch.setattr(kept, "level", kept.level)
        monkeypatch.setattr(kept, "propagate", kept.propagate)
    monkeypatch.setattr(requestlog, "_writer", None)  # configure_logging sets the direct writers
    monkeypatch.setattr(audit, "_writer", None)
    written: list[str] = []
    formatted = JsonFormatter.format
    direct = DirectLines.line

    def through_logging(self: JsonFormatter, record: logging.LogRecord) -> str:
        written.append(record.getMessage())
        return formatted(self, record)

    def written_directly(self: DirectLines, created: float, request_id: str, message: str,
                         fields: dict[str, Any]) -> str:
        written.append(message)
        return direct(self, created, request_id, message, fields)

    # Both ways a line takes: logging's (its formatter) and uauth serve's direct one.
    monkeypatch.setattr(JsonFormatter, "format", through_logging)
    monkeypatch.setattr(DirectLines, "line", written_directly)
    assert profile_module.main(["--op", "cc", "--count", "3"]) == 0
    assert "no access log" in capsys.readouterr().out and written == []
    assert profile_module.main(["--op", "cc", "--count", "3", "--access-log"]) == 0
    assert "the access log to /dev/null" in capsys.readouterr().out
    assert written.count("POST /token 200") >= 6, written
    assert requestlog._writer is not None, "written straight to the stream, as uauth serve does"
    streams = [h.stream for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    assert streams and all(stream.name == os.devnull for stream in streams)
    for stream in streams:
        stream.close()


def test_access_line_bench_times_both_ways_and_leaves_logging_as_it_was(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m bench.access_line`` times the access line and an audit event through
    logging and written directly, then puts logging back: no handler, level or writer of its
    own stays behind."""
    logger = logging.getLogger("uauth")
    before = (logger.handlers[:], logger.level, logger.propagate, requestlog._writer,
              audit._writer)
    costs = access_line.measure(50, 2)
    assert list(costs) == [f"{line} {way}" for line in ("access line", "audit event")
                           for way in ("through logging", "written directly")]
    assert all(len(each) == 2 and min(each) > 0 for each in costs.values())
    assert (logger.handlers, logger.level, logger.propagate, requestlog._writer,
            audit._writer) == before
    assert access_line.main(["--lines", "20", "--timings", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("| one line, in-process") and len(rows) == 6
    assert rows[2].startswith("| access line through logging |")
    assert rows[5].startswith("| audit event written directly |")


def test_access_line_bench_times_an_operations_lines_where_it_writes_them(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--op``: the operation's batches with uauth's lines written and without, alternated;
    a sign-in writes four (an access line a request, its token request's ``token.issued``),
    none while uauth's loggers are at WARNING, and logging is put back afterwards."""
    logger = logging.getLogger("uauth")
    before = (logger.handlers[:], logger.level, logger.propagate, requestlog._writer,
              audit._writer)
    levels: list[int] = []
    line = DirectLines.line

    def noted(self: DirectLines, *args: Any) -> str:
        levels.append(logger.level)
        return line(self, *args)

    monkeypatch.setattr(DirectLines, "line", noted)
    costs, lines = access_line.in_operation("sso", "memory", 3, 2)
    assert lines == 4.0
    assert levels.count(logging.INFO) >= 2 * 3 * 4 and logging.WARNING not in levels
    assert list(costs) == ["lines written", "no lines"]
    assert all(len(each) == 2 and min(each) > 0 for each in costs.values())
    assert (logger.handlers, logger.level, logger.propagate, requestlog._writer,
            audit._writer) == before
    assert access_line.main(["--op", "cc", "--count", "2", "--timings", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("| cc on memory, in-process |") and len(rows) == 3
    assert rows[2].startswith("| cc |") and rows[2].endswith("| 2.0 |"), "access line, audit"


@pytest.mark.parametrize("name", ["redis", "redis-cluster"])
def test_read_ahead_bench_compares_the_two_ways_and_leaves_the_store_reading_ahead(
        name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """``python -m bench.read_ahead`` times a flow with Store.prefetch and prefetch_grant and
    without: the round trips it reports differ by the four reads that ride along (the user
    twice, the deny list's user, the person's factors; on a cluster a wait is one pipeline to
    every primary it touches), and the store reads ahead again afterwards."""
    url = request.getfixturevalue("redis_url" if name == "redis" else "redis_cluster_url")
    app, target = build(name, tmp_path, url, {"UAUTH_REDIS_PREFIX": unique_prefix()},
                        access_token_format="opaque")
    with app.app_context():
        store = get_state().store
    try:
        _, run = prepare(target, "flow", lambda _: InProcess(app))
        for _ in range(MAX_GRANTS_PER_CLIENT + 1):  # the cap reached: each flow evicts, and a
            run()  # listing's forgotten names ride with the eviction (a wait of their own before)
        waits = read_ahead.trips(run, store, name, 3)
        assert waits["no reads ahead"] - waits["reads ahead"] == 4, waits
        alone = read_ahead.trips(run, store, name, 3, ("prefetch_grant",))
        assert alone["no reads ahead"] - alone["reads ahead"] == 1, alone
        costs = read_ahead.measure(app, run, store, 2, 2)
        assert [len(ms) for ms in costs.values()] == [2, 2] and min(map(min, costs.values())) > 0
        assert "prefetch" not in vars(store), "the store's own prefetch is back"
        assert "prefetch_grant" not in vars(store), "and its own prefetch_grant"
    finally:
        store.close()


def test_read_ahead_bench_reads_consent_with_the_session_for_a_client_that_asks_for_it(
        redis_url: str, tmp_path: Path) -> None:
    """``python -m bench.read_ahead --consent --only consent``: the bench's client no longer
    first party, its consent on record, the flow reads that consent with the session (one
    round trip fewer), and the view reads ahead again afterwards."""
    app, target = build("redis", tmp_path, redis_url, {"UAUTH_REDIS_PREFIX": unique_prefix()},
                        access_token_format="opaque")
    with app.app_context():
        store = get_state().store
    try:
        read_ahead.ask_consent(app, target)
        _, run = prepare(target, "flow", lambda _: InProcess(app))  # no consent page: on record
        waits = read_ahead.trips(run, store, "redis", 3, (read_ahead.CONSENT,))
        assert waits["no reads ahead"] - waits["reads ahead"] == 1, waits
        assert getattr(authorize, "expect_consent") is steps.expect_consent, (  # noqa: B009
            "the view's own call is back")
    finally:
        store.close()


def test_held_writes_bench_leaves_what_command_by_command_leaves(redis_url: str) -> None:
    """``python -m bench.held_writes`` compares two ways of doing the same work; it is."""
    dumps = []
    for way in ("apart", "held", "measured"):
        store = RedisStore(redis_url, prefix=unique_prefix())
        try:
            if way == "measured":
                costs = held_writes.measure(store, 2, 2)
                assert [len(ms) for ms in costs.values()] == [2, 2]
                continue
            for n in range(held_writes.HELD):
                store.save("app_grant", f"n{n}", held_writes.RECORD, ttl=600, grant_id="apps")
            for n in range(held_writes.HELD, held_writes.HELD + 3):
                with store.batch() if way == "held" else contextlib.nullcontext():
                    held_writes.token_writes(store, n)
            dumps.append(sorted((e.kind, e.key, e.grant_id) for e in store.dump()))
        finally:
            for entry in list(store.dump()):
                store.delete(entry.kind, entry.key)
            store.close()
    assert dumps[0] == dumps[1]
    assert ("revoked", "grant:g2", None) in dumps[1] and ("app_grant", "n2", "apps") not in dumps[1]


def test_least_reports_the_least_disturbed_of_its_timings(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import bench.passwords as passwords

    figures = iter([70.0, 31.0, 55.0, 40.0, 90.0])
    asked: list[float] = []

    def timed(name: str, fn: object, *, seconds: float) -> Cost:
        asked.append(seconds)
        cpu = next(figures)
        return Cost(name, cpu, cpu + 1)

    monkeypatch.setattr(passwords, "measure", timed)
    assert passwords.least("x", lambda: None, seconds=1.0) == Cost("x", 31.0, 32.0)
    assert asked == [0.2] * 5, "the time is shared out among the five timings"


def test_own_work_bench_times_uauth_and_the_floor_through_the_same_agent(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m bench.own_work`` prints, per operation, both apps' least CPU and what uauth
    adds; an operation it does not know is refused before anything is timed."""
    assert own_work.main(["--store", "memory", "--ops", "cc,userinfo", "--timings", "2",
                          "--count", "3"]) == 0
    rows = [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0][1:3] == ["uauth (memory)", "Authlib alone (memory)"]
    assert [row[0] for row in rows[2:]] == ["cc", "userinfo"]
    for _, ours, floor, own, ratio in rows[2:]:
        assert float(ours) > 0 and float(floor) > 0
        assert float(own) == pytest.approx(float(ours) - float(floor), abs=0.0015)
        # The ratio is of the unrounded figures, the cells are rounded to a microsecond: at a
        # tenth of a millisecond each, that moves the ratio by up to about 1%.
        ours_ms, floor_ms = float(ours), float(floor)
        rounding = ours_ms / floor_ms * (0.0005 / ours_ms + 0.0005 / floor_ms) + 0.005
        assert float(ratio.rstrip("×")) == pytest.approx(ours_ms / floor_ms, abs=rounding)
    with pytest.raises(SystemExit):
        own_work.main(["--ops", "flow,login"])
    with pytest.raises(SystemExit):  # the floor has no introspection endpoint to time
        own_work.main(["--ops", "introspect"])
    # With no --ops, every operation the floor offers too (the docs' command ran none: it
    # stopped at introspection)
    assert own_work.main(["--store", "memory", "--timings", "1", "--count", "1"]) == 0
    names = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()
             if line.startswith("| ")]
    assert names[2:] == ["flow", "refresh", "cc", "userinfo", "sso"]
    # --floor-store sqlite: the floor's records in a file, named in the header
    assert own_work.main(["--store", "memory", "--ops", "refresh", "--timings", "1",
                          "--count", "2", "--floor-store", "sqlite"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "| uauth (memory) | Authlib alone (sqlite) |" in head


def test_own_work_bench_times_uauth_without_the_grant_caps_eviction_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--without-eviction`` adds a uauth app whose cap evicts nothing, and the difference."""
    evict = grantlimits.evict_oldest
    assert own_work.main(["--store", "memory", "--ops", "cc,flow", "--timings", "2",
                          "--count", "3", "--without-eviction"]) == 0
    assert grantlimits.evict_oldest is evict, "the cap evicts again afterwards"
    rows = [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0][5:] == ["uauth, no eviction", "the grant cap's eviction"]
    assert [row[0] for row in rows[2:]] == ["cc", "flow"]
    for _, ours, _, _, _, uncapped, eviction in rows[2:]:
        assert float(uncapped) > 0
        assert float(eviction) == pytest.approx(float(ours) - float(uncapped), abs=0.0015)


def test_a_flow_without_eviction_keeps_every_family_and_the_next_flow_evicts_them(
        tmp_path: Path) -> None:
    """What ``--without-eviction`` times is the flow with no eviction at all; the bound holds
    again for the next flow, which evicts every family beyond it at once."""
    app, target = build("memory", tmp_path, None, access_token_format="opaque")
    _, run = prepare(target, "flow", lambda _: InProcess(app))
    uncapped = own_work.without_eviction(run)

    def families() -> int:
        with app.app_context():
            state = get_state()
            user = state.users.find_by_username(USERNAME)
            assert user is not None
            return sum(1 for kind, _, record in state.store.grant_records(apps_group(user.id))
                       if kind == APP_GRANT and record.get("offline", True))

    before = families()  # the agent's first flows'
    for _ in range(MAX_GRANTS_PER_CLIENT + 5):
        uncapped()
    assert families() == before + MAX_GRANTS_PER_CLIENT + 5
    run()
    assert families() == MAX_GRANTS_PER_CLIENT


def test_bench_storage_counts_the_waits_of_a_refresh(capsys: pytest.CaptureFixture[str]) -> None:
    """``--op refresh``: a rotation on SQLite is the token's read, the consume with its marker
    (its statement reading the deny-list entry and the user ahead, a wait of their own
    before), and the response's tokens, committed with it."""
    from bench.storage import main

    assert main(["--stores", "sqlite", "--op", "refresh", "--flows", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| storage | round trips per refresh |" in out
    assert "| sqlite | 3.0 | 3.0 |" in out, out


@pytest.mark.parametrize("access_token_format", ["jwt", "opaque"])
def test_bench_storage_counts_userinfo_with_either_token_format(
        capsys: pytest.CaptureFixture[str], access_token_format: str) -> None:
    """``--access-token-format``: make bench's targets use opaque access tokens. Either way
    userinfo reads only the deny list with the user: a JWT's claims are in it and an opaque
    token's are kept by the worker that minted it."""
    from bench.storage import main

    assert main(["--stores", "sqlite", "--op", "userinfo", "--flows", "20", "--rounds", "1",
                 "--access-token-format", access_token_format]) == 0
    out = capsys.readouterr().out
    assert "| sqlite | 1.0 | 1.0 |" in out, out


def test_instruction_counts_are_read_and_tabled_per_app() -> None:
    """``python -m bench.instructions`` reads callgrind's count from what it prints at exit
    (the last, should a child print one too) and tables millions per operation, with each
    uauth app's ratio to the floor."""
    stderr = "==1== Events    : Ir\n==1== Collected : 120\n==2== Collected : 1234567\n"
    assert instructions.collected(stderr) == 1234567
    with pytest.raises(RuntimeError, match="no count"):
        instructions.collected("valgrind: command not found")
    counts = {("floor", "cc"): 1_000_000.0, ("sqlite", "cc"): 1_250_000.0}
    lines = instructions.table(counts, ["floor", "sqlite"], ["cc"]).splitlines()
    assert lines[0] == "| operation (M instructions in the app) | floor | sqlite | sqlite ÷ floor |"
    assert lines[2] == "| cc | 1.000 | 1.250 | 1.250× |"
    assert set(storage.OPS) <= set(instructions.COUNTS), (
        "every operation it offers (its default: all of them) has a default count")
    command = instructions.valgrind_command("memory", "flow", 7, Path("out"))
    assert command[:5] == ["valgrind", "--tool=callgrind", "--collect-atstart=no",
                           "--toggle-collect=_operator_call", "--callgrind-out-file=out"]
    assert command[-4:] == ["--child", "memory", "flow", "7"]
    with pytest.raises(SystemExit):
        instructions.main(["--apps", "floor,mongo"])


def test_an_operation_an_app_cannot_do_is_counted_as_a_dash() -> None:
    """The floor has no introspection or PAR endpoint: its counted child says so with its exit
    status, and the table shows a dash for it and for the ratios against it, so the default
    (every operation) counts the rest instead of failing."""
    assert instructions.main(["--child", "floor", "introspect", "1"]) == instructions.UNSUPPORTED
    assert instructions.main(["--child", "floor", "par", "1"]) == instructions.UNSUPPORTED
    counts = {("floor", "introspect"): None, ("sqlite", "introspect"): 1_500_000.0,
              ("floor", "cc"): 1_000_000.0, ("sqlite", "cc"): None}
    lines = instructions.table(counts, ["floor", "sqlite"], ["introspect", "cc"]).splitlines()
    assert lines[2] == "| introspect | – | 1.500 | – |"
    assert lines[3] == "| cc | 1.000 | – | – |"


def test_an_instruction_count_on_redis_uses_the_server_its_parent_started(
        monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """``--apps redis`` (or ``redis-cluster``): the parent starts the server outside valgrind and
    names it to the child, whose app keeps its records there."""
    import redis as redis_py

    monkeypatch.setenv(instructions.STORAGE_URL, redis_url)
    raw = redis_py.Redis.from_url(redis_url)
    try:
        instructions.child("redis", "cc", 2)
        assert raw.keys("uauth:r:client:*"), "the bench's clients were provisioned there"
    finally:
        for key in raw.scan_iter(match="uauth:*"):
            raw.delete(key)
        raw.close()


def test_an_instruction_count_covers_the_app_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child runs its operations with the WSGI app behind ``operator.call``, the function
    callgrind counts inside: each request the agent makes goes through it once, and nothing of
    the warm-up does."""
    import operator

    calls: list[object] = []
    real = operator.call

    def counted(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return real(fn, *args)

    monkeypatch.setattr(operator, "call", counted)
    instructions.child("memory", "userinfo", 3)
    assert len(calls) == 3, "one userinfo request per operation, none of the warm-up"
    calls.clear()
    instructions.child("floor", "cc", 2)
    assert len(calls) == 2
    # the floor with its records in SQLite: its grants' tokens are written to the file
    from bench import floor

    written: list[str] = []
    monkeypatch.setattr(floor.Durable, "__setitem__",
                        lambda table, key, record: written.append(key))
    calls.clear()
    instructions.child("floor-sqlite", "cc", 2)
    assert len(calls) == 2 and len(written) > instructions.WARM + 2, "a token a grant"


def _evictions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many families each call of the grant cap evicts from now on, in order."""
    evicted: list[int] = []
    real = grantlimits.evict_oldest

    def evict(*args: Any, **kwargs: Any) -> int:
        evicted.append(real(*args, **kwargs))
        return evicted[-1]

    monkeypatch.setattr(grantlimits, "evict_oldest", evict)
    return evicted


def test_each_counted_flow_evicts_a_family_as_at_the_steady_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up starts more families than the grant cap keeps, so a counted flow pays for
    the eviction every flow pays at the bench's steady state."""
    evicted = _evictions(monkeypatch)
    instructions.child("memory", "flow", 2)
    assert evicted[-2:] == [1, 1], evicted


def test_a_count_without_eviction_reaches_its_child_whose_flows_evict_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--without-eviction`` is passed to each count and on to the counted child, whose flows,
    warm-up included, start more families than the cap keeps and evict none; the table says
    so."""
    evicted = _evictions(monkeypatch)
    counting = grantlimits.evict_oldest
    command = instructions.valgrind_command("memory", "flow", 2, Path("out"), evicting=False)
    assert command[-5:] == ["--child", "memory", "flow", "2", "--without-eviction"]
    assert instructions.main(command[command.index("--child"):]) == 0
    # The agent's own first flows (``prepare``) come before the warm-up and the count.
    assert len(evicted) < instructions.WARM and not any(evicted), evicted
    assert grantlimits.evict_oldest is counting, "the cap is put back after each flow"
    asked: list[bool] = []

    def count(name: str, op: str, ops: int, *, evicting: bool = True) -> float:
        asked.append(evicting)
        return 1e6

    monkeypatch.setattr(instructions, "count", count)
    capsys.readouterr()
    assert instructions.main(["--apps", "memory", "--ops", "cc", "--without-eviction"]) == 0
    assert asked == [False]
    assert capsys.readouterr().out.startswith(
        "| operation (M instructions in the app, the grant cap evicting nothing) |")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_repeat_whatever_the_load() -> None:
    """Under callgrind, the same operations count the same instructions in another process:
    two counts of the floor's client_credentials grants, of four and of eight, run at once on
    the shared cores, agree per operation within half a percent."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        four, eight = pool.map(lambda n: instructions.count("floor", "cc", n), [4, 8])
    assert four is not None and eight is not None, "the floor grants client credentials"
    assert 200_000 < four < 20_000_000, four
    assert eight == pytest.approx(four, rel=0.005)


def test_a_served_worker_counts_its_connections_only_while_the_flag_exists(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--serve`` has gunicorn's sync worker handle a connection through ``operator.call``,
    the function callgrind counts inside, only while the flag file exists: the warm-up and
    the check itself are not counted."""
    import operator

    from gunicorn.workers import sync

    handled: list[object] = []
    counted: list[object] = []
    real_call = operator.call

    def handle(worker: object, listener: object, client: object, addr: object) -> None:
        handled.append(client)

    def call(fn: Any, *args: Any) -> Any:
        counted.append(args[2])
        return real_call(fn, *args)

    monkeypatch.setattr(sync.SyncWorker, "handle", handle)  # restored afterwards
    monkeypatch.setattr(operator, "call", call)
    flag = tmp_path / "count"
    served_instructions.count_connections(str(flag))
    worker = object.__new__(sync.SyncWorker)
    worker.handle(None, "warm-up", None)
    flag.touch()
    worker.handle(None, "counted", None)
    flag.unlink()
    worker.handle(None, "after", None)
    assert handled == ["warm-up", "counted", "after"]
    assert counted == ["counted"]


def test_served_counts_are_summed_over_the_processes_callgrind_wrote(tmp_path: Path) -> None:
    """The master counts nothing (it handles no connection), the worker its connections; the
    apps are those ``bench.instructions`` counts."""
    master, worker = tmp_path / "callgrind.1", tmp_path / "callgrind.2"
    master.write_text("events: Ir\nsummary: 0\ntotals: 0\n")
    worker.write_text("events: Ir\nsummary: 4321\nfl=x\ntotals: 4321\n")
    assert served_instructions.summed([master, worker]) == 4321
    master.write_text("valgrind: command not found\n")
    with pytest.raises(RuntimeError, match="no count"):
        served_instructions.summed([master])
    with pytest.raises(SystemExit):
        served_instructions.main(["--apps", "floor,redis"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_served_count_leaves_out_an_operation_the_app_cannot_do() -> None:
    """The floor served under callgrind has no introspection endpoint: no count, not an
    error (its server is stopped all the same)."""
    assert served_instructions.count("floor", "introspect", 1) is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_served_count_covers_each_counted_request_and_repeats() -> None:
    """The bare endpoint served under callgrind (gunicorn and Flask, after the same warm-up):
    one request an operation, and the same count per request whether three or six are
    counted."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = list(pool.map(lambda n: served_instructions.count("floor", "bare", n), [3, 6]))
    assert None not in counted, "the bare endpoint answers every request"
    (three, per3), (six, per6) = [c for c in counted if c is not None]
    assert per3 == per6 == 1
    assert 100_000 < three < 10_000_000, three
    assert six == pytest.approx(three, rel=0.01)


def test_wal_pages_charges_each_page_a_flow_writes_to_its_table_or_index(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A flow commits three times on SQLite (the authorization's code, the code's spend, the
    tokens with the cap's eviction); each frame of the log is a page of the records' table or of
    one of its indexes. Sixty flows write more pages than SQLite's automatic checkpoint lets the
    log hold (1,000): the log must not start again meanwhile."""
    by_owner, commits = wal_pages.count("flow", 60, "opaque")
    assert commits == 180
    assert sum(by_owner.values()) > 1000
    assert {"records", "sqlite_autoindex_records_1", "idx_records_grant_id",
            "idx_records_expires_at"} <= set(by_owner)
    assert wal_pages.main(["--op", "userinfo", "--count", "5"]) == 0
    assert "0.0 pages written a userinfo (0.0 pwrite64 calls), 0.00 commits" in (
        capsys.readouterr().out)


def test_wal_frames_are_read_with_their_page_and_commit_mark() -> None:
    page_size = 512
    header = b"\x37\x7f\x06\x82" + (3007000).to_bytes(4, "big") + page_size.to_bytes(4, "big")
    log = header.ljust(wal_pages.WAL_HEADER, b"\0")
    for page, size_after_commit in ((7, 0), (2, 0), (1, 9)):
        frame = page.to_bytes(4, "big") + size_after_commit.to_bytes(4, "big")
        log += frame.ljust(wal_pages.FRAME_HEADER, b"\0") + b"\0" * page_size
    assert wal_pages.frames(log) == [(7, False), (2, False), (1, True)]
    assert wal_pages.frames(log[:-1]) == [(7, False), (2, False)]  # a frame cut short
    assert wal_pages.frames(b"") == []
