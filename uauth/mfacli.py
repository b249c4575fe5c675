"""Operators' commands for second factors: ``uauth user mfa list|reset``, ``uauth user totp
enroll``, and ``uauth client update --require-mfa`` (added to the ``user`` and ``client``
groups of :mod:`uauth.cli`)."""

from __future__ import annotations

import json
from typing import Any

import click

from .audit import MFA_RESET
from .audit import audit


def _cli() -> Any:
    from . import cli

    return cli


def _user(username: str) -> Any:
    cli = _cli()
    found = cli._state().users.find_by_username(username)
    if found is None:
        cli.fail(f"no user {username!r}")
    return found


@click.group("mfa")
def mfa() -> None:
    """A user's passkeys and second factors."""


@mfa.command("list")
@click.argument("username")
@click.pass_obj
def mfa_list(ctx: Any, username: str) -> None:
    """List a user's passkeys, authenticator apps and recovery codes left."""
    import datetime

    cli = _cli()
    with cli._in_app(ctx):
        found = _user(username)
        factors = cli._state().factors
        rows = factors.of(found.id)
        left = factors.recovery_left(found.id)
    for factor in rows:
        added = datetime.datetime.fromtimestamp(factor.created_at, datetime.UTC)
        used = (datetime.datetime.fromtimestamp(factor.last_used_at, datetime.UTC)
                .strftime("%Y-%m-%d") if factor.last_used_at else "never")
        click.echo(f"{factor.id}\t{factor.type}\t{factor.name}\tadded {added:%Y-%m-%d}"
                   f"\tlast used {used}")
    click.echo(f"{len(rows)} factor(s); {left} recovery code(s) left")


@mfa.command("reset")
@click.argument("username")
@click.pass_obj
def mfa_reset(ctx: Any, username: str) -> None:
    """Remove every passkey, authenticator app and recovery code of a user (they lost them);
    their sessions end too. Audited."""
    cli = _cli()
    with cli._in_app(ctx):
        found = _user(username)
        removed = cli._state().factors.reset(found.id)
        ended = cli._end_sessions(found.id)
        audit(MFA_RESET, user_id=found.id, records=removed)
    cli.admin_action("user.mfa.reset", user_id=found.id, records=removed, sessions=ended)
    click.echo(f"removed the second factors of {username} ({removed} record(s)); "
               f"ended {ended} session(s)")


@click.group("totp")
def totp() -> None:
    """Authenticator apps (TOTP)."""


@totp.command("enroll")
@click.argument("username")
@click.option("--name", default="Authenticator app", show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help='Print {"secret": ..., "otpauth_uri": ...} as JSON.')
@click.pass_obj
def totp_enroll(ctx: Any, username: str, name: str, as_json: bool) -> None:
    """Give a user an authenticator app, active at once (for operators who provision
    devices). The secret is printed only now."""
    from .passkeys import relying_party
    from .totp import provisioning_uri

    cli = _cli()
    with cli._in_app(ctx):
        state = cli._state()
        if state.config["UAUTH_MFA"] == "off":
            cli.fail("UAUTH_MFA is off: second factors are not used")
        found = _user(username)
        factor, secret = state.factors.add_totp(found.id, name)
        uri = provisioning_uri(secret, found.username, relying_party(state.issuer).name)
    cli.admin_action("user.totp.enroll", user_id=found.id, factor=factor.id[:8])
    if as_json:
        click.echo(json.dumps({"secret": secret, "otpauth_uri": uri}))
        return
    click.echo(f"secret:      {secret}\notpauth_uri: {uri}\n(shown only now; stored sealed)")


@click.command("update")
@click.argument("client_id")
@click.option("--require-mfa/--no-require-mfa", default=None,
              help="Users must present a second factor to sign in to this client.")
@click.pass_obj
def client_update(ctx: Any, client_id: str, require_mfa: bool | None) -> None:
    """Change a client's settings (workers see it within UAUTH_CLIENT_CACHE_TTL)."""
    from .clients import get_client
    from .clients import save_client

    cli = _cli()
    with cli._in_app(ctx):
        store = cli._state().store
        found = get_client(store, client_id)
        if found is None:
            cli.fail(f"no client {client_id!r}")
            return
        if require_mfa is not None:
            found.require_mfa = require_mfa
        save_client(store, found)
    cli.admin_action("client.update", client_id=client_id, require_mfa=require_mfa)
    click.echo(f"updated client {client_id}" + (
        "" if require_mfa is None else f"; require_mfa={str(require_mfa).lower()}"))


def register(user: click.Group, client: click.Group) -> None:
    user.add_command(mfa)
    user.add_command(totp)
    client.add_command(client_update)
