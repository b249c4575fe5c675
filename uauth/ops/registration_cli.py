"""CLI for self-registered clients: ``uauth registration token create`` and
``uauth client prune`` (added to the ``uauth`` groups by :mod:`uauth.ops.cli`)."""

from __future__ import annotations

import json
import re

import click

from uauth.core.registration import create_initial_token
from uauth.core.registration import prune
from uauth.core.registration import unused_clients
from uauth.ops.context import CliContext
from uauth.ops.context import admin_action
from uauth.ops.context import current_state
from uauth.ops.context import in_app
from uauth.ops.context import pass_ctx

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` or ``2w`` as seconds."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw]?)\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 3600, 30m, 12h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@click.group()
def registration() -> None:
    """Dynamic client registration (RFC 7591): initial access tokens."""


@registration.group("token")
def registration_token() -> None:
    """Initial access tokens for UAUTH_REGISTRATION = "token"."""


@registration_token.command("create")
@click.option("--expires", default="7d", show_default=True, metavar="DURATION",
              help="How long the token may be used: seconds or 30m, 12h, 7d.")
@click.option("--uses", default=1, show_default=True, type=click.IntRange(1, 100000),
              help="How many clients may register with it.")
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ...} as JSON.')
@pass_ctx
def token_create(ctx: CliContext, expires: str, uses: int, as_json: bool) -> None:
    """Create an initial access token (printed once, stored as a digest)."""
    seconds = parse_duration(expires)
    with in_app(ctx):
        state = current_state()
        if state.settings.registration != "token":
            click.echo("note: UAUTH_REGISTRATION is not \"token\"; the token is only accepted "
                       "once it is", err=True)
        token = create_initial_token(state.store, expires=seconds, uses=uses, now=state.now())
    admin_action("registration.token.create", uses=uses, expires=seconds)
    if as_json:
        click.echo(json.dumps({"token": token, "expires_in": seconds, "uses": uses}))
        return
    click.echo(f"initial access token: {token}")
    click.echo(f"(valid {seconds} s for {uses} registration(s); shown only now)")


@click.command("prune")
@click.option("--older-than", metavar="DURATION", default=None,
              help="Unused for longer than this (default: UAUTH_REGISTRATION_UNUSED_TTL).")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@pass_ctx
def client_prune(ctx: CliContext, older_than: str | None, dry_run: bool) -> None:
    """Remove dynamically registered clients that got no token for a long time."""
    with in_app(ctx):
        state = current_state()
        seconds = (parse_duration(older_than) if older_than
                   else state.settings.registration_unused_ttl)
        if dry_run:
            ids = [c.client_id for c in unused_clients(state.store, older_than=seconds,
                                                        now=state.now())]
        else:
            ids = prune(state.store, older_than=seconds, now=state.now())
    if not dry_run and ids:
        admin_action("client.prune", removed=len(ids))
    for client_id in ids:
        click.echo(("would remove " if dry_run else "removed ") + client_id)
    if not ids:
        click.echo("no unused dynamic clients")
