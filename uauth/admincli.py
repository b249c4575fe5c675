"""Day-one admin commands of the ``uauth`` CLI: passwords, enabling and removing users, and
showing, changing and rotating clients. Added to the ``user`` and ``client`` groups of
:mod:`uauth.cli`."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Any

import click

from .cli import _Context
from .cli import _end_sessions
from .cli import _in_app
from .cli import _own_users
from .cli import _state
from .cli import admin_action
from .cli import client
from .cli import client_add
from .cli import fail
from .cli import pass_ctx
from .cli import user

#: ``user set`` names that are not profile attributes, and the command that changes them.
INSTEAD = {
    "disabled": "uauth user disable NAME / uauth user enable NAME",
    "enabled": "uauth user enable NAME / uauth user disable NAME",
    "password": "uauth user set-password NAME",
    "password_hash": "uauth user set-password NAME",
    "username": "uauth user remove NAME, then uauth user add NEWNAME",
    "preferred_username": "uauth user remove NAME, then uauth user add NEWNAME",
    "id": None,
    "sub": None,
}


def instead_of(name: str) -> str | None:
    """The error for a reserved ``user set`` name, with the command to use, if any."""
    if name not in INSTEAD:
        return None
    command = INSTEAD[name]
    if command is None:
        return f"{name!r} is not a profile attribute and cannot be changed"
    return f"{name!r} is not a profile attribute; use `{command}`"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    return password


def _found(username: str) -> Any:
    users = _own_users()
    found = users.find_by_username(username)
    if found is None:
        fail(f"no user {username!r}")
    return users, found


@user.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_ctx
def user_set_password(ctx: _Context, username: str, password_stdin: bool) -> None:
    """Set a user's password (hashed with argon2id); their sessions stay signed in."""
    password = _read_password(password_stdin)
    with _in_app(ctx):
        users, found = _found(username)
        users.set_password(found, password)
    admin_action("user.set_password", user_id=found.id)
    click.echo(f"password of {username} changed")


@user.command("enable")
@click.argument("username")
@pass_ctx
def user_enable(ctx: _Context, username: str) -> None:
    """Enable a disabled user again: they can sign in and use tokens issued from now on."""
    with _in_app(ctx):
        users, found = _found(username)
        was = found.disabled
        found.disabled = False
        users.save(found)
    admin_action("user.enable", user_id=found.id)
    click.echo(f"enabled user {username}" if was else f"user {username} was already enabled")


@user.command("remove")
@click.argument("username")
@pass_ctx
def user_remove(ctx: _Context, username: str) -> None:
    """Delete a user: their sessions end, every app loses its consent and tokens, and the
    username becomes free."""
    from .consents import apps_group
    from .consents import apps_of
    from .consents import revoke_app

    with _in_app(ctx):
        users, found = _found(username)
        state = _state()
        ended = _end_sessions(found.id)
        apps = apps_of(state.store, found.id, state.now())
        for app in apps:
            revoke_app(state, found.id, app.client_id)
        state.store.revoke_grant(apps_group(found.id))
        users.delete(found)
    admin_action("user.remove", user_id=found.id, sessions=ended, apps=len(apps))
    click.echo(f"removed user {username}; ended {ended} session(s), revoked {len(apps)} app(s)")


# --- clients --------------------------------------------------------------------------------

#: ``client add`` option -> the :func:`register_client` argument and :class:`Client` field.
_FIELDS = {
    "name": "name", "redirect_uris": "redirect_uris", "grant_types": "grant_types",
    "response_types": "response_types", "scope": "scope",
    "token_endpoint_auth_method": "token_endpoint_auth_method", "origins": "allowed_origins",
    "first_party": "first_party", "allow_plain_pkce": "allow_plain_pkce",
    "always_refresh_token": "always_issue_refresh_token",
    "default_response_mode": "default_response_mode", "audiences": "audiences",
    "introspect_any_token": "introspect_any_token",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "backchannel_logout_uri": "backchannel_logout_uri",
    "backchannel_logout_session_required": "backchannel_logout_session_required",
    "required_attributes": "required_attributes", "subject_type": "subject_type",
    "sector_identifier_uri": "sector_identifier_uri",
    "id_token_alg": "id_token_signed_response_alg",
}


def _get_client(client_id: str) -> Any:
    from .clients import get_client

    found = get_client(_state().store, client_id)
    if found is None:
        fail(f"no client {client_id!r}")
    return found


