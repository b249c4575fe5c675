"""The admin CLI: ``uauth …`` standalone, or the same commands as ``flask uauth …``.

Errors are one clear line on stderr and a non-zero exit; secrets are printed once, never stored.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from .config import ConfigError
from .config import markdown_table
from .instance import init_instance
from .instance import resolve_instance_path
from .storage import StorageError


class _Context:
    def __init__(self, instance: str | None) -> None:
        self.instance = instance
        self._app: Flask | None = None

    def app(self) -> Flask:
        """The app under ``flask uauth``; otherwise a standalone one for ``--instance``."""
        if current_app:
            return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
        if self._app is None:
            from .app import create_app

            self._app = create_app(instance_path=self.instance)
        return self._app


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turns the errors an operator can fix into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, StorageError) as exc:
            fail(str(exc))


@click.group(cls=_Group)
@click.option("--instance", envvar="UAUTH_INSTANCE", metavar="DIR",
              help="Instance folder (default: $UAUTH_INSTANCE or ./instance).")
@click.pass_context
def cli(ctx: click.Context, instance: str | None) -> None:
    """uauth: a lightweight OpenID Connect provider."""
    ctx.obj = _Context(instance)


pass_ctx = click.make_pass_decorator(_Context)


@cli.command()
@pass_ctx
def init(ctx: _Context) -> None:
    """Create the instance folder: secret key, signing key, database, example config."""
    path = resolve_instance_path(ctx.instance)
    created = init_instance(path)
    app = ctx.app()
    from .extension import get_state

    with app.app_context():
        get_state().store.ping()  # creates the SQLite schema now, not on the first request
    for item in created:
        click.echo(f"created {item}")
    if not created:
        click.echo(f"instance {path} is ready (nothing to create)")


@cli.command()
@click.option("--bind", default="127.0.0.1:5000", show_default=True, help="HOST:PORT to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
def serve(ctx: _Context, bind: str, workers: int, threads: int) -> None:
    """Serve the provider with gunicorn (each worker loads keys and connects once)."""
    from gunicorn.app.base import BaseApplication

    app = ctx.app()
    with app.app_context():
        from .extension import get_state

        state = get_state()
        if state.config["UAUTH_STORAGE"].startswith("memory") and workers > 1:
            fail("memory:// storage is per process; use --workers 1 or sqlite/redis storage")
        state.store.ping()
        state.store.close()
        issuer = state.issuer
    path = resolve_instance_path(ctx.instance)
    click.echo(f"uauth issuer:    {issuer}")
    click.echo(f"discovery:       {issuer}/.well-known/openid-configuration")
    click.echo(f"instance folder: {path}")

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")
            self.cfg.set("proc_name", "uauth")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            from .app import create_app

            return create_app(instance_path=path)

    _Gunicorn().run()


@cli.command("config-doc")
def config_doc() -> None:
    """Print the Markdown table of every UAUTH_* setting (as in README)."""
    click.echo(markdown_table())


@cli.command("config-example")
def config_example() -> None:
    """Print the commented example config (instance/config.example.py)."""
    from .instance import example_config

    click.echo(example_config(), nl=False)


def main() -> None:
    cli(prog_name="uauth")


def register(app: Flask) -> None:
    """Expose the same commands as ``flask uauth …``."""
    group = click.Group("uauth", help=cli.help)
    for name, command in cli.commands.items():
        group.add_command(_flask_command(command), name)
    app.cli.add_command(group)


def _flask_command(command: click.Command) -> click.Command:
    callback = command.callback
    assert callback is not None

    @with_appcontext
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.obj = _Context(None)
        return ctx.invoke(callback, *args, **kwargs)

    return click.Command(command.name, params=command.params, callback=run, help=command.help)
