"""Invitations and open sign-up, with mail through a real SMTP server, and their CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.test import TestResponse

from tests.app_driver import Driver
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.smtp_server import SmtpServer
from tests.test_recovery import link_in
from tests.test_recovery import mail_app
from uauth.core.groups import create as create_group
from uauth.core.invitations import InvitationError
from uauth.core.invitations import create as create_invitation
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage.memory import MemoryStore


def signup_driver(instance: Path, clock: FakeClock, smtp: SmtpServer, **config: object
                  ) -> Driver:
    return Driver.of(mail_app(instance, MemoryStore(clock=clock), clock, smtp, **config))


def invite(driver: Driver, email: str, **kwargs: object) -> str:
    with driver.app.app_context():
        state = get_state()
        issued = create_invitation(state.store, state.users, email=email, now=state.now(),
                                   ttl=3600, **kwargs)  # type: ignore[arg-type]
    return f"/invite/{issued.token}"


def fill(driver: Driver, path: str, **values: str) -> TestResponse:
    page = driver.http.get(path)
    assert page.status_code == 200, page.text
    return driver.http.post(path, data={"csrf_token": csrf_token(page.text), **values})


def test_an_invitation_creates_the_account_once_with_its_groups(
        shared_instance: Path, store: Store, clock: FakeClock, smtp: SmtpServer) -> None:
    driver = Driver.of(mail_app(shared_instance, store, clock, smtp))  # every backend
    with driver.app.app_context():
        create_group(get_state().store, "staff", now=0)
    path = invite(driver, "nina@example.com", groups=["staff"])
    page = driver.http.get(path)
    assert "nina@example.com" in page.text and "staff" in page.text
    done = fill(driver, path, username="nina", password="nina-secret-1", confirm="nina-secret-1")
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    assert "nina" in driver.http.get("/account").text  # signed in
    with driver.app.app_context():
        user = get_state().users.find_by_username("nina")
    assert user is not None and user.groups == ["staff"] and not user.admin
    assert user.profile == {"email": "nina@example.com"}  # a handed-over link proves no mailbox
    again = Driver.of(driver.app).http.get(path)
    assert again.status_code == 400 and "cannot be used" in again.text


def test_an_invitation_for_a_taken_username_is_kept_for_another_try(
        shared_instance: Path, clock: FakeClock, smtp: SmtpServer) -> None:
    driver = signup_driver(shared_instance, clock, smtp)
    driver.user("omar")
    with pytest.raises(InvitationError, match="the username 'Omar' is taken"):
        invite(driver, "omar@example.com", username="Omar")
    with pytest.raises(InvitationError, match="no group 'ghosts'"):
        invite(driver, "omar@example.com", groups=["ghosts"])
    path = invite(driver, "omar2@example.com")
    taken = fill(driver, path, username="OMAR", password="omar-secret-1", confirm="omar-secret-1")
    assert taken.status_code == 400 and "taken" in taken.text
    ok = fill(driver, path, username="omar2", password="omar-secret-1", confirm="omar-secret-1")
    assert ok.status_code == 302
    clock.advance(3601)
    expired = invite(driver, "late@example.com")
    clock.advance(3601)
    assert driver.http.get(expired).status_code == 400


def test_open_signup_needs_the_mailed_link_and_an_allowed_domain(
        shared_instance: Path, store: Store, clock: FakeClock, smtp: SmtpServer) -> None:
    driver = Driver.of(mail_app(shared_instance, store, clock, smtp, UAUTH_SIGNUP="open",
                                UAUTH_SIGNUP_DOMAINS=["example.com"]))  # every backend
    assert "Create an account" in driver.http.get("/login").text
    wrong = fill(driver, "/signup", username="pia", email="pia@elsewhere.org",
                 password="pia-secret-1", confirm="pia-secret-1")
    assert wrong.status_code == 400 and "example.com" in wrong.text
    asked = fill(driver, "/signup", username="pia", email="pia@example.com",
                 password="pia-secret-1", confirm="pia-secret-1")
    assert asked.status_code == 200 and "Check your email" in asked.text
    with driver.app.app_context():
        assert get_state().users.find_by_username("pia") is None  # not before the link
    path = link_in(smtp.wait_for("pia@example.com")[0], "signup")
    confirm = driver.http.get(path)
    done = driver.http.post(path, data={"csrf_token": csrf_token(confirm.text)})
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    with driver.app.app_context():
        user = get_state().users.find_by_username("pia")
    assert user is not None and user.profile["email_verified"] is True
    assert Driver.of(driver.app).login("pia", "pia-secret-1").status_code == 302
    assert driver.http.post(path, data={"csrf_token": csrf_token(confirm.text)}
                            ).status_code == 400


@pytest.mark.parametrize("mode", ["off", "invite"])
def test_signup_closed_says_so(shared_instance: Path, clock: FakeClock, smtp: SmtpServer,
                               mode: str) -> None:
    driver = signup_driver(shared_instance, clock, smtp, UAUTH_SIGNUP=mode)
    page = driver.http.get("/signup")
    assert page.status_code == 404
    assert ("invitation" if mode == "invite" else "closed") in page.text
    assert "Create an account" not in driver.http.get("/login").text


def uauth(instance: Path, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uauth", "--instance", str(instance), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_cli_groups_admins_invitations_and_reset_links(tmp_path: Path, smtp: SmtpServer) -> None:
    instance = tmp_path / "instance"
    env = {"UAUTH_SMTP_URL": smtp.url, "UAUTH_MAIL_FROM": "id@example.com",
           "UAUTH_ISSUER": "http://localhost:5000"}
    assert uauth(instance, "init").returncode == 0
    assert uauth(instance, "group", "add", "staff").returncode == 0
    assert "already exists" in uauth(instance, "group", "add", "staff").stderr
    added = uauth(instance, "user", "add", "root", "--admin", "--group", "staff",
                  "--email", "root@example.com", "--password-stdin", stdin="root-secret\n")
    assert added.returncode == 0, added.stderr
    assert "no group 'nope'" in uauth(instance, "user", "add", "x", "--group", "nope",
                                      "--password-stdin", stdin="whatever1\n").stderr
    assert "root" in uauth(instance, "group", "members", "staff").stdout
    last = uauth(instance, "user", "set-admin", "root", "--off")
    assert last.returncode == 1 and "last active admin" in last.stderr
    assert uauth(instance, "user", "groups", "root", "--remove", "staff").stdout.strip() \
        == "root: (no groups)"
    link = uauth(instance, "user", "reset-link", "root", env=env)
    assert link.returncode == 0 and urlsplit(link.stdout.strip()).path.startswith("/reset/")
    sent = uauth(instance, "user", "reset-link", "root", "--send", env=env)
    assert sent.returncode == 0, sent.stderr
    assert smtp.wait_for("root@example.com")[0].subject == "Reset your password"
    no_smtp = uauth(instance, "invite", "create", "--email", "a@example.com", "--send")
    assert no_smtp.returncode == 1 and "UAUTH_SMTP_URL" in no_smtp.stderr
    created = uauth(instance, "invite", "create", "--email", "new@example.com", "--group",
                    "staff", "--expires", "2d", "--send", env=env)
    assert created.returncode == 0, created.stderr
    mail = smtp.wait_for("new@example.com")[0]
    assert created.stdout.strip() in mail.text and "staff" in mail.text
    listed = uauth(instance, "invite", "list").stdout
    assert "new@example.com" in listed
    assert uauth(instance, "invite", "revoke", listed.split()[0]).returncode == 0
    assert "new@example.com" not in uauth(instance, "invite", "list").stdout
    client = uauth(instance, "client", "add", "--name", "Staff app", "--redirect-uri",
                   "https://app.example.com/cb", "--allow-group", "nope")
    assert client.returncode == 1 and "no group 'nope'" in client.stderr
    assert "Staff app" not in uauth(instance, "client", "list").stdout
    made = uauth(instance, "client", "add", "--name", "Staff app", "--redirect-uri",
                 "https://app.example.com/cb", "--allow-group", "staff", "--require-mfa",
                 "--json")
    client_id = json.loads(made.stdout)["client_id"]
    assert "allowed_groups:" in uauth(instance, "client", "show", client_id).stdout
    renamed = uauth(instance, "client", "update", client_id, "--name", "Staff wiki")
    assert renamed.returncode == 0, renamed.stderr
    shown = uauth(instance, "client", "show", client_id).stdout
    assert re.search(r"allowed_groups:\s+staff", shown) and re.search(r"require_mfa:\s+True",
                                                                     shown), shown
    bad = uauth(instance, "client", "update", client_id, "--allow-group", "nope")
    assert bad.returncode == 1 and "no group 'nope'" in bad.stderr
    assert uauth(instance, "group", "remove", "staff").returncode == 0
    checked = uauth(instance, "check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"mail.*127\.0\.0\.1:\d+ answers", checked.stdout), checked.stdout
    unset = uauth(instance, "check", env={"UAUTH_ISSUER": "http://localhost:5000"})
    assert "password reset by email" in unset.stdout and unset.returncode == 0
