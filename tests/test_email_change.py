"""Changing an email address, as worked examples over HTTP (SQLite and PostgreSQL).

Giulia moves to a new address: she asks with her password, the code goes to the new
address (read here from the log, the development mail transport), she confirms, the old
address is told, the audit log keeps it. A request for an address someone else uses
reveals nothing. Signora Pina, registered offline, gets an address from the manager;
a manager cannot do that for a member who can log in, but an admin can.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.notifications_tables import email_changes
from scambio.store.people_tables import members, outbox

from .api_helpers import PASSWORD, Api, assert_problem, running_api
from .conftest import Clock

CODE = re.compile(r"eml_[A-Za-z0-9_-]{43}")
RESET = re.compile(r"rst_[A-Za-z0-9_-]{43}")
NEW = "giulia.rossi@example.org"


@pytest.fixture
async def api(
    db_url: str, tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Api]:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


async def rows(api: Api, table: Any) -> list[Any]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(select(table)))
    finally:
        await engine.dispose()


async def mail(api: Api, kind: str) -> list[Any]:
    await api.mail_sent()
    return sorted((m for m in await rows(api, outbox) if m.kind == kind), key=lambda m: m.id)


async def ask(api: Api, who: str, email: str, password: str = PASSWORD) -> Any:
    return await api.post(
        "/api/v1/auth/email-change", {"email": email, "password": password}, role=who
    )


async def code_from_log(api: Api, caplog: pytest.LogCaptureFixture) -> str:
    await api.mail_sent()
    codes = CODE.findall(caplog.text)
    assert len(codes) == 1, caplog.text
    caplog.clear()
    return str(codes[0])


async def confirm(api: Api, code: str) -> Any:
    return await api.post("/api/v1/auth/email-change/confirm", {"token": code}, role=None)


async def test_giulia_moves_to_a_new_address(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    giulia = await api.add_member("giulia", name="Giulia")
    # She asked for a password reset last week and never used the code.
    await api.post("/api/v1/auth/password-reset", {"email": giulia.email}, role=None)
    await api.mail_sent()
    (old_reset,) = RESET.findall(caplog.text)
    caplog.clear()

    # A wrong password, or her own address, is refused.
    assert_problem(await ask(api, "giulia", NEW, "not my password"), 401, "invalid-credentials")
    assert_problem(await ask(api, "giulia", giulia.email), 422, "invalid-email")
    assert_problem(await ask(api, "giulia", "not an address"), 422, "invalid-email")

    # She asks (any case, spaces): the code goes to the new address only.
    asked = await ask(api, "giulia", "  Giulia.Rossi@Example.org ")
    assert asked.status_code == 202, asked.text
    code = await code_from_log(api, caplog)
    (sent,) = await mail(api, "email-change-confirm")
    assert sent.recipient == NEW and sent.status == "sent" and code not in sent.body
    (stored,) = await rows(api, email_changes)
    assert code.encode() not in bytes(stored.token_hash)
    # Until she confirms, nothing changes.
    assert (await api.login(giulia.email)).status_code == 200

    done = await confirm(api, code)
    assert done.status_code == 204, done.text
    assert_problem(await api.login(giulia.email), 401, "invalid-credentials")
    assert (await api.login(NEW, as_="giulia")).status_code == 200
    me = (await api.get("/api/v1/members/me", role="giulia")).json()
    assert me["email"] == NEW

    # The old address is told (without spelling out the new one); the audit log keeps it.
    (notice,) = await mail(api, "email-changed-notice")
    assert notice.recipient == giulia.email
    assert "it is now g***@example.org" in notice.body
    log = (await api.get("/api/v1/audit", action="member.email-changed")).json()["items"]
    assert [(e["subject_id"], e["details"]) for e in log] == [
        (giulia.id, {"from": giulia.email, "to": NEW, "confirmed_by_member": True})
    ]
    # The code works once; the old reset code died with the old address.
    assert_problem(await confirm(api, code), 422, "invalid-confirmation-token")
    late_reset = await api.post(
        "/api/v1/auth/password-reset/confirm",
        {"token": old_reset, "password": "a brand new password"},
        role=None,
    )
    assert_problem(late_reset, 422, "invalid-reset-token")


async def test_an_address_someone_else_uses_reveals_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    giulia = await api.add_member("giulia")
    marco = await api.add_member("marco")
    free, taken = await ask(api, "giulia", NEW), await ask(api, "giulia", marco.email)
    assert (free.status_code, free.json()) == (taken.status_code, taken.json())
    await api.mail_sent()
    assert len(CODE.findall(caplog.text)) == 1  # only the free address got a code
    (notice,) = await mail(api, "email-change-taken")
    assert notice.recipient == marco.email
    stored = {r.id: r.email for r in await rows(api, members)}
    assert stored[giulia.id] == giulia.email


async def test_the_address_taken_meanwhile_and_the_code_that_expired(
    api: Api, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    await api.add_member("giulia")
    await ask(api, "giulia", NEW)
    code = await code_from_log(api, caplog)
    # Before Giulia confirms, a manager registers someone else with that address.
    other = await api.post("/api/v1/members", {"name": "Other", "email": NEW}, role="manager")
    assert other.status_code == 201
    assert_problem(await confirm(api, code), 409, "email-taken")

    await ask(api, "giulia", "giulia.bianchi@example.org")
    late = await code_from_log(api, caplog)
    clock.advance(hours=24)
    assert_problem(await confirm(api, late), 422, "invalid-confirmation-token")
    assert_problem(await confirm(api, "eml_" + "A" * 43), 422, "invalid-confirmation-token")


async def test_requests_are_limited(api: Api) -> None:
    await api.add_member("giulia")
    assert [(await ask(api, "giulia", f"g{n}@example.org")).status_code for n in range(3)] == [
        202
    ] * 3
    refused = assert_problem(await ask(api, "giulia", "g9@example.org"), 429, "too-many-attempts")
    assert refused["retry_after"] > 0


async def test_the_manager_sets_pinas_address_but_not_giulias(api: Api) -> None:
    giulia = await api.add_member("giulia")
    pina = (await api.post("/api/v1/members", {"name": "Pina"}, role="manager")).json()
    assert pina["email"] is None

    path = f"/api/v1/members/{pina['id']}/email"
    body = {"email": "pina.daughter@example.org", "reason": "her daughter reads it for her"}
    assert_problem(
        await api.post(path, {**body, "reason": " "}, role="manager"), 422, "invalid-field"
    )
    set_ = await api.post(path, body, role="manager")
    assert set_.status_code == 200, set_.text
    assert set_.json()["email"] == "pina.daughter@example.org"
    log = (await api.get("/api/v1/audit", action="member.email-changed")).json()["items"]
    assert log[-1]["reason"] == "her daughter reads it for her"
    assert log[-1]["details"] == {
        "from": None,
        "to": "pina.daughter@example.org",
        "confirmed_by_member": False,
    }
    # Taken addresses are refused; null removes the address again.
    taken = await api.post(path, {**body, "email": giulia.email}, role="manager")
    assert_problem(taken, 409, "email-taken")
    cleared = await api.post(path, {"email": None, "reason": "daughter moved away"}, role="manager")
    assert cleared.json()["email"] is None

    # Giulia can log in and confirm an address herself: a manager may not move her mail.
    giulias = f"/api/v1/members/{giulia.id}/email"
    refused = await api.post(giulias, {"email": NEW, "reason": "asked by phone"}, role="manager")
    assert_problem(refused, 403, "forbidden")
    # An admin may, and Giulia's old address hears of it.
    done = await api.post(giulias, {"email": NEW, "reason": "lost her mailbox"}, role="admin")
    assert done.status_code == 200, done.text
    notices = await mail(api, "email-changed-notice")
    # Pina's daughter heard when the address was removed; Giulia now.
    assert [n.recipient for n in notices] == ["pina.daughter@example.org", giulia.email]
    assert "A community manager changed" in notices[1].body
