"""Console pages for people and invitations."""

from __future__ import annotations

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from uauth.core.attributes import Attribute
from uauth.core.attributes import catalogue
from uauth.core.audit import MFA_RESET
from uauth.core.audit import audit
from uauth.core.groups import GroupError
from uauth.core.groups import all_groups
from uauth.core.groups import change_membership
from uauth.core.invitations import InvitationError
from uauth.core.invitations import all_pending
from uauth.core.invitations import create as create_invitation
from uauth.core.invitations import find as find_invitation
from uauth.core.links import revoke
from uauth.core.models import User
from uauth.core.people import LastAdminError
from uauth.core.people import has_second_factor
from uauth.core.people import mfa_available
from uauth.core.people import remove as remove_person
from uauth.core.people import reset_second_factors
from uauth.core.people import set_admin
from uauth.core.people import set_disabled
from uauth.core.records import INVITE
from uauth.core.sessions import end
from uauth.core.sessions import end_all
from uauth.core.sessions import of_user
from uauth.core.users import UserExists
from uauth.web.attribute_forms import make_form
from uauth.web.attribute_forms import submitted
from uauth.web.outbox import absolute
from uauth.web.state import get_state
from uauth.web.views.recovery import send_reset_link
from uauth.web.views.signup import send_invitation

from . import act
from . import admin
from . import checked
from . import dangerous
from . import directory


def _person(user_id: str) -> User:
    user = directory().get(user_id)
    if user is None:
        abort(404)
    return user


def people() -> ResponseReturnValue:
    q = request.args.get("q", "").strip().casefold()[:100]
    found = [u for u in directory().list()
             if not q or q in u.username.casefold() or q in str(u.profile.get("email", ""))
             .casefold() or any(q == grp.casefold() for grp in u.groups)]
    found.sort(key=lambda u: u.username.casefold())
    return render_template("uauth/admin/people.html", people=found[:500], q=q,
                           total=len(found))


def new_person() -> ResponseReturnValue:
    state = get_state()
    groups = all_groups(state.store)
    if request.method == "POST" and checked():
        form = request.form
        username, password = form.get("username", "").strip(), form.get("password", "")
        email = form.get("email", "").strip()
        error = None
        if password and len(password) < 8:
            error = ("A password has at least 8 characters (or leave it empty and send a "
                     "reset link).")
        else:
            try:
                user = directory().create(username, password or None,
                                          {"email": email} if email else {})
            except (UserExists, ValueError) as exc:
                error = str(exc).replace("user ", "The username ", 1)
            else:
                change_membership(state.store, directory(), user, add=form.getlist("groups"))
                act("user.add", user_id=user.id, groups=" ".join(user.groups) or None)
                if not password and email and state.mailer.configured:
                    send_reset_link(state, user)
                    flash(f"Created {user.username}; a link to choose a password was sent to "
                          f"{email}.")
                elif not password:
                    flash(f"Created {user.username} without a password: hand them a link to "
                          f"choose one (`uauth user reset-link {user.username}`).")
                else:
                    flash(f"Created {user.username}.")
                return redirect(url_for(".person", user_id=user.id))
        flash(error, "error")
        return render_template("uauth/admin/person_new.html", groups=groups, form=form), 400
    return render_template("uauth/admin/person_new.html", groups=groups, form={})


def _attributes() -> tuple[Attribute, ...]:
    """Every profile attribute this provider knows (the standard ones and UAUTH_ATTRIBUTES):
    an admin edits those people cannot edit themselves too."""
    return tuple(catalogue(get_state().settings.attributes).values())


def person(user_id: str, profile: FlaskForm | None = None, status: int = 200
           ) -> ResponseReturnValue:
    state = get_state()
    user = _person(user_id)
    sessions = sorted(of_user(state, user.id), key=lambda s: -s.last_seen)
    form = profile or make_form(_attributes(), user.profile, submitted=False)
    return render_template(
        "uauth/admin/person.html", person=user, groups=all_groups(state.store),
        sessions=sessions, profile=form, profile_fields=[form[a.name] for a in _attributes()],
        mail=state.mailer.configured, mfa=mfa_available(state),
        factors=has_second_factor(state, user), is_self=user.id == admin().id), status


def person_profile(user_id: str) -> ResponseReturnValue:
    """The profile form: every attribute, validated as on the account page."""
    user = _person(user_id)
    attributes = _attributes()
    form = make_form(attributes, user.profile, submitted=True)
    if not form.validate_on_submit():
        flash("This form had expired; please try again." if form.csrf_token.errors
              else "Please correct the fields marked below.", "error")
        return person(user_id, form, 400)
    values: dict[str, object] = submitted(form, attributes, user.profile)
    email = values.get("email", user.profile.get("email"))
    verified = request.form.get("email_verified") == "on" and bool(email)
    if verified != (user.profile.get("email_verified") is True) or "email" in values:
        values["email_verified"] = True if verified else None
    changed = directory().update_profile(user, values)
    act("user.set", user_id=user.id, attributes=" ".join(changed) or None)
    flash("Saved." if changed else "Nothing changed.")
    return redirect(url_for(".person", user_id=user.id))


