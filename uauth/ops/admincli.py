"""Day-one admin commands of the ``uauth`` CLI: enabling and removing users, and showing,
changing and rotating clients. Added to the ``user`` and ``client`` groups of
:mod:`uauth.ops.cli` (which imports this module last; ``user set-password`` lives there, beside
``user disable``, since both end every session and every app's access)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import click

from uauth.core.clients import Registration
from uauth.core.clients import RegistrationError
from uauth.core.clients import get_client
from uauth.core.clients import register_client
from uauth.core.clients import registration_rules
from uauth.core.clients import save_client
from uauth.core.consents import apps_group
from uauth.core.consents import apps_of
from uauth.core.consents import revoke_app
from uauth.core.groups import get as get_group
from uauth.core.models import SECRET_AUTH_METHODS
from uauth.ops.cli import _own_users
from uauth.ops.cli import client
from uauth.ops.cli import client_add
from uauth.ops.cli import user
from uauth.ops.context import CliContext
from uauth.ops.context import admin_action
from uauth.ops.context import current_state
from uauth.ops.context import end_sessions
from uauth.ops.context import fail
from uauth.ops.context import in_app
from uauth.ops.context import pass_ctx
from uauth.storage import hash_key
from uauth.storage.memory import MemoryStore


def _found(username: str) -> Any:
    users = _own_users()
    found = users.find_by_username(username)
    if found is None:
        fail(f"no user {username!r}")
    return users, found


@user.command("enable")
@click.argument("username")
@pass_ctx
def user_enable(ctx: CliContext, username: str) -> None:
    """Enable a disabled user again: they can sign in and use tokens issued from now on."""
    with in_app(ctx):
        users, found = _found(username)
        was = found.disabled
        found.disabled = False
        users.save(found)
    admin_action("user.enable", user_id=found.id)
    click.echo(f"enabled user {username}" if was else f"user {username} was already enabled")


@user.command("remove")
@click.argument("username")
@pass_ctx
def user_remove(ctx: CliContext, username: str) -> None:
    """Delete a user: their sessions end, every app loses its consent and tokens, and the
    username becomes free."""
    with in_app(ctx):
        users, found = _found(username)
        state = current_state()
        ended = end_sessions(found.id)
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
    "require_par": "require_pushed_authorization_requests", "jwks_file": "jwks",
    "jwks_uri": "jwks_uri",
    "allow_unsigned_request_objects": "allow_unsigned_request_objects",
    "require_mfa": "require_mfa",
    "access_token_format": "access_token_format",
}
#: What a client said about itself when it registered (RFC 7591): kept by an update.
_KEPT = ("registration", "client_uri", "logo_uri", "application_type")


def _get_client(client_id: str) -> Any:
    found = get_client(current_state().store, client_id)
    if found is None:
        fail(f"no client {client_id!r}")
    return found


@client.command("show")
@click.argument("client_id")
@pass_ctx
def client_show(ctx: CliContext, client_id: str) -> None:
    """Show everything registered for a client (never its secret, which is stored hashed)."""
    with in_app(ctx):
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
    ctx: CliContext = click.get_current_context().find_object(CliContext)  # type: ignore[assignment]
    public = given.pop("public")
    groups = given.pop("allowed_groups", None)  # not part of a Registration (issue 19)
    with in_app(ctx):
        state = current_state()
        current = _get_client(client_id)
        values = {field: getattr(current, field) for field in (*_FIELDS.values(), *_KEPT)}
        for option, value in given.items():
            if option == "jwks_file" and value is not None:
                try:
                    value = json.load(value)
                except ValueError:
                    fail("--jwks: the file is not JSON")
            if value is not None and value != ():
                values[_FIELDS[option]] = list(value) if isinstance(value, tuple) else value
                if option == "jwks_file":
                    values["jwks_uri"] = None  # one or the other
                elif option == "jwks_uri":
                    values["jwks"] = None
        values["public"] = current.is_public if public is None else public
        if not given.get("response_types") and not {"authorization_code", "implicit"} & set(
                values["grant_types"]):
            values["response_types"] = None  # a machine client's stored ["code"] is no choice
        if public is not None and public != current.is_public and not given.get(
                "token_endpoint_auth_method"):
            values["token_endpoint_auth_method"] = None  # the new kind's default
        alg = values.pop("id_token_signed_response_alg")
        refresh = values.pop("always_issue_refresh_token")
        origins = values.pop("allowed_origins")
        try:  # the same checks as `client add`, on a scratch store
            checked, secret = register_client(
                MemoryStore(clock=state.clock), Registration(
                    **values, id_token_signed_response_alg=alg,
                    always_issue_refresh_token=refresh, allowed_origins=origins),
                registration_rules(state), now=current.created_at)
        except RegistrationError as exc:
            fail(str(exc))
        if (current.subject_type == "pairwise" and checked.subject_type == "pairwise"
                and checked.sector_identifier != current.sector_identifier):
            fail(f"the redirect URIs' host would change this client's pairwise sector from "
                 f"{current.sector_identifier!r} to {checked.sector_identifier!r}, and with it "
                 "every user's sub; keep a redirect URI on the old host or register a new client")
        checked.client_id = current.client_id
        checked.registration_token_hash = current.registration_token_hash
        checked.allowed_groups = list(dict.fromkeys(groups)) if groups else current.allowed_groups
        unknown = [g for g in checked.allowed_groups if get_group(state.store, g) is None]
        if unknown:
            fail(f"no group {unknown[0]!r} (uauth group add {unknown[0]})")
        if checked.token_endpoint_auth_method in SECRET_AUTH_METHODS and current.secret_hash:
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
def client_rotate_secret(ctx: CliContext, client_id: str, as_json: bool) -> None:
    """Give a confidential client a new secret (printed once); the old one stops working."""
    with in_app(ctx):
        found = _get_client(client_id)
        if found.is_public:
            fail(f"client {client_id} is public: it has no secret to rotate")
        secret = secrets.token_urlsafe(32)
        found.secret_hash = hash_key(secret)
        save_client(current_state().store, found)
    admin_action("client.rotate_secret", client_id=client_id)
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    click.echo(f"client_secret: {secret}")
    click.echo("(the secret is shown only now; it is stored hashed; the old one no longer works)")
