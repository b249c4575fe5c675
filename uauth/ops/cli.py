"""The admin CLI: ``uauth …`` standalone, or the same commands as ``flask uauth …``.

Errors are one clear line on stderr and a non-zero exit; secrets are printed once, never stored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from typing import IO
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from gunicorn.app.base import BaseApplication

from uauth.core.appaccess import end_app_access
from uauth.core.attributes import RESERVED
from uauth.core.clients import Registration
from uauth.core.clients import RegistrationError
from uauth.core.clients import list_clients
from uauth.core.clients import register_client
from uauth.core.clients import registration_rules
from uauth.core.clients import remove_client
from uauth.core.clients import save_client
from uauth.core.groups import get as get_group
from uauth.core.keys import SUPPORTED_ALGS
from uauth.core.metrics import prepare_multiprocess_dir
from uauth.core.metrics import worker_exited
from uauth.core.models import AUTH_METHODS
from uauth.core.models import RESPONSE_MODES
from uauth.core.settings import ACCESS_TOKEN_FORMATS
from uauth.core.settings import SUBJECT_TYPES
from uauth.core.settings import markdown_table
from uauth.core.users import VERIFIED_BY
from uauth.core.users import StoreUsers
from uauth.ops.bind import port_in_use
from uauth.ops.bind import record_serving
from uauth.ops.context import AppFactory
from uauth.ops.context import CliContext
from uauth.ops.context import CliGroup
from uauth.ops.context import admin_action
from uauth.ops.context import current_state
from uauth.ops.context import end_sessions
from uauth.ops.context import fail
from uauth.ops.context import in_app
from uauth.ops.context import pass_ctx
from uauth.ops.instance import AUDIT_LOG
from uauth.ops.instance import example_config
from uauth.ops.instance import init_instance
from uauth.ops.instance import resolve_instance_path
from uauth.ops.logs import configure_cli_logging
from uauth.ops.logs import configure_logging
from uauth.ops.malloc import return_large_blocks
from uauth.ops.mfacli import register as register_mfa_commands
from uauth.ops.opscli import OPERATIONS


@click.group(cls=CliGroup)
@click.option("--instance", envvar="UAUTH_INSTANCE", metavar="DIR",
              help="Instance folder (default: $UAUTH_INSTANCE or ./instance).")
@click.option("--verbose", "-v", is_flag=True,
              help="Also print audit events and log lines on stderr.")
@click.version_option(package_name="uauth", prog_name="uauth")
@click.pass_context
def cli(ctx: click.Context, instance: str | None, verbose: bool) -> None:
    """uauth: a lightweight OpenID Connect provider."""
    if _standalone:  # `uauth …` (run_cli), not a test's runner or a host app's `flask uauth`
        fmt = os.environ.get("UAUTH_LOG_FORMAT", "json").strip().lower()
        audit_file = resolve_instance_path(instance) / AUDIT_LOG
        configure_cli_logging(fmt, audit_file=str(audit_file), verbose=verbose)
    # The wiring (uauth.app.main) passes create_app as obj: ops never imports the wiring.
    ctx.obj = CliContext(instance, ctx.obj if callable(ctx.obj) else None)


@cli.command()
@pass_ctx
def init(ctx: CliContext) -> None:
    """Create the instance folder: secret key, signing key, database, example config."""
    ctx.may_create = True
    path = resolve_instance_path(ctx.instance)
    created = init_instance(path)
    app = ctx.app()

    with app.app_context():
        state = current_state()
        state.store.ping()  # creates the SQLite schema now, not on the first request
        created.extend(f"{key.alg} signing key {key.kid} (in storage)" for key in state.keys.added)
    for item in created:
        click.echo(f"created {item}")
    if not created:
        click.echo(f"instance {path} is ready (nothing to create)")


@cli.command()
@click.option("--bind", default="127.0.0.1:5000", show_default=True, help="HOST:PORT to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", default=30, show_default=True, type=click.IntRange(5, 3600),
              help="Seconds a request may take before its worker is restarted.")
@pass_ctx
def serve(ctx: CliContext, bind: str, workers: int, threads: int, timeout: int) -> None:
    """Serve the provider with gunicorn (each worker loads keys and connects once)."""
    ctx.may_create = True  # `make run` the first time: serve initialises the instance
    # Before anything imports prometheus-client: it picks multi-process mode at import time.
    metrics_dir, made_dir = prepare_multiprocess_dir()
    busy = port_in_use(bind)
    if busy:
        if made_dir:
            shutil.rmtree(metrics_dir, True)
        fail(f"{busy}; stop it, or serve on another port: `uauth serve --bind HOST:PORT` "
             "(`make run BIND=127.0.0.1:5055`)")
    try:
        ctx.follow_bind(bind)
        app = ctx.app()
        with app.app_context():

            state = current_state()
            if state.settings.storage.startswith("memory") and workers > 1:
                fail("memory:// storage is per process; use --workers 1 or sqlite/redis storage")
            state.store.ping()
            state.store.close()
            issuer = state.issuer
            configure_logging(state.settings.log_format, state.settings.log_level)
    except BaseException:  # a refusal or a bad config: leave no directory behind
        if made_dir:
            shutil.rmtree(metrics_dir, True)
        raise
    path = resolve_instance_path(ctx.instance)
    serving = record_serving(path, bind, issuer)  # for `uauth check` without --url
    click.echo(f"uauth issuer:    {issuer}")
    click.echo(f"discovery:       {issuer}/.well-known/openid-configuration")
    click.echo(f"instance folder: {path}")

    def _leave() -> None:  # workers leave through on_exit too, so not a finally
        serving.unlink(missing_ok=True)
        if made_dir:
            shutil.rmtree(metrics_dir, True)

    return_large_blocks()  # before the workers fork: they inherit it

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", timeout)
            self.cfg.set("accesslog", None)  # uauth logs each request itself, with its id
            self.cfg.set("proc_name", "uauth")
            self.cfg.set("child_exit", lambda _arbiter, worker: worker_exited(worker.pid))
            self.cfg.set("on_exit", lambda _arbiter: _leave())  # the master's last act
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            assert ctx.factory is not None  # ctx.app() above had one
            return ctx.factory(instance_path=path)

    _Gunicorn().run()


def _own_users() -> Any:
    """uauth's own user directory; a host app that plugged in its own manages users itself."""

    users = current_state().users
    if not isinstance(users, StoreUsers):
        fail("this app keeps its users in its own directory; manage them there")
    return users