@client.command("show")
@click.argument("client_id")
@pass_ctx
def client_show(ctx: _Context, client_id: str) -> None:
    """Show everything registered for a client (never its secret, which is stored hashed)."""
    with _in_app(ctx):
        found = _get_client(client_id)
    record = found.to_record()
    secret = record.pop("secret_hash", None)
    first = ("client_id", "name", "redirect_uris")
    record = {k: record[k] for k in (*first, *sorted(set(record) - set(first)))}
    record["client_secret"] = "set (stored hashed)" if secret else "none (public client)"
    width = max(map(len, record))
    for key, value in record.items():
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        click.echo(f"{key + ':':<{width + 1}} {'-' if shown in (None, '') else shown}")


def _update_params() -> list[click.Parameter]:
    """``client add``'s options, each optional: one left out keeps the client's value; a flag
    gets its ``--no-`` form; a repeated option given replaces the whole list."""
    params: list[click.Parameter] = []
    for option in client_add.params:
        if not isinstance(option, click.Option) or option.name == "as_json":
            continue
        if option.is_flag:
            long = option.opts[0]
            params.append(click.Option([f"{long}/--no-{long[2:]}", option.name or ""],
                                       default=None, help=option.help))
        else:
            params.append(click.Option([*option.opts, option.name or ""],
                                       multiple=option.multiple, default=None,
                                       type=option.type, metavar=option.metavar,
                                       help=option.help))
    return params


def client_update(client_id: str, **given: Any) -> None:
    """Change a client's registration with the options of 'client add'; what is left out
    stays as it is. The client_id, secret and pairwise subjects do not change."""
    from .attributes import catalogue
    from .clients import RegistrationError
    from .clients import register_client
    from .clients import save_client
    from .storage.memory import MemoryStore

    ctx: _Context = click.get_current_context().find_object(_Context)  # type: ignore[assignment]
    public = given.pop("public")
    with _in_app(ctx):
        state = _state()
        current = _get_client(client_id)
        values = {field: getattr(current, field) for field in _FIELDS.values()}
        for option, value in given.items():
            if value is not None and value != ():
                values[_FIELDS[option]] = list(value) if isinstance(value, tuple) else value
        values["public"] = current.is_public if public is None else public
        if public is not None and public != current.is_public and not given.get(
                "token_endpoint_auth_method"):
            values["token_endpoint_auth_method"] = None  # the new kind's default
        alg = values.pop("id_token_signed_response_alg")
        refresh = values.pop("always_issue_refresh_token")
        origins = values.pop("allowed_origins")
        try:  # the same checks as `client add`, on a scratch store
            checked, secret = register_client(
                MemoryStore(clock=state.clock), **values, id_token_signed_response_alg=alg,
                always_issue_refresh_token=refresh, allowed_origins=origins,
                known_scopes=state.config["UAUTH_SCOPES"], now=current.created_at,
                known_attributes=catalogue(state.config["UAUTH_ATTRIBUTES"]),
                enabled_algs=state.config["UAUTH_SIGNING_ALGS"])
        except RegistrationError as exc:
            fail(str(exc))
        if (current.subject_type == "pairwise" and checked.subject_type == "pairwise"
                and checked.sector_identifier != current.sector_identifier):
            fail(f"the redirect URIs' host would change this client's pairwise sector from "
                 f"{current.sector_identifier!r} to {checked.sector_identifier!r}, and with it "
                 "every user's sub; keep a redirect URI on the old host or register a new client")
        checked.client_id = current.client_id
        if not checked.is_public and current.secret_hash:
            checked.secret_hash, secret = current.secret_hash, None
        save_client(state.store, checked)
    changed = sorted(k.replace("secret_hash", "client_secret") for k, v in
                     checked.to_record().items() if current.to_record().get(k) != v)
    admin_action("client.update", client_id=client_id, fields=" ".join(changed))
    click.echo(f"updated client {client_id}: {', '.join(changed) or 'nothing changed'}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is shown only now; it is stored hashed)")


client.add_command(click.Command(
    "update", callback=client_update, help=client_update.__doc__,
    params=[click.Argument(["client_id"]), *_update_params()]))


@client.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print {client_id, client_secret} as JSON.")
@pass_ctx
def client_rotate_secret(ctx: _Context, client_id: str, as_json: bool) -> None:
    """Give a confidential client a new secret (printed once); the old one stops working."""
    from .clients import save_client
    from .storage import hash_key

    with _in_app(ctx):
        found = _get_client(client_id)
        if found.is_public:
            fail(f"client {client_id} is public: it has no secret to rotate")
        secret = secrets.token_urlsafe(32)
        found.secret_hash = hash_key(secret)
        save_client(_state().store, found)
    admin_action("client.rotate_secret", client_id=client_id)
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    click.echo(f"client_secret: {secret}")
    click.echo("(the secret is shown only now; it is stored hashed; the old one no longer works)")
