"""Password reset through the outbox: a one-time code, valid for an hour, used once.

Without SMTP the email goes to the log (the development mode), which is where these
tests read the code from. With SMTP configured it goes to the server, and the body never
reaches the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.people_tables import outbox, password_resets
from scambio.timebank import outbox as outbox_module

from .api_helpers import Api, assert_problem, running_api
from .conftest import Clock

CODE = re.compile(r"rst_[A-Za-z0-9_-]{43}")


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


async def reset_code(api: Api, caplog: pytest.LogCaptureFixture, email: str) -> str:
    caplog.clear()
    response = await api.post("/api/v1/auth/password-reset", {"email": email}, role=None)
    assert response.status_code == 202
    await api.mail_sent()
    codes = CODE.findall(caplog.text)
    assert len(codes) == 1, caplog.text
    return str(codes[0])


async def rows(api: Api, table: Any) -> list[Any]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(select(table)))
    finally:
        await engine.dispose()


async def test_a_reset_code_works_once(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    giulia = await api.add_member("giulia")
    code = await reset_code(api, caplog, "  GIULIA@example.org")
    assert "valid for 60 minutes" in caplog.text

    # At rest: only the hash of the code, and the delivered email is blanked.
    stored = await rows(api, password_resets)
    assert len(stored) == 1 and code.encode() not in bytes(stored[0].token_hash)
    (mail,) = [m for m in await rows(api, outbox) if m.kind == "password-reset"]
    assert mail.status == "sent" and code not in mail.body

    short = await api.post(
        "/api/v1/auth/password-reset/confirm", {"token": code, "password": "short"}, role=None
    )
    assert_problem(short, 422, "invalid-password")
    done = await api.post(
        "/api/v1/auth/password-reset/confirm",
        {"token": code, "password": "a fresh long password"},
        role=None,
    )
    assert done.status_code == 204, done.text
    # Old tokens are revoked; the new password works; the code does not work twice.
    assert_problem(await api.get("/api/v1/members/me", role="giulia"), 401, "unauthenticated")
    assert (await api.login(giulia.email, "a fresh long password")).status_code == 200
    again = await api.post(
        "/api/v1/auth/password-reset/confirm",
        {"token": code, "password": "yet another password"},
        role=None,
    )
    assert_problem(again, 422, "invalid-reset-token")
    log = (await api.get("/api/v1/audit", action="member.password-reset")).json()["items"]
    assert [e["subject_id"] for e in log] == [giulia.id]


async def test_a_reset_code_expires_after_an_hour(
    api: Api, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    giulia = await api.add_member("giulia")
    code = await reset_code(api, caplog, giulia.email)
    clock.advance(minutes=60)
    late = await api.post(
        "/api/v1/auth/password-reset/confirm",
        {"token": code, "password": "a fresh long password"},
        role=None,
    )
    assert_problem(late, 422, "invalid-reset-token")
    forged = await api.post(
        "/api/v1/auth/password-reset/confirm",
        {"token": "rst_" + "A" * 43, "password": "a fresh long password"},
        role=None,
    )
    assert_problem(forged, 422, "invalid-reset-token")


async def test_reset_requests_reveal_nothing_and_are_rate_limited(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    giulia = await api.add_member("giulia")
    answers = []
    for email in (giulia.email, "nobody@example.org", "not an email"):
        response = await api.post("/api/v1/auth/password-reset", {"email": email}, role=None)
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 202
    await api.mail_sent()
    assert len(CODE.findall(caplog.text)) == 1
    for _ in range(4):
        await api.post("/api/v1/auth/password-reset", {"email": giulia.email}, role=None)
    await api.mail_sent()
    # Three per address within the window: the first above, two more; the rest dropped.
    assert len(CODE.findall(caplog.text)) == 3


SENT: list[EmailMessage] = []


class FakeSMTP:
    """Stands in for smtplib.SMTP: the first message fails, later ones are kept."""

    fail_next = True

    def __init__(self, host: str, port: int, timeout: float) -> None:
        assert (host, port) == ("127.0.0.1", 2525)

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def starttls(self, context: object) -> None:
        raise AssertionError("STARTTLS was switched off")

    def login(self, user: str, password: str) -> None:
        assert (user, password) == ("scambio", "smtp-secret")

    def send_message(self, message: EmailMessage) -> None:
        if FakeSMTP.fail_next:
            FakeSMTP.fail_next = False
            raise ConnectionRefusedError("server busy")
        SENT.append(message)


@pytest.fixture
async def smtp_api(
    db_url: str, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    # Started in the fixture: the app's logging set-up happens before caplog attaches.
    monkeypatch.setattr(outbox_module.smtplib, "SMTP", FakeSMTP)
    SENT.clear()
    FakeSMTP.fail_next = True
    env = {
        "SCAMBIO_SMTP_HOST": "127.0.0.1",
        "SCAMBIO_SMTP_PORT": "2525",
        "SCAMBIO_SMTP_USER": "scambio",
        "SCAMBIO_SMTP_PASSWORD": "smtp-secret",
        "SCAMBIO_SMTP_STARTTLS": "false",
        "SCAMBIO_MAIL_FROM": "scambio@zona6.example.org",
    }
    async with running_api(db_url, tmp_path, clock=clock, **env) as running:
        yield running


async def test_with_smtp_the_mail_goes_to_the_server_not_the_log(
    smtp_api: Api, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    api = smtp_api
    # INFO, as in production: at DEBUG the database driver logs SQL parameters, and the
    # outbox row holds the message until it is delivered.
    caplog.set_level(logging.INFO)
    giulia = await api.add_member("giulia")
    await api.post("/api/v1/auth/password-reset", {"email": giulia.email}, role=None)
    await api.mail_sent()
    assert SENT == []
    (mail,) = [m for m in await rows(api, outbox) if m.kind == "password-reset"]
    assert (mail.status, mail.attempts) == ("pending", 1)
    assert mail.last_error == "ConnectionRefusedError: server busy"
    assert "not delivered, attempt 1" in caplog.text
    clock.advance(minutes=3)
    await api.mail_sent()
    (message,) = SENT
    assert message["To"] == giulia.email
    assert message["From"] == "scambio@zona6.example.org"
    code = CODE.search(message.get_content())
    assert code is not None
    assert code.group(0) not in caplog.text
    assert "smtp-secret" not in caplog.text
