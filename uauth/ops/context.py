"""What every ``uauth`` command shares: the app it works on, one-line errors, audit events."""

from __future__ import annotations

import getpass
import inspect
import os
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from typing import NoReturn
from urllib.parse import urlsplit

import click
from flask import Flask
from flask import current_app

from uauth.core.audit import ADMIN
from uauth.core.audit import audit
from uauth.core.sessions import end_all
from uauth.core.settings import DEFAULTS
from uauth.core.settings import ConfigError
from uauth.core.settings import is_loopback_host
from uauth.ops.bind import loopback_origin
from uauth.ops.bind import no_issuer
from uauth.ops.instance import CONFIG_FILE
from uauth.ops.instance import require_instance
from uauth.ops.instance import resolve_instance_path
from uauth.storage import StorageError
from uauth.web.state import AppState
from uauth.web.state import get_state

#: Builds the standalone app for an instance folder (:func:`uauth.app.create_app`).
AppFactory = Callable[..., Flask]


class CliContext:
    def __init__(self, instance: str | None, factory: AppFactory | None = None) -> None:
        self.instance = instance
        self.factory = factory
        self._app: Flask | None = None
        #: Only ``init`` and ``serve`` may create an instance; every other command needs one.
        self.may_create = False

    def reset(self) -> None:
        self._app = None

    def follow_loopback(self, origin: str) -> None:
        """Left at its default, the issuer follows a loopback address uauth serves on (``serve
        --bind``, ``check --url``), so ``make run BIND=127.0.0.1:5055`` and its discovery,
        tokens and self-check agree without configuring anything. It is named ``localhost``,
        not the IP address: browsers refuse an IP address as a passkey's relying party."""
        parts = urlsplit(origin)
        if (os.environ.get("UAUTH_ISSUER") is None
                and is_loopback_host(parts.hostname)
                and self.app().config["UAUTH_ISSUER"] == DEFAULTS["UAUTH_ISSUER"]):
            port = f":{parts.port}" if parts.port else ""
            os.environ["UAUTH_ISSUER"] = f"{parts.scheme}://localhost{port}"
            self.reset()

    def follow_bind(self, bind: str) -> None:
        """``serve --bind``: a loopback bind gives the default issuer; any other needs
        ``UAUTH_ISSUER`` (refused with the line to add, instead of publishing 127.0.0.1)."""
        origin = loopback_origin([bind])
        if origin is not None:
            self.follow_loopback(origin)
        elif (os.environ.get("UAUTH_ISSUER") is None
                and self.app().config["UAUTH_ISSUER"] == DEFAULTS["UAUTH_ISSUER"]):
            raise no_issuer([bind], resolve_instance_path(self.instance) / CONFIG_FILE)

    def app(self) -> Flask:
        """The app under ``flask uauth``; otherwise a standalone one for ``--instance``."""
        if current_app:
            return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
        if self._app is None:
            if self.factory is None:
                raise click.UsageError("no app: run `uauth` (uauth.app.main) or `flask uauth`")
            if not self.may_create:
                require_instance(resolve_instance_path(self.instance))
            self._app = self.factory(instance_path=self.instance)
        return self._app


def admin_actor() -> str:
    """The OS account running the CLI."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def admin_action(action: str, **fields: Any) -> None:
    """An audit event for a change made with the CLI, naming the OS account that made it; kept
    in the app's storage too (the console's audit view), as every audit event in an app is."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(CliContext) if ctx is not None else None
    if current_app or obj is None:
        audit(ADMIN, action=action, actor=admin_actor(), **fields)
        return
    with obj.app().app_context():
        audit(ADMIN, action=action, actor=admin_actor(), **fields)


def end_sessions(user_id: str) -> int:
    """End a user's sessions and wait (boundedly) for their back-channel logouts to go out:
    the CLI exits right after, and the deliveries still queued would be lost."""
    state = current_state()
    ended = end_all(state, user_id)
    if not state.backchannel.drain(state.backchannel.deadline()):
        click.echo("warning: some back-channel logouts were still pending", err=True)
    return ended


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class CliGroup(click.Group):
    """Turns the errors an operator can fix into one line instead of a traceback, and lists
    its commands with their whole first sentence (click cuts them at about 45 characters)."""

    group_class = type  # subgroups (``user``, ``client``) are CliGroups too

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, first_sentence(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, StorageError) as exc:
            fail(str(exc))


def first_sentence(command: click.Command) -> str:
    text = command.short_help or inspect.cleandoc(command.help or "").split("\n\n")[0]
    text = " ".join(text.split())
    found = re.match(r"(.+?\.)(?=\s+[A-Z])", text)
    return found.group(1) if found else text


pass_ctx = click.make_pass_decorator(CliContext)


def current_state() -> AppState:
    return get_state()


def in_app(ctx: CliContext) -> AbstractContextManager[Any]:
    return ctx.app().app_context()
