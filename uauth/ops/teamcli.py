"""CLI for a team's people: groups, admins, reset links and invitations (``uauth group …``,
``uauth invite …``, ``uauth user groups|set-admin|reset-link``); the same core functions as the
admin console. (The day-one user and client commands are :mod:`uauth.ops.admincli`.)"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click

from uauth.core import groups as groupdir
from uauth.core import invitations
from uauth.core import links
from uauth.core.groups import GroupError
from uauth.core.groups import all_groups
from uauth.core.groups import change_membership
from uauth.core.groups import members
from uauth.core.invitations import InvitationError
from uauth.core.invitations import all_pending
from uauth.core.people import LastAdminError
from uauth.core.people import set_admin
from uauth.core.records import INVITE
from uauth.core.records import RESET
from uauth.ops.cli import _own_users
from uauth.ops.context import CliContext
from uauth.ops.context import admin_action
from uauth.ops.context import admin_actor
from uauth.ops.context import current_state
from uauth.ops.context import fail
from uauth.ops.context import in_app
from uauth.ops.context import pass_ctx
from uauth.web.outbox import absolute
from uauth.web.views.recovery import send_reset_link
from uauth.web.views.signup import send_invitation


@contextmanager
def _pages(ctx: CliContext) -> Iterator[Any]:
    """An app and request context on the issuer's origin, so links can be built."""
    app = ctx.app()
    with app.app_context():
        parts = urlsplit(current_state().issuer)
        with app.test_request_context(base_url=f"{parts.scheme}://{parts.netloc}"):
            yield current_state()


def _user(username: str) -> Any:
    found = _own_users().find_by_username(username)
    if found is None:
        fail(f"no user {username!r}")
    return found


def _drain_mail(state: Any) -> None:
    if not state.mailer.drain(state.mailer.deadline()):
        click.echo("warning: the mail was still being sent", err=True)


@click.group()
def group() -> None:
    """Manage groups (released to apps in the groups claim)."""


@group.command("add")
@click.argument("name")
@click.option("--description", default="")
@pass_ctx
def group_add(ctx: CliContext, name: str, description: str) -> None:
    """Create a group."""
    with in_app(ctx):
        try:
            groupdir.create(current_state().store, name, description, now=current_state().now())
        except GroupError as exc:
            fail(str(exc))
    admin_action("group.add", group=name)
    click.echo(f"created group {name}")


@group.command("remove")
@click.argument("name")
@pass_ctx
def group_remove(ctx: CliContext, name: str) -> None:
    """Remove a group (its members leave it)."""
    with in_app(ctx):
        try:
            had = groupdir.remove(current_state().store, _own_users(), name)
        except GroupError as exc:
            fail(str(exc))
    admin_action("group.remove", group=name, members=had)
    click.echo(f"removed group {name} ({had} member(s) left it)")


@group.command("list")
@pass_ctx
def group_list(ctx: CliContext) -> None:
    """List groups with their number of members."""
    with in_app(ctx):
        users = list(_own_users().list())
        found = all_groups(current_state().store)
        for item in found:
            count = sum(1 for u in users if item.name in u.groups)
            click.echo(f"{item.name}\t{count} member(s)\t{item.description}")
    if not found:
        click.echo("no groups yet: uauth group add NAME", err=True)


@group.command("members")
@click.argument("name")
@pass_ctx
def group_members(ctx: CliContext, name: str) -> None:
    """List the members of a group."""
    with in_app(ctx):
        if groupdir.get(current_state().store, name) is None:
            fail(f"no group {name!r}")
        for user in members(_own_users().list(), name):
            click.echo(f"{user.username}\t{user.id}")


def add_user_commands(user: click.Group) -> None:
    user.add_command(user_groups)
    user.add_command(user_set_admin)
    user.add_command(user_reset_link)


@click.command("groups")
@click.argument("username")
@click.option("--add", "add", multiple=True, metavar="GROUP", help="Join this group (repeat).")
@click.option("--remove", "remove", multiple=True, metavar="GROUP",
              help="Leave this group (repeat).")
@pass_ctx
def user_groups(ctx: CliContext, username: str, add: tuple[str, ...],
                remove: tuple[str, ...]) -> None:
    """Show a user's groups, or change them with --add/--remove."""
    with in_app(ctx):
        found = _user(username)
        if add or remove:
            try:
                change_membership(current_state().store, _own_users(), found, add=add,
                                  remove=remove)
            except GroupError as exc:
                fail(str(exc))
    if add or remove:
        admin_action("user.groups", user_id=found.id, added=" ".join(add) or None,
                     removed=" ".join(remove) or None)
    click.echo(f"{username}: {' '.join(found.groups) or '(no groups)'}")