@cli.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--email")
@click.option("--email-verified", is_flag=True, help="Mark the email address as verified.")
@click.option("--name")
@click.option("--given-name")
@click.option("--family-name")
@click.option("--admin", is_flag=True, help="May use the admin console (/admin).")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="Join this group (repeat).")
@pass_ctx
def user_add(ctx: CliContext, username: str, password_stdin: bool, email: str | None,
             email_verified: bool, name: str | None, given_name: str | None,
             family_name: str | None, admin: bool, groups: tuple[str, ...]) -> None:
    """Create a user (password hashed with argon2id)."""

    password = _read_password(password_stdin, "Password")
    given = {"email": email, "name": name, "given_name": given_name, "family_name": family_name}
    profile: dict[str, Any] = {k: v for k, v in given.items() if v}
    if email and email_verified:
        profile["email_verified"] = True
    with in_app(ctx):
        missing_groups = [g for g in groups if get_group(current_state().store, g) is None]
        if missing_groups:
            fail(f"no group {missing_groups[0]!r} (uauth group add {missing_groups[0]})")
        try:
            created = _own_users().create(username, password, profile)
        except ValueError as exc:  # UserExists too: one line, the reason
            fail(str(exc))
        if admin or groups:
            created.admin, created.groups = admin, list(dict.fromkeys(groups))
            _own_users().save(created)
    admin_action("user.add", user_id=created.id, admin=admin or None,
                 groups=" ".join(groups) or None)
    click.echo(f"created user {created.username} ({created.id})")


def _read_password(from_stdin: bool, prompt: str) -> str:
    """A user's password from standard input (a script's, one line) or typed twice at the
    prompt; at least 8 characters, as the web pages ask."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    return password


@user.command("list")
@pass_ctx
def user_list(ctx: CliContext) -> None:
    """List users."""
    with in_app(ctx):
        found = sorted(_own_users().list(), key=lambda u: u.username.casefold())
        if not found:
            click.echo("no users yet; add one with `uauth user add USERNAME`", err=True)
        for item in found:
            status = "disabled" if item.disabled else "active"
            email = item.profile.get("email", "")
            click.echo(f"{item.username}\t{item.id}\t{status}\t{email}")


@user.command("disable")
@click.argument("username")
@pass_ctx
def user_disable(ctx: CliContext, username: str) -> None:
    """Disable a user: no new logins, tokens or userinfo for them; every session and every
    app's access (offline_access included) ends, so re-enabling revives none of it."""
    with in_app(ctx):
        users = _own_users()
        found = users.find_by_username(username)
        if found is None:
            fail(f"no user {username!r}")
        found.disabled = True
        users.save(found)
        ended = end_sessions(found.id)
        apps = end_app_access(current_state(), found.id)
    admin_action("user.disable", user_id=found.id, sessions=ended, apps=apps)
    click.echo(f"disabled user {username}; ended {ended} session(s) and the access of "
               f"{apps} app(s)")


