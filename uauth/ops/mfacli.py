"""Operators' commands for second factors: ``uauth user mfa list|reset`` and ``uauth user totp
enroll`` (added to the ``user`` group of :mod:`uauth.ops.cli`)."""

from __future__ import annotations

import datetime
import json

import click

from uauth.core.audit import MFA_RESET
from uauth.core.audit import audit
from uauth.core.models import User
from uauth.core.passkeys import relying_party
from uauth.core.totp import provisioning_uri
from uauth.ops.context import CliContext
from uauth.ops.context import admin_action
from uauth.ops.context import current_state
from uauth.ops.context import end_sessions
from uauth.ops.context import fail
from uauth.ops.context import in_app
from uauth.ops.context import pass_ctx


def _user(username: str) -> User:
    found = current_state().users.find_by_username(username)
    if found is None:
        fail(f"no user {username!r}")
    return found


@click.group("mfa")
def mfa() -> None:
    """A user's passkeys and second factors."""


@mfa.command("list")
@click.argument("username")
@pass_ctx
def mfa_list(ctx: CliContext, username: str) -> None:
    """List a user's passkeys, authenticator apps and recovery codes left."""
    with in_app(ctx):
        found = _user(username)
        factors = current_state().factors
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
@pass_ctx
def mfa_reset(ctx: CliContext, username: str) -> None:
    """Remove every passkey, authenticator app and recovery code of a user (they lost them);
    their sessions end too. Audited."""
    with in_app(ctx):
        found = _user(username)
        removed = current_state().factors.reset(found.id)
        ended = end_sessions(found.id)
        audit(MFA_RESET, user_id=found.id, records=removed)
    admin_action("user.mfa.reset", user_id=found.id, records=removed, sessions=ended)
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
@pass_ctx
def totp_enroll(ctx: CliContext, username: str, name: str, as_json: bool) -> None:
    """Give a user an authenticator app, active at once (for operators who provision
    devices). The secret is printed only now."""
    with in_app(ctx):
        state = current_state()
        if state.settings.mfa == "off":
            fail("UAUTH_MFA is off: second factors are not used")
        found = _user(username)
        factor, secret = state.factors.add_totp(found.id, name)
        uri = provisioning_uri(secret, found.username, relying_party(state.issuer).name)
    admin_action("user.totp.enroll", user_id=found.id, factor=factor.id[:8])
    if as_json:
        click.echo(json.dumps({"secret": secret, "otpauth_uri": uri}))
        return
    click.echo(f"secret:      {secret}\notpauth_uri: {uri}\n(shown only now; stored sealed)")


def register(user: click.Group, client: click.Group) -> None:
    """Add the second-factor commands; ``client add|update --require-mfa`` live with the client
    commands."""
    del client
    user.add_command(mfa)
    user.add_command(totp)
