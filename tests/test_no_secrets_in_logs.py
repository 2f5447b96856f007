"""Tokens, passwords and one-time codes never reach the logs, even at DEBUG.

Every log record of every logger is captured at DEBUG while Giulia is created with a
password, logs in (and fails once), creates a token, changes her password, resets it with
a code, changes her email with a code, and logs out; and while someone tries a forged
token. None of the secrets may appear in any record: not in its message, its arguments or
its traceback. Mail goes through (a stand-in for) SMTP, as in production: without SMTP
the development transport writes each email to the log by design (see `timebank.outbox`),
codes included, which is how a developer without a mail server receives them.

The database drivers are the trap: aiosqlite logs each statement with its parameters at
DEBUG (which would include queued email bodies), and SQLAlchemy logs parameters at INFO.
`store.db` keeps aiosqlite's logger at INFO and makes every engine hide parameters.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from scambio.store.db import make_engine

from .api_helpers import PASSWORD, Api, running_api

SENT: list[EmailMessage] = []


class FakeSMTP:
    """Stands in for smtplib.SMTP and keeps what it is given."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        pass

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def starttls(self, context: object) -> None:
        return None

    def login(self, user: str, password: str) -> None:
        return None

    def send_message(self, message: EmailMessage) -> None:
        SENT.append(message)


class Everything(logging.Handler):
    """Keeps every record it sees, as text: message, raw arguments and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        formatter = logging.Formatter()
        for record in self.records:
            yield f"{record.name} {record.getMessage()} {record.args!r} {record.msg!r}"
            if record.exc_info:
                yield formatter.formatException(record.exc_info)
            if record.stack_info:
                yield record.stack_info


@pytest.fixture
def everything() -> Iterator[Everything]:
    """Capture all records at DEBUG: from the root and from loggers that do not propagate."""
    handler = Everything()
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    isolated = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in isolated:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for logger in isolated:
            logger.removeHandler(handler)


@pytest.fixture
async def api(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)  # what `timebank.outbox` calls
    SENT.clear()
    async with running_api(
        db_url,
        tmp_path,
        SCAMBIO_SMTP_HOST="127.0.0.1",
        SCAMBIO_SMTP_USER="scambio",
        SCAMBIO_SMTP_PASSWORD="smtp-secret-do-not-log",
        SCAMBIO_SMTP_STARTTLS="false",
    ) as running:
        yield running


def code_in_mail(pattern: str) -> str:
    for message in reversed(SENT):
        found = re.search(pattern, message.get_content())
        if found:
            return found.group(0)
    raise AssertionError(f"no mail with {pattern}")


async def test_no_secret_reaches_any_log_record(api: Api, everything: Everything) -> None:
    logging.getLogger("scambio.test").debug("capture works at DEBUG: %s", "marker-7f3a")
    secrets = {"smtp-secret-do-not-log", *api.tokens.values()}
    second, third = "a second long password", "a third long password!"
    wrong = "wrong horse battery staple"
    secrets |= {PASSWORD, second, third, wrong}

    giulia = await api.add_member("giulia")  # created with a password, then logs in
    secrets.add(api.tokens["giulia"])
    assert (await api.login(giulia.email, wrong)).status_code == 401
    created = await api.post(
        "/api/v1/auth/tokens", {"name": "phone", "scopes": ["read"]}, role="giulia"
    )
    secrets.add(created.json()["token"])
    changed = await api.post(
        "/api/v1/auth/password",
        {"current_password": PASSWORD, "new_password": second},
        role="giulia",
    )
    assert changed.status_code == 204, changed.text

    # A password reset: the code goes out by mail and is used.
    await api.post("/api/v1/auth/password-reset", {"email": giulia.email}, role=None)
    await api.mail_sent()
    reset = code_in_mail(r"rst_[A-Za-z0-9_-]{43}")
    secrets.add(reset)
    confirmed = await api.post(
        "/api/v1/auth/password-reset/confirm", {"token": reset, "password": third}, role=None
    )
    assert confirmed.status_code == 204, confirmed.text
    logged_in = await api.login(giulia.email, third, as_="giulia")
    secrets.add(logged_in.json()["token"])

    # An email change: the code goes to the new address and is used.
    asked = await api.post(
        "/api/v1/auth/email-change",
        {"email": "giulia.new@example.org", "password": third},
        role="giulia",
    )
    assert asked.status_code == 202, asked.text
    await api.mail_sent()
    code = code_in_mail(r"eml_[A-Za-z0-9_-]{43}")
    secrets.add(code)
    done = await api.post("/api/v1/auth/email-change/confirm", {"token": code}, role=None)
    assert done.status_code == 204, done.text
    # Replaying the code, a forged token and a logout.
    await api.post("/api/v1/auth/email-change/confirm", {"token": code}, role=None)
    forged = api.tokens["giulia"][:-4] + "AAAA"
    secrets.add(forged)
    response = await api.client.get(
        "/api/v1/members/me", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert (await api.post("/api/v1/auth/logout", role="giulia")).status_code == 204
    await api.mail_sent()

    texts = list(everything.texts())
    assert any("marker-7f3a" in text for text in texts)  # the capture sees DEBUG records
    assert any("HTTP Request: POST" in text for text in texts)  # and other libraries'
    leaks = sorted({secret[:12] for secret in secrets for text in texts if secret in text})
    assert leaks == [], f"secrets in the logs (first characters): {leaks}"


def test_the_driver_logger_stays_above_debug() -> None:
    """Whatever it was set to, creating an engine puts aiosqlite's logger back at INFO."""
    log = logging.getLogger("aiosqlite")
    saved = log.level
    try:
        log.setLevel(logging.NOTSET)
        engine = make_engine("sqlite+aiosqlite:///:memory:")
        assert log.level == logging.INFO
        assert engine.sync_engine.hide_parameters
    finally:
        log.setLevel(saved)