@user.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_set_password(ctx: CliContext, username: str, password_stdin: bool) -> None:
    """Set a user's password (an operator's reset, e.g. after a takeover): every session and
    every app's access, offline_access included, ends with it."""
    password = _read_password(password_stdin, "New password")
    with in_app(ctx):
        users = _own_users()
        found = users.find_by_username(username)
        if found is None:
            fail(f"no user {username!r}")
        users.set_password(found, password)
        ended = end_sessions(found.id)
        apps = end_app_access(current_state(), found.id)
    admin_action("user.set_password", user_id=found.id, sessions=ended, apps=apps)
    click.echo(f"password of {username} changed; ended {ended} session(s) and the access of "
               f"{apps} app(s)")


@user.command("logout")
@click.argument("username")
@pass_ctx
def user_logout(ctx: CliContext, username: str) -> None:
    """End every session of a user: every browser is signed out, and every application that
    registered a back-channel logout URI is told."""
    with in_app(ctx):
        found = current_state().users.find_by_username(username)
        if found is None:
            fail(f"no user {username!r}")
        ended = end_sessions(found.id)
    admin_action("user.logout", user_id=found.id, sessions=ended)
    click.echo(f"ended {ended} session(s) of {username}")


def _attribute_value(raw: str) -> Any:
    """``KEY=VALUE`` values are text, except JSON lists, objects, true, false and null."""

    text = raw.strip()
    if text[:1] in ("[", "{") or text in ("true", "false", "null"):
        try:
            return json.loads(text)
        except ValueError:
            fail(f"{raw!r} looks like JSON but does not parse")
    return raw


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


@user.command("set")
@click.argument("username")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@pass_ctx
def user_set(ctx: CliContext, username: str, assignments: tuple[str, ...]) -> None:
    """Set profile attributes, e.g. groups='["staff"]' email_verified=true (empty removes).

    A changed email or phone_number is no longer verified unless this command says so too.
    """

    flags = set(VERIFIED_BY.values())
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            fail(f"{item!r} is not NAME=VALUE with a lower-case attribute name")
        refused = instead_of(name)
        if refused:
            fail(refused)
        if name in RESERVED and name not in flags:
            fail(f"{name!r} is not a profile attribute")
        values[name] = _attribute_value(raw)
        if name in flags and not isinstance(values[name], bool):
            fail(f"{name} is true or false")
    with in_app(ctx):
        users = _own_users()
        found = users.find_by_username(username)
        if found is None:
            fail(f"no user {username!r}")
        changed = users.update_profile(found, values)
    admin_action("user.set", user_id=found.id, attributes=" ".join(changed))
    click.echo(f"updated user {username}: {', '.join(changed) or 'nothing changed'}")


@cli.group()
def client() -> None:
    """Manage client applications (relying parties)."""


@client.command("add")
@click.option("--name", required=True, help="Shown to users on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeat).")
@click.option("--public", is_flag=True, help="No secret: SPAs and native apps (PKCE required).")
@click.option("--grant-type", "grant_types", multiple=True,
              help="authorization_code (default, with refresh_token), refresh_token, "
              "client_credentials, implicit, urn:ietf:params:oauth:grant-type:device_code.")
@click.option("--response-type", "response_types", multiple=True, help="Default: code.")
@click.option("--scope", help="Scopes the client may request (space separated).")
@click.option("--token-endpoint-auth-method",
              type=click.Choice(AUTH_METHODS))
@click.option("--allow-origin", "origins", multiple=True, help="Browser origin allowed CORS.")
@click.option("--first-party", is_flag=True, help="Trusted: users are not asked to consent.")
@click.option("--allow-plain-pkce", is_flag=True, help="Allow PKCE 'plain' (not recommended).")
@click.option("--always-refresh-token", is_flag=True,
              help="Issue refresh tokens even without offline_access.")
@click.option("--default-response-mode", type=click.Choice(RESPONSE_MODES),
              help="Response mode when a request names none (tokens never go in a query).")
@click.option("--audience", "audiences", multiple=True, metavar="URI",
              help="Resource (RFC 8707) the client may ask tokens for with resource= (repeat).")
