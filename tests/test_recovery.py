"""Password reset and email verification by mail, through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.app_driver import PASSWORD
from tests.app_driver import Driver
from tests.app_driver import make_app
from tests.browser import csrf_token
from tests.conftest import FakeClock
from tests.smtp_server import Received
from tests.smtp_server import SmtpServer
from uauth.core.audittrail import Query
from uauth.core.audittrail import search
from uauth.extension import get_state
from uauth.storage import Store
from uauth.storage.memory import MemoryStore

SENDER = "Example ID <id@example.com>"


def mail_app(tmp_path: Path, store: Store, clock: FakeClock, smtp: SmtpServer, **config: object
             ) -> Flask:
    return make_app(tmp_path, store, clock, UAUTH_SMTP_URL=smtp.url, UAUTH_MAIL_FROM=SENDER,
                    UAUTH_MAIL_RETRIES=0, **config)


@pytest.fixture
def driver(shared_instance: Path, clock: FakeClock, smtp: SmtpServer) -> Driver:
    return Driver.of(mail_app(shared_instance, MemoryStore(clock=clock), clock, smtp))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "localhost", url  # the issuer's origin
    return parts.path


def ask_reset(driver: Driver, identifier: str) -> str:
    page = driver.http.get("/forgot")
    assert page.status_code == 200
    answer = driver.http.post("/forgot", data={"csrf_token": csrf_token(page.text),
                                               "identifier": identifier})
    assert answer.status_code == 200
    return answer.text


def link_in(mail: Received, word: str) -> str:
    links = [link for link in mail.links() if f"/{word}/" in link]
    assert len(links) == 1, mail.text
    assert links[0] in mail.part("html")  # the HTML alternative carries the same link
    return path_of(links[0])


def set_password(driver: Driver, path: str, password: str, *, apps: bool = False
                 ) -> TestResponse:
    page = driver.http.get(path)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_token(page.text), "new_password": password, "confirm": password}
    if apps:
        data["sign_out_apps"] = "y"
    return driver.http.post(path, data=data)


@pytest.fixture
def any_driver(shared_instance: Path, store: Store, clock: FakeClock, smtp: SmtpServer) -> Driver:
    """On every backend: memory, SQLite and Redis."""
    return Driver.of(mail_app(shared_instance, store, clock, smtp))


def test_reset_by_mail_sets_the_password_once_and_signs_out_other_sessions(
        any_driver: Driver, smtp: SmtpServer) -> None:
    driver = any_driver
    driver.user("alice", email="alice@example.com")
    elsewhere = Driver.of(driver.app)
    assert elsewhere.login().status_code == 302
    assert elsewhere.http.get("/account").status_code == 200
    login_page = driver.http.get("/login").text
    assert 'href="/forgot"' in login_page

    same_page = ask_reset(driver, "alice@example.com")
    mail = smtp.wait_for("alice@example.com")[0]
    assert mail.sender == "id@example.com" and mail.subject == "Reset your password"
    assert "30 minutes" in mail.text
    path = link_in(mail, "reset")

    answer = set_password(driver, path, "a brand new secret")
    assert answer.status_code == 200 and "Your password was changed" in answer.text
    assert elsewhere.http.get("/account").status_code == 302  # that session ended
    assert driver.login(password=PASSWORD).status_code == 401
    assert Driver.of(driver.app).login(password="a brand new secret").status_code == 302
    # single use: the same link again is refused with a page, not a form
    again = driver.http.get(path)
    assert again.status_code == 400 and "cannot be used" in again.text
    # an unknown address gets the very same page, and no mail
    assert ask_reset(driver, "nobody@example.com") == same_page
    assert ask_reset(driver, "bob") == same_page
    assert len(smtp.to("alice@example.com")) == 1
    with driver.app.app_context():
        events = [e["event"] for e in search(get_state().store, Query())]
    assert "password_reset.completed" in events and "mail.sent" in events


def test_reset_by_username_and_expired_or_forged_links(driver: Driver, smtp: SmtpServer,
                                                       clock: FakeClock) -> None:
    driver.user("carol", email="carol@example.com")
    ask_reset(driver, "carol")
    path = link_in(smtp.wait_for("carol@example.com")[0], "reset")
    clock.advance(1801)
    assert driver.http.get(path).status_code == 400
    forged = path[:-4] + ("aaaa" if not path.endswith("aaaa") else "bbbb")
    assert driver.http.get(forged).status_code == 400
    assert driver.http.get("/reset/x").status_code == 400


def test_reset_requests_are_throttled_per_address(driver: Driver, smtp: SmtpServer) -> None:
    driver.user("dave", email="dave@example.com")
    pages = {ask_reset(driver, "dave@example.com") for _ in range(5)}
    assert len(pages) == 1  # throttled or not, the same page
    smtp.wait_for("dave@example.com", 3)
    with driver.app.app_context():
        get_state().mailer.drain(5)
    assert len(smtp.to("dave@example.com")) == 3  # UAUTH_MAIL_LIMIT


def test_a_refusing_mail_server_is_logged_and_audited_not_shown(
        driver: Driver, smtp: SmtpServer) -> None:
    driver.user("erin", email="erin@example.com")
    smtp.refuse("550 mailbox unavailable")
    assert "Check your email" in ask_reset(driver, "erin@example.com")
    with driver.app.app_context():
        state = get_state()
        assert state.mailer.drain(10)
        failed = search(state.store, Query(event="mail.failed"))
    assert failed and failed[0]["reason"].startswith("SMTPDataError 550")
    assert smtp.to("erin@example.com") == []


def test_without_smtp_reset_is_not_offered(shared_instance: Path, clock: FakeClock) -> None:
    driver = Driver.of(make_app(shared_instance, MemoryStore(clock=clock), clock))
    assert "Forgot your password" not in driver.http.get("/login").text
    page = driver.http.get("/forgot")
    assert page.status_code == 404 and "cannot send email" in page.text


def test_a_changed_email_is_verified_by_mail(driver: Driver, smtp: SmtpServer) -> None:
    driver.user("frank", given_name="Frank", email="old@example.com", email_verified=True)
    driver.login("frank")
    page = driver.http.get("/account")
    data = {"attr-csrf_token": csrf_token(page.text, "attr"), "attr-given_name": "Frank",
            "attr-email": "new@example.com"}
    assert driver.http.post("/account/profile", data=data).status_code == 302
    account = driver.http.get("/account").text
    assert "We sent a link to new@example.com" in account
    mail = smtp.wait_for("new@example.com")[0]
    path = link_in(mail, "verify")
    confirm = driver.http.get(path)
    assert confirm.status_code == 200 and "new@example.com" in confirm.text
    with driver.app.app_context():
        assert get_state().users.find_by_username("frank").profile.get(  # type: ignore[union-attr]
            "email_verified") is None
    done = driver.http.post(path, data={"csrf_token": csrf_token(confirm.text)})
    assert done.status_code == 200 and "confirmed" in done.text
    with driver.app.app_context():
        user = get_state().users.find_by_username("frank")
    assert user is not None and user.profile["email_verified"] is True
    assert driver.http.post(path, data={"csrf_token": csrf_token(confirm.text)}
                            ).status_code == 400


def test_verification_can_be_asked_again_from_the_account_page(
        driver: Driver, smtp: SmtpServer) -> None:
    driver.user("gina", given_name="Gina", email="gina@example.com")
    driver.login("gina")
    page = driver.http.get("/account").text
    assert "confirm my email address" in page
    answer = driver.http.post("/account/verify-email",
                              data={"verify-csrf_token": csrf_token(page, "verify")})
    assert answer.status_code == 302
    assert smtp.wait_for("gina@example.com")[0].subject == "Confirm your email address"


def test_the_mail_server_probe_and_url_settings(smtp: SmtpServer) -> None:
    from tests.redis_server import free_port
    from uauth.core.mail import MailConfigError
    from uauth.core.mail import parse_smtp_url
    from uauth.core.mail import probe

    assert probe(parse_smtp_url(smtp.url, ""), 5) is None
    problem = probe(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}", ""), 5)
    assert problem is not None and "ConnectionRefusedError" in problem
    tls = parse_smtp_url("smtp://me%40x.org:p%3Ass@mail.example.com:587?starttls=true", "env")
    assert (tls.host, tls.port, tls.tls, tls.username, tls.password) == (
        "mail.example.com", 587, "starttls", "me@x.org", "p:ss")
    assert "p:ss" not in repr(tls)
    ssl = parse_smtp_url("smtps://relay.example.com", "from-env")
    assert (ssl.port, ssl.tls, ssl.password) == (465, "ssl", "from-env")
    for bad in ("http://x", "smtp://", "smtp://h:x", "smtp://h?tls=1", "smtps://h?starttls=true"):
        with pytest.raises(MailConfigError):
            parse_smtp_url(bad, "")


def test_mail_settings_fail_early_with_the_fix(shared_instance: Path, clock: FakeClock) -> None:
    from uauth.core.settings import ConfigError

    with pytest.raises(ConfigError, match="UAUTH_MAIL_FROM must be set"):
        make_app(shared_instance, MemoryStore(clock=clock), clock,
                 UAUTH_SMTP_URL="smtp://127.0.0.1:25")
    with pytest.raises(ConfigError, match="UAUTH_SMTP_URL: use smtp://"):
        make_app(shared_instance, MemoryStore(clock=clock), clock, UAUTH_SMTP_URL="mail.example",
                 UAUTH_MAIL_FROM="a@b.c")
    with pytest.raises(ConfigError, match="UAUTH_SIGNUP must be one of off, invite, open"):
        make_app(shared_instance, MemoryStore(clock=clock), clock, UAUTH_SIGNUP="yes")


def test_an_older_reset_link_cannot_undo_a_newer_reset(driver: Driver, smtp: SmtpServer,
                                                       clock: FakeClock) -> None:
    driver.user("hana", email="hana@example.com")
    ask_reset(driver, "hana")
    clock.advance(5)
    ask_reset(driver, "hana")
    first, second = (link_in(m, "reset") for m in smtp.wait_for("hana@example.com", 2))
    clock.advance(5)
    assert set_password(driver, second, "the newest secret").status_code == 200
    assert driver.http.get(first).status_code == 400  # made before the account changed


def test_a_mail_server_that_is_down_is_retried_then_audited(shared_instance: Path,
                                                             clock: FakeClock) -> None:
    from tests.redis_server import free_port

    down = make_app(shared_instance, MemoryStore(clock=clock), clock,
                    UAUTH_SMTP_URL=f"smtp://127.0.0.1:{free_port()}", UAUTH_MAIL_FROM=SENDER,
                    UAUTH_MAIL_RETRIES=1, UAUTH_MAIL_TIMEOUT=2)
    driver = Driver.of(down)
    driver.user("ivan", email="ivan@example.com")
    started = time.monotonic()
    assert "Check your email" in ask_reset(driver, "ivan")
    assert time.monotonic() - started < 1.5, "the page does not wait for the mail server"
    with driver.app.app_context():
        state = get_state()
        assert state.mailer.drain(15)
        failed = search(state.store, Query(event="mail.failed"))
    assert failed and failed[0]["attempts"] == 2
    assert failed[0]["reason"] == "ConnectionRefusedError"