def person_update(user_id: str, what: str) -> ResponseReturnValue:
    """One POST per form on the person page: ``what`` names the form."""
    state = get_state()
    user = _person(user_id)
    back = redirect(url_for(".person", user_id=user.id))
    if not checked():
        return back
    form = request.form
    try:
        if what == "groups":
            wanted = set(form.getlist("groups"))
            before = list(user.groups)
            change_membership(state.store, directory(), user, add=sorted(wanted - set(before)),
                              remove=sorted(set(before) - wanted))
            act("user.groups", user_id=user.id, groups=" ".join(user.groups) or None)
            flash("Groups saved.")
        elif what == "admin":
            on = form.get("admin") == "on"
            if set_admin(directory(), user, on):
                act("user.set_admin", user_id=user.id, admin=on)
            flash(f"{user.username} is {'now' if on else 'no longer'} an admin.")
        elif what == "status":
            off = form.get("disabled") == "yes"
            ended = set_disabled(state, user, off)
            act("user.disable" if off else "user.enable", user_id=user.id, sessions=ended)
            flash(f"{user.username} is {'disabled' if off else 'enabled'}"
                  + (f"; {ended} session(s) ended." if ended else "."))
        elif what == "reset":
            if not user.profile.get("email") or not state.mailer.configured:
                flash("No link sent: this person has no email address, or mail is not set up. "
                      "Use `uauth user reset-link` to hand a link over.", "error")
            else:
                send_reset_link(state, user)
                act("user.reset_link", user_id=user.id, sent=True)
                flash(f"A reset link was sent to {user.profile['email']}.")
        elif what == "sessions":
            sid = form.get("sid", "")
            if sid:
                for login in of_user(state, user.id):
                    if login.sid == sid:
                        end(state, login, user)
                act("user.logout", user_id=user.id, sessions=1 if sid else 0)
                flash("Session ended.")
            else:
                ended = end_all(state, user.id)
                act("user.logout", user_id=user.id, sessions=ended)
                flash(f"{ended} session(s) ended.")
    except (LastAdminError, GroupError) as exc:
        act("refused", user_id=user.id, reason=str(exc)[:100])
        flash(str(exc)[:1].upper() + str(exc)[1:] + ".", "error")
    return back


@dangerous
def person_factors(user_id: str) -> ResponseReturnValue:
    state = get_state()
    user = _person(user_id)
    if checked():
        removed, ended = reset_second_factors(state, user)
        audit(MFA_RESET, user_id=user.id, records=removed)
        act("user.mfa.reset", user_id=user.id, records=removed, sessions=ended)
        flash(f"Removed the second factors of {user.username} ({removed} record(s)); "
              f"{ended} session(s) ended.")
    return redirect(url_for(".person", user_id=user.id))


@dangerous
def person_remove(user_id: str) -> ResponseReturnValue:
    state = get_state()
    user = _person(user_id)
    if not checked():
        return redirect(url_for(".person", user_id=user.id))
    try:
        ended = remove_person(state, user)
    except LastAdminError as exc:
        act("refused", user_id=user.id, reason=str(exc)[:100])
        flash(str(exc)[:1].upper() + str(exc)[1:] + ".", "error")
        return redirect(url_for(".person", user_id=user.id))
    act("user.remove", user_id=user.id, sessions=ended)
    flash(f"Removed {user.username}.")
    return redirect(url_for(".people"))


def invitations() -> ResponseReturnValue:
    state = get_state()
    shown_link = None
    if request.method == "POST" and checked():
        form = request.form
        send = form.get("send") == "on"
        if send and not state.mailer.configured:
            flash("Mail is not set up: create the link and hand it over instead.", "error")
        else:
            try:
                issued = create_invitation(
                    state.store, directory(), email=form.get("email", ""),
                    groups=form.getlist("groups"), username=form.get("username", ""),
                    admin=form.get("admin") == "on", now=state.now(),
                    ttl=state.settings.invite_ttl, created_by=admin().username,
                    mailed=send)
            except (InvitationError, GroupError) as exc:
                flash(str(exc), "error")
            else:
                invitation = find_invitation(state.store, issued.token)
                assert invitation is not None
                act("invitation.create", invitation=issued.key[:12],
                    groups=" ".join(invitation.groups) or None, sent=send)
                if send:
                    send_invitation(state, issued, invitation)
                    flash(f"Invitation sent to {invitation.email}.")
                else:
                    shown_link = absolute(state, "uauth.signup.invitation", token=issued.token)
    return render_template("uauth/admin/invitations.html", pending=all_pending(state.store),
                           groups=all_groups(state.store), link=shown_link,
                           mail=state.mailer.configured)


def invitation_revoke() -> ResponseReturnValue:
    state = get_state()
    if checked():
        key = request.form.get("key", "")
        matches = [i for i in all_pending(state.store) if i.key == key]
        if matches:
            revoke(state.store, INVITE, key)
            act("invitation.revoke", invitation=key[:12])
            flash(f"Withdrew the invitation for {matches[0].email}.")
    return redirect(url_for(".invitations"))


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/people", "people", people)
    bp.add_url_rule("/people/new", "new_person", new_person, methods=["GET", "POST"])
    bp.add_url_rule("/people/<user_id>", "person", person)
    bp.add_url_rule("/people/<user_id>/profile", "person_profile", person_profile,
                    methods=["POST"])
    bp.add_url_rule("/people/<user_id>/<any(groups, admin, status, reset, sessions):what>",
                    "person_update", person_update, methods=["POST"])
    bp.add_url_rule("/people/<user_id>/factors", "person_factors", person_factors,
                    methods=["POST"])
    bp.add_url_rule("/people/<user_id>/remove", "person_remove", person_remove,
                    methods=["POST"])
    bp.add_url_rule("/invitations", "invitations", invitations, methods=["GET", "POST"])
    bp.add_url_rule("/invitations/revoke", "invitation_revoke", invitation_revoke,
                    methods=["POST"])