@click.option("--introspect-any-token", is_flag=True,
              help="Resource server: may introspect access tokens issued to any client.")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
              help="Exact URI RP-initiated logout may return to (repeat).")
@click.option("--backchannel-logout-uri", help="Where logout tokens are POSTed (https).")
@click.option("--backchannel-logout-session-required", is_flag=True,
              help="The client needs sid in logout tokens (uauth always sends it).")
@click.option("--require-attribute", "required_attributes", multiple=True, metavar="NAME",
              help="Profile attribute users must fill in before returning to this client "
              "(repeat; standard names or UAUTH_ATTRIBUTES).")
@click.option("--subject-type", type=click.Choice(SUBJECT_TYPES),
              help="sub the client sees: pairwise per sector, or public "
              "(default: UAUTH_DEFAULT_SUBJECT_TYPE).")
@click.option("--sector-identifier-uri", metavar="URL",
              help="https URL of a JSON array of all redirect URIs; its host is the pairwise "
              "sector (needed when redirect URIs span several hosts).")
@click.option("--id-token-signed-response-alg", "id_token_alg",
              type=click.Choice(SUPPORTED_ALGS),
              help="Algorithm of this client's ID tokens (default: UAUTH_SIGNING_ALG).")
@click.option("--require-mfa", is_flag=True,
              help="Users must present a second factor to sign in to this client.")
@click.option("--access-token-format", type=click.Choice(ACCESS_TOKEN_FORMATS),
              help="jwt: RFC 9068 JWTs any resource server can verify with the JWKS; opaque: "
              "random references to stored claims, cheaper to issue, checked only by "
              "introspection or the embedding app (default: UAUTH_ACCESS_TOKEN_FORMAT).")
@click.option("--allow-group", "allowed_groups", multiple=True, metavar="GROUP",
              help="Only members of this group may sign in to the client (repeat).")
@click.option("--require-par", is_flag=True,
              help="Authorization requests must be pushed to /par first (RFC 9126).")
@click.option("--jwks", "jwks_file", type=click.File("r"), metavar="FILE",
              help="JSON Web Key Set of the client's public keys (signed request objects, "
              "private_key_jwt).")
@click.option("--jwks-uri", metavar="URL",
              help="https URL of the client's JWK Set, for private_key_jwt.")
@click.option("--allow-unsigned-request-objects", is_flag=True,
              help="Accept request objects with alg none from this client (not recommended).")
@click.option("--json", "as_json", is_flag=True, help="Print {client_id, client_secret} as JSON.")
@pass_ctx
def client_add(ctx: CliContext, name: str, redirect_uris: tuple[str, ...], public: bool,
               grant_types: tuple[str, ...], response_types: tuple[str, ...], scope: str | None,
               token_endpoint_auth_method: str | None, origins: tuple[str, ...],
               first_party: bool, allow_plain_pkce: bool, always_refresh_token: bool,
               default_response_mode: str | None, audiences: tuple[str, ...],
               introspect_any_token: bool, post_logout_redirect_uris: tuple[str, ...],
               backchannel_logout_uri: str | None, backchannel_logout_session_required: bool,
               required_attributes: tuple[str, ...],
               subject_type: str | None, sector_identifier_uri: str | None,
               id_token_alg: str | None, require_par: bool, jwks_file: IO[str] | None,
               jwks_uri: str | None, allow_unsigned_request_objects: bool, require_mfa: bool,
               access_token_format: str | None, allowed_groups: tuple[str, ...],
               as_json: bool) -> None:
    """Register a client; its secret is printed once and stored only as a hash.

    With --token-endpoint-auth-method private_key_jwt the client authenticates with a JWT
    signed by a key of its --jwks or --jwks-uri (no secret).
    """
    try:
        jwks = json.load(jwks_file) if jwks_file is not None else None
    except ValueError:
        fail("--jwks: the file is not JSON")
    with in_app(ctx):
        state = current_state()
        try:
            created, secret = register_client(state.store, Registration(
                name=name, redirect_uris=redirect_uris, public=public,
                grant_types=grant_types or None, response_types=response_types or None,
                scope=scope, token_endpoint_auth_method=token_endpoint_auth_method,
                allowed_origins=origins, first_party=first_party,
                allow_plain_pkce=allow_plain_pkce, always_issue_refresh_token=always_refresh_token,
                default_response_mode=default_response_mode,
                audiences=audiences, introspect_any_token=introspect_any_token,
                post_logout_redirect_uris=post_logout_redirect_uris,
                backchannel_logout_uri=backchannel_logout_uri,
                backchannel_logout_session_required=backchannel_logout_session_required,
                required_attributes=required_attributes,
                subject_type=subject_type,
                sector_identifier_uri=sector_identifier_uri,
                id_token_signed_response_alg=id_token_alg,
                require_pushed_authorization_requests=require_par,
                jwks=jwks, jwks_uri=jwks_uri,
                allow_unsigned_request_objects=allow_unsigned_request_objects,
                require_mfa=require_mfa,
                access_token_format=access_token_format,
            ), registration_rules(state), now=state.now())
        except RegistrationError as exc:
            fail(str(exc))
        if allowed_groups:
            unknown = [g for g in allowed_groups if get_group(state.store, g) is None]
            if unknown:
                remove_client(state.store, created.client_id)  # nothing half-done
                fail(f"no group {unknown[0]!r} (uauth group add {unknown[0]})")
            created.allowed_groups = list(dict.fromkeys(allowed_groups))
            save_client(state.store, created)
    admin_action("client.add", client_id=created.client_id)
    if as_json:
        click.echo(json.dumps({"client_id": created.client_id, "client_secret": secret}))
        return
    click.echo(f"client_id:     {created.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(the secret is shown only now; it is stored hashed)")