@click.command("set-admin")
@click.argument("username")
@click.option("--off", is_flag=True, help="Take the admin role away instead.")
@pass_ctx
def user_set_admin(ctx: CliContext, username: str, off: bool) -> None:
    """Give a user the admin role (the console at /admin), or take it away with --off."""
    with in_app(ctx):
        found = _user(username)
        try:
            changed = set_admin(_own_users(), found, not off)
        except LastAdminError as exc:
            fail(str(exc))
    if changed:
        admin_action("user.set_admin", user_id=found.id, admin=not off)
    click.echo(f"{username} is {'no longer ' if off else ''}an admin"
               + ("" if changed else " (unchanged)"))


@click.command("reset-link")
@click.argument("username")
@click.option("--send", is_flag=True, help="Mail the link to the user's email address.")
@pass_ctx
def user_reset_link(ctx: CliContext, username: str, send: bool) -> None:
    """Print a single-use password reset link for a user (and mail it with --send)."""
    with _pages(ctx) as state:
        found = _user(username)
        if send:
            if not state.mailer.configured:
                fail("no mail server: set UAUTH_SMTP_URL and UAUTH_MAIL_FROM, or leave out --send")
            if not found.profile.get("email"):
                fail(f"{username} has no email address; leave out --send and hand the link over")
            url = send_reset_link(state, found)
            _drain_mail(state)
        else:
            link = links.issue(state.store, RESET, {"user_id": found.id},
                         ttl=state.settings.reset_ttl, now=state.now())
            url = absolute(state, "uauth.recovery.reset", token=link.token)
    admin_action("user.reset_link", user_id=found.id, sent=send)
    click.echo(url)


_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` in seconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise click.BadParameter("use a number of seconds, or e.g. 30m, 12h, 7d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@click.group()
def invite() -> None:
    """Invite people: a single-use link to create their account."""


@invite.command("create")
@click.option("--email", required=True, help="Who is invited.")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="Join this group (repeat).")
@click.option("--username", default="", help="Fix the username (default: the invitee chooses).")
@click.option("--admin", is_flag=True, help="The new account is an admin.")
@click.option("--expires", default=None, metavar="DURATION",
              help="e.g. 3d or 12h (default: UAUTH_INVITE_TTL).")
@click.option("--send", is_flag=True, help="Mail the invitation (else hand the link over).")
@pass_ctx
def invite_create(ctx: CliContext, email: str, groups: tuple[str, ...], username: str, admin: bool,
                  expires: str | None, send: bool) -> None:
    """Create an invitation and print its link."""
    with _pages(ctx) as state:
        if send and not state.mailer.configured:
            fail("no mail server: set UAUTH_SMTP_URL and UAUTH_MAIL_FROM, or leave out --send")
        ttl = parse_duration(expires) if expires else state.settings.invite_ttl
        try:
            issued = invitations.create(state.store, _own_users(), email=email, groups=groups,
                            username=username, admin=admin, now=state.now(), ttl=ttl,
                            created_by=admin_actor(), mailed=send)
        except (InvitationError, ValueError) as exc:
            fail(str(exc))
        invitation = invitations.find(state.store, issued.token)
        assert invitation is not None
        if send:
            url = send_invitation(state, issued, invitation)
            _drain_mail(state)
        else:

            url = absolute(state, "uauth.signup.invitation", token=issued.token)
    admin_action("invitation.create", invitation=issued.key[:12], groups=" ".join(groups) or None,
                 sent=send)
    click.echo(url)


@invite.command("list")
@pass_ctx
def invite_list(ctx: CliContext) -> None:
    """List pending invitations (id, email, groups, expiry)."""


    with in_app(ctx):
        found = all_pending(current_state().store)
    for item in found:
        when = datetime.datetime.fromtimestamp(item.expires_at, datetime.UTC)
        click.echo(f"{item.key[:12]}\t{item.email}\t{' '.join(item.groups)}\t"
                   f"expires {when:%Y-%m-%d %H:%M} UTC")
    if not found:
        click.echo("no pending invitations", err=True)


@invite.command("revoke")
@click.argument("invitation_id")
@pass_ctx
def invite_revoke(ctx: CliContext, invitation_id: str) -> None:
    """Withdraw a pending invitation (its id from `invite list`)."""
    with in_app(ctx):
        matches = [i for i in all_pending(current_state().store) if i.key.startswith(invitation_id)]
        if len(invitation_id) < 6 or len(matches) != 1:
            fail(f"no single pending invitation {invitation_id!r}")
        links.revoke(current_state().store, INVITE, matches[0].key)
    admin_action("invitation.revoke", invitation=matches[0].key[:12])
    click.echo(f"revoked the invitation for {matches[0].email}")


COMMANDS: tuple[click.Command, ...] = (group, invite)
