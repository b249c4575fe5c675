"""Console pages for apps (registered clients) and groups."""

from __future__ import annotations

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from uauth.core.appadmin import rotate_secret
from uauth.core.appadmin import update
from uauth.core.appadmin import who_has_access
from uauth.core.clients import Registration
from uauth.core.clients import RegistrationError
from uauth.core.clients import get_client
from uauth.core.clients import list_clients
from uauth.core.clients import register_client
from uauth.core.clients import registration_rules
from uauth.core.clients import remove_client
from uauth.core.groups import GroupError
from uauth.core.groups import all_groups
from uauth.core.groups import create as create_group
from uauth.core.groups import get as get_group
from uauth.core.groups import members
from uauth.core.groups import remove as remove_group
from uauth.core.models import Client
from uauth.web.state import get_state

from . import act
from . import checked
from . import dangerous
from . import directory


def _client(client_id: str) -> Client:
    client = get_client(get_state().store, client_id)
    if client is None:
        abort(404)
    return client


def _uris(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def apps() -> ResponseReturnValue:
    found = sorted(list_clients(get_state().store), key=lambda c: c.name.casefold())
    return render_template("uauth/admin/apps.html", apps=found)


def new_app() -> ResponseReturnValue:
    state = get_state()
    if request.method == "POST" and checked():
        form = request.form
        try:
            groups = [g for g in form.getlist("groups") if g]
            for group in groups:
                if get_group(state.store, group) is None:
                    raise RegistrationError(f"no group {group!r}")
            client, secret = register_client(state.store, Registration(
                name=form.get("name", "").strip() or "App",
                redirect_uris=_uris(form.get("redirect_uris", "")),
                public=form.get("public") == "on", first_party=form.get("first_party") == "on",
            ), registration_rules(state), now=state.now())
            if groups:
                update(state.store, client, name=client.name, redirect_uris=client.redirect_uris,
                       allowed_groups=groups, first_party=client.first_party)
        except RegistrationError as exc:
            flash(str(exc), "error")
            return render_template("uauth/admin/app_new.html", form=form,
                                   groups=all_groups(state.store)), 400
        act("client.add", client_id=client.client_id)
        return render_template("uauth/admin/secret.html", app=client, secret=secret)
    return render_template("uauth/admin/app_new.html", form={}, groups=all_groups(state.store))


def app(client_id: str) -> ResponseReturnValue:
    state = get_state()
    client = _client(client_id)
    status = 200
    if request.method == "POST" and checked():
        form = request.form
        try:
            changed = update(state.store, client, name=form.get("name", ""),
                             redirect_uris=_uris(form.get("redirect_uris", "")),
                             allowed_groups=form.getlist("groups"),
                             first_party=form.get("first_party") == "on")
        except RegistrationError as exc:
            flash(str(exc), "error")
            status = 400
        else:
            act("client.update", client_id=client.client_id, fields=" ".join(changed) or None)
            flash("Saved." if changed else "Nothing changed.")
            return redirect(url_for(".app", client_id=client.client_id))
    return render_template("uauth/admin/app.html", app=client, groups=all_groups(state.store),
                           people=who_has_access(state.store, directory(), client.client_id,
                                                 state.now())), status


def app_rotate(client_id: str) -> ResponseReturnValue:
    state = get_state()
    client = _client(client_id)
    if not checked():
        return redirect(url_for(".app", client_id=client_id))
    try:
        secret = rotate_secret(state.store, client)
    except RegistrationError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".app", client_id=client_id))
    act("client.rotate_secret", client_id=client.client_id)
    return render_template("uauth/admin/secret.html", app=client, secret=secret)


@dangerous
def app_remove(client_id: str) -> ResponseReturnValue:
    client = _client(client_id)
    if checked() and remove_client(get_state().store, client.client_id):
        act("client.remove", client_id=client.client_id)
        flash(f"Removed {client.name}; its tokens stop working.")
        return redirect(url_for(".apps"))
    return redirect(url_for(".app", client_id=client_id))


def groups() -> ResponseReturnValue:
    state = get_state()
    if request.method == "POST" and checked():
        name = request.form.get("name", "")
        try:
            create_group(state.store, name, request.form.get("description", ""), now=state.now())
        except GroupError as exc:
            flash(str(exc), "error")
        else:
            act("group.add", group=name.strip())
            flash(f"Created the group {name.strip()}.")
            return redirect(url_for(".groups"))
    people = list(directory().list())
    counts = {g.name: sum(1 for u in people if g.name in u.groups)
              for g in all_groups(state.store)}
    return render_template("uauth/admin/groups.html", groups=all_groups(state.store),
                           counts=counts)


def group(name: str) -> ResponseReturnValue:
    state = get_state()
    found = get_group(state.store, name)
    if found is None:
        abort(404)
    if request.method == "POST" and checked():
        had = remove_group(state.store, directory(), found.name)
        act("group.remove", group=found.name, members=had)
        flash(f"Removed the group {found.name}; {had} member(s) left it.")
        return redirect(url_for(".groups"))
    apps = [c for c in list_clients(state.store) if found.name in c.allowed_groups]
    return render_template("uauth/admin/group.html", group=found,
                           members=members(directory().list(), found.name), apps=apps)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/apps", "apps", apps)
    bp.add_url_rule("/apps/new", "new_app", new_app, methods=["GET", "POST"])
    bp.add_url_rule("/apps/<client_id>", "app", app, methods=["GET", "POST"])
    bp.add_url_rule("/apps/<client_id>/rotate", "app_rotate", app_rotate, methods=["POST"])
    bp.add_url_rule("/apps/<client_id>/remove", "app_remove", app_remove, methods=["POST"])
    bp.add_url_rule("/groups", "groups", groups, methods=["GET", "POST"])
    bp.add_url_rule("/groups/<name>", "group", group, methods=["GET", "POST"])