@client.command("list")
@pass_ctx
def client_list(ctx: CliContext) -> None:
    """List clients."""

    with in_app(ctx):
        found = sorted(list_clients(current_state().store), key=lambda c: c.name.casefold())
        if not found:
            click.echo("no clients yet; register one with `uauth client add --name NAME "
                       "--redirect-uri URI`", err=True)
        for item in found:
            kind = "public" if item.is_public else "confidential"
            click.echo(f"{item.client_id}\t{item.name}\t{kind}\t{' '.join(item.redirect_uris)}"
                       f"\tsub:{item.subject_type}\tat:{item.access_token_format}")


@client.command("remove")
@click.argument("client_id")
@pass_ctx
def client_remove(ctx: CliContext, client_id: str) -> None:
    """Remove a client; its tokens stop working at the next validation that looks it up."""

    with in_app(ctx):
        if not remove_client(current_state().store, client_id):
            fail(f"no client {client_id!r}")
    admin_action("client.remove", client_id=client_id)
    click.echo(f"removed client {client_id}")


@cli.command("config-doc")
def config_doc() -> None:
    """Print the Markdown table of every UAUTH_* setting (docs/configuration.md)."""
    click.echo(markdown_table())


@cli.command("config-example")
def config_example() -> None:
    """Print the commented example config (docs/config.example.py)."""

    click.echo(example_config(), nl=False)


from uauth.ops.teamcli import COMMANDS as TEAM_COMMANDS  # noqa: E402
from uauth.ops.teamcli import add_user_commands  # noqa: E402

for _command in (*OPERATIONS, *TEAM_COMMANDS):
    cli.add_command(_command)
register_mfa_commands(user, client)
add_user_commands(user)

# Last, on purpose: the day-one commands (user enable/remove, client show/update/rotate-secret)
# attach themselves to the groups above, and `client update` reuses `client add`'s options.
from uauth.ops import admincli  # noqa: E402,F401

# The self-registration commands (registration token create, client prune), likewise.
from uauth.ops.registration_cli import client_prune  # noqa: E402
from uauth.ops.registration_cli import registration  # noqa: E402

cli.add_command(registration)
client.add_command(client_prune)

_standalone = False


def run_cli(factory: AppFactory) -> None:
    """Run ``uauth`` as its own process (:func:`uauth.app.main`): its logging is ours to set up
    (audit events to the instance's audit.log), never a test runner's or a host app's."""
    global _standalone
    _standalone = True
    cli(prog_name="uauth", obj=factory)


def register(app: Flask) -> None:
    """Expose the same commands as ``flask uauth …``."""
    group = CliGroup("uauth", help=cli.help)
    for name, command in cli.commands.items():
        group.add_command(_flask_command(command), name)
    app.cli.add_command(group)


def _flask_command(command: click.Command) -> click.Command:
    if isinstance(command, click.Group):
        group = CliGroup(command.name, help=command.help)
        for name, sub in command.commands.items():
            group.add_command(_flask_command(sub), name)
        return group
    callback = command.callback
    assert callback is not None

    @with_appcontext
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.obj = CliContext(None)
        return ctx.invoke(callback, *args, **kwargs)

    return click.Command(command.name, params=command.params, callback=run, help=command.help)
