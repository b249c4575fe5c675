"""Operations commands of the ``uauth`` CLI: ``keys``, ``check``, ``backup``, ``migrate``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Config

from uauth.core.keys import SUPPORTED_ALGS
from uauth.core.mail import probe
from uauth.core.records import KEYSET
from uauth.core.settings import DEFAULTS
from uauth.core.settings import ConfigError
from uauth.core.settings import from_environ
from uauth.core.settings import validate_storage_url
from uauth.ops.bind import running_server
from uauth.ops.context import CliContext
from uauth.ops.context import CliGroup
from uauth.ops.context import admin_action
from uauth.ops.context import current_state
from uauth.ops.context import fail
from uauth.ops.context import pass_ctx
from uauth.ops.instance import require_instance
from uauth.ops.instance import resolve_instance_path
from uauth.ops.transfer import TransferError
from uauth.ops.transfer import backup_sqlite
from uauth.ops.transfer import compare
from uauth.ops.transfer import migrate as copy_all
from uauth.storage import StorageError
from uauth.storage import VersionedSchema
from uauth.storage import open_store
from uauth.storage import sqlite_path
from uauth.storage.sqlite import SQLiteStore


def _when(ts: int | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


@click.group(cls=CliGroup)
def keys() -> None:
    """Signing keys: list, rotate, retire (shared by every worker and host through storage)."""


@keys.command("list")
@pass_ctx
def keys_list(ctx: CliContext) -> None:
    """Every published key: next (pre-published), active (signing) or retiring."""
    with ctx.app().app_context():
        rows = current_state().keys.describe()
    click.echo("kid\talg\tstatus\tsigns from\tretires at")
    for row in rows:
        status = row.status if row.enabled else f"{row.status} (algorithm not enabled)"
        click.echo(f"{row.key.kid}\t{row.key.alg}\t{status}\t{_when(row.key.created)}\t"
                   f"{_when(row.retires_at)}")


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice(SUPPORTED_ALGS),
              help="Algorithm to rotate (repeat; default: every enabled one).")
@click.option("--now", "immediately", is_flag=True,
              help="Sign with the new key at once instead of after UAUTH_KEY_PREPUBLISH "
              "(relying parties that cached the JWKS may briefly fail to verify).")
@pass_ctx
def keys_rotate(ctx: CliContext, algs: tuple[str, ...], immediately: bool) -> None:
    """Add a new key per algorithm; old keys stay published until their tokens expire."""
    with ctx.app().app_context():
        state = current_state()
        enabled = state.settings.signing_algs
        for alg in algs:
            if alg not in enabled:
                fail(f"{alg} is not enabled; add it to UAUTH_SIGNING_ALGS first")
        added = state.keys.rotate(list(algs or enabled), immediately=immediately)
    admin_action("keys.rotate", kids=" ".join(key.kid for key in added))
    for key in added:
        click.echo(f"added {key.alg} key {key.kid}; published now, signs from {_when(key.created)}")


# A key id is a base64url thumbprint: one in 64 starts with "-", which click would take for an
# option. This command has none of its own but --help, so every other word is the id.
@keys.command("retire", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@pass_ctx
def keys_retire(ctx: CliContext, kid: str) -> None:
    """Delete a key now (e.g. compromised): tokens it signed stop validating at once."""
    with ctx.app().app_context():
        try:
            replacement = current_state().keys.retire(kid)
        except LookupError as exc:
            fail(str(exc.args[0]))
    admin_action("keys.retire", kid=kid)
    click.echo(f"retired key {kid}")
    if replacement is not None:
        click.echo(f"it was signing: {replacement.alg} key {replacement.kid} signs from now on")


def _check_mail(state: Any, report: Any) -> None:
    """Mail is optional; without it, say what is off. With it, it must answer."""
    mailer = state.mailer
    if not mailer.configured:
        report.warn("mail", "not configured: password reset by email, email verification, "
                    "invitations by mail and open sign-up are off (set UAUTH_SMTP_URL and "
                    "UAUTH_MAIL_FROM)")
        return
    problem = probe(mailer.settings, mailer.timeout)
    if problem:
        report.fail("mail", f"{mailer.settings.host}:{mailer.settings.port}: {problem}")
    else:
        report.ok("mail", f"{mailer.settings.host}:{mailer.settings.port} answers "
                  f"({mailer.settings.tls})")


@click.command()
@click.option("--url", metavar="ORIGIN",
              help="Check the server answering at this origin (e.g. https://id.example.com or a "
              "backend's http://10.0.0.5:8000); default: serve this config in-process.")
@pass_ctx
def check(ctx: CliContext, url: str | None) -> None:
    """Check config, storage, keys and a full code + PKCE flow; exit 1 if anything fails."""

    # Deferred on purpose: the self-check's HTTP client (requests) would otherwise load with
    # every `uauth` command and every worker that imports the app, for this one command.
    from uauth.ops.selfcheck import Report
    from uauth.ops.selfcheck import run
    from uauth.ops.selfcheck import serve_in_process

    report = Report(click.echo)
    instance = resolve_instance_path(ctx.instance)
    _require_initialised_store(ctx)
    running = None if url else running_server(instance)
    if running:  # the server `uauth serve` runs on this instance, wherever it listens
        url = running[0]
        report.ok("server", f"uauth serve runs this instance at {url} (issuer {running[1]})")
    if url:
        parts = urlsplit(url)
        ctx.follow_loopback(f"{parts.scheme}://{parts.netloc}")
    app = ctx.app()  # a bad config stops here, with the key and the fix
    with app.app_context():
        state = current_state()
        settings = state.settings
        report.ok("config", f"instance {app.instance_path}, issuer {state.issuer}")
        issuer = urlsplit(state.issuer)
        if issuer.path.rstrip("/") != settings.url_prefix:
            report.warn("config", f"the issuer's path {issuer.path or '/'!r} differs from "
                        f"UAUTH_URL_PREFIX {settings.url_prefix!r}: a proxy must map it")
        if issuer.scheme == "https" and not settings.trusted_proxies:
            report.warn("config", "https issuer: if a TLS proxy forwards to uauth, set "
                        "UAUTH_TRUSTED_PROXIES")
        storage = settings.storage.split("://", 1)[0]
        if url and storage == "memory":
            fail("memory:// storage is per process: this command cannot see a server's data")
        state.store.ping()
        report.ok("storage", f"{storage} answers")
        _check_mail(state, report)
        if url:
            parts = urlsplit(url)
            ok = run(state, f"{parts.scheme}://{parts.netloc}", report)
        else:
            with serve_in_process(app) as base:
                ok = run(state, base, report)
    click.echo("deployment works" if ok else "deployment check FAILED")
    sys.exit(0 if ok else 1)


def _require_initialised_store(ctx: CliContext) -> None:
    """The check adds a throwaway user and client to storage; to storage that ``uauth init``
    never set up it would add signing keys too. Looked at before the app starts (which would
    create them)."""
    instance = resolve_instance_path(ctx.instance)
    require_instance(instance)
    config = Config(str(instance))
    config.from_pyfile(str(instance / "config.py"), silent=True)
    config.update(from_environ())
    raw = str(config.get("UAUTH_STORAGE", DEFAULTS["UAUTH_STORAGE"]))
    url = validate_storage_url(raw, str(instance), "UAUTH_STORAGE")
    if url.startswith("memory"):
        return  # per process: the check serves it in-process, nothing outlives it
    empty = url.startswith("sqlite") and not Path(sqlite_path(url)).exists()
    if not empty:
        store = open_store(url, redis_prefix=str(config.get(
            "UAUTH_REDIS_PREFIX", DEFAULTS["UAUTH_REDIS_PREFIX"])))
        try:
            empty = store.find(KEYSET, "version") is None
        finally:
            store.close()
    if empty:
        fail(f"the storage {url.split('@')[-1]} holds no signing keys: it was never "
             "initialised; run `uauth init` with the same UAUTH_STORAGE first")


@click.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@pass_ctx
def backup(ctx: CliContext, dest: Path, force: bool) -> None:
    """Copy the SQLite database to DEST while uauth keeps running (online backup)."""

    with ctx.app().app_context():
        store = current_state().store
        if not isinstance(store, SQLiteStore):
            fail("backup copies SQLite storage; for Redis use its own persistence (RDB/AOF), "
                 "for PostgreSQL pg_dump; see docs/operations.md")
        try:
            counts = backup_sqlite(store, dest, overwrite=force)
        except TransferError as exc:
            fail(str(exc))
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    click.echo(f"backed up {store.path} to {dest} ({summary or 'empty'})")
    click.echo("keep instance/secret_key with it: it opens the signing keys in the copy")


@click.command()
@click.option("--to", "target_url", metavar="URL",
              help="Storage to copy into, e.g. redis://10.0.0.7:6379/0 or "
                   "postgresql://uauth@db:5432/uauth. Without it: bring the configured "
                   "PostgreSQL schema up to date.")
@click.option("--prefix", help="Redis key prefix at the target (default: UAUTH_REDIS_PREFIX).")
@click.option("--overwrite", is_flag=True, help="Copy even if the target holds records.")
@pass_ctx
def migrate(ctx: CliContext, target_url: str | None, prefix: str | None, overwrite: bool) -> None:
    """Copy every live record (clients, users, consents, refresh tokens, keys, …) to another
    storage, keeping TTLs; then point UAUTH_STORAGE at it. Without --to: apply the schema
    versions the configured PostgreSQL lacks (idempotent; hosts may run it together)."""
    if target_url is None:
        _migrate_schema(ctx)
        return

    with ctx.app().app_context():
        state = current_state()
        try:
            url = validate_storage_url(target_url, ctx.app().instance_path)
        except ConfigError as exc:
            fail(str(exc))
        prefix = prefix if prefix is not None else state.settings.redis_prefix
        if url == state.settings.storage and (
                not url.startswith("redis") or prefix == state.settings.redis_prefix):
            fail("the target is the storage uauth already uses")
        target = open_store(url, redis_prefix=prefix, clock=state.clock)
        try:
            counts = copy_all(state.store, target, now=state.clock(), overwrite=overwrite)
        except TransferError as exc:
            fail(str(exc))
        problems = compare(state.store, target)
        target.close()
    for kind, n in sorted(counts.items()):
        click.echo(f"copied {n:6d} {kind}")
    if problems:
        fail(f"{len(problems)} records differ after the copy, e.g. {problems[0]}")
    admin_action("migrate", records=sum(counts.values()))
    click.echo(f"verified: the target holds every record. Now set UAUTH_STORAGE={target_url}"
               + (f" and UAUTH_REDIS_PREFIX={prefix}" if url.startswith("redis") else "")
               + " on every host and restart uauth.")


def _migrate_schema(ctx: CliContext) -> None:
    with ctx.app().app_context():
        store = current_state().store
        if not isinstance(store, VersionedSchema):
            fail("only PostgreSQL storage has schema versions; to move records to another "
                 "storage use uauth migrate --to URL")
        try:
            applied = store.migrate()
        except StorageError as exc:
            fail(str(exc))
    if applied:
        admin_action("migrate-schema", versions=len(applied))
        click.echo(f"applied schema versions {', '.join(map(str, applied))} at {store.where}")
    else:
        click.echo(f"the schema at {store.where} is up to date (version {store.version()})")


OPERATIONS: tuple[click.Command, ...] = (keys, check, backup, migrate)
