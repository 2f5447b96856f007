"""Suspension, as a story: Sara suspends Marco, with a reason, and later reactivates him.

While suspended, Marco's tokens stop working, he cannot log in, and his account neither
pays nor is paid, whoever asks. Reactivation restores all of it (with a fresh login).
Managers act on members, not on staff or themselves; roles are changed by admins only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .api_helpers import Api, assert_problem, new_uuid, running_api
from .conftest import Clock


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


async def test_sara_suspends_marco_and_reactivates_him(
    api: Api, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    sara = await api.add_member("sara", role="manager")
    marco = await api.add_member("marco")
    giulia = await api.add_member("giulia")
    paid = await api.transfer(marco.account, giulia.account, 30, role="marco")
    assert paid.status_code == 201, paid.text

    no_reason = await api.post(f"/api/v1/members/{marco.id}/suspend", {}, role="sara")
    assert_problem(no_reason, 422, "invalid-field")
    blank = await api.post(f"/api/v1/members/{marco.id}/suspend", {"reason": "  "}, role="sara")
    assert_problem(blank, 422, "invalid-field")

    clock.advance(minutes=5)
    suspended = await api.post(
        f"/api/v1/members/{marco.id}/suspend",
        {"reason": "reported no-shows; talk first"},
        role="sara",
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    await api.mail_sent()
    assert "reported no-shows; talk first" in caplog.text

    # His token is dead, and so is logging in.
    assert_problem(await api.get("/api/v1/members/me", role="marco"), 401, "unauthenticated")
    assert_problem(await api.login(marco.email), 403, "member-suspended")

    # His account neither pays nor is paid, even when a manager asks.
    size = await api.tree_size()
    refused = await api.transfer(marco.account, giulia.account, 10, role="sara")
    assert assert_problem(refused, 409, "account-suspended")["account"] == marco.account
    assert_problem(
        await api.transfer(giulia.account, marco.account, 10, role="giulia"),
        409,
        "account-suspended",
    )
    batch = await api.post(
        "/api/v1/transfers/batch",
        {
            "transfers": [
                {"id": new_uuid(), "payer": giulia.account, "payee": marco.account, "minutes": 5},
            ]
        },
        role="giulia",
    )
    assert batch.json()["results"][0]["problem"]["type"].endswith("account-suspended")
    assert await api.tree_size() == size

    # The audit log keeps who, when and why.
    log = (await api.get("/api/v1/audit", role="auditor", action="member.suspended")).json()
    (entry,) = log["items"]
    assert entry["actor_member_id"] == sara.id
    assert entry["subject_id"] == marco.id
    assert entry["reason"] == "reported no-shows; talk first"
    assert entry["at"] == "2026-11-25T09:05:00.000000Z"
    assert entry["details"] == {"tokens_revoked": 1}

    again = await api.post(f"/api/v1/members/{marco.id}/suspend", {"reason": "x"}, role="sara")
    assert_problem(again, 409, "invalid-status")

    reactivated = await api.post(f"/api/v1/members/{marco.id}/reactivate", role="sara")
    assert reactivated.json()["status"] == "active"
    assert (await api.login(marco.email, as_="marco")).status_code == 200
    assert (await api.transfer(marco.account, giulia.account, 10, role="marco")).status_code == 201
    actions = [
        e["action"]
        for e in (await api.get("/api/v1/audit", role="sara", subject_id=marco.id)).json()["items"]
    ]
    assert actions == ["member.created", "member.suspended", "member.reactivated"]
    assert_problem(
        await api.post(f"/api/v1/members/{marco.id}/reactivate", role="sara"),
        409,
        "invalid-status",
    )


async def test_a_suspended_members_holds_cannot_be_posted_but_can_be_voided(api: Api) -> None:
    await api.add_member("sara", role="manager")
    marco = await api.add_member("marco")
    giulia = await api.add_member("giulia")
    holds = []
    for _ in range(2):
        hold = {
            "id": new_uuid(),
            "payer": marco.account,
            "payee": giulia.account,
            "minutes": 20,
            "hold": True,
        }
        assert (await api.post("/api/v1/transfers", hold, role="marco")).status_code == 201
        holds.append(hold["id"])
    await api.post(f"/api/v1/members/{giulia.id}/suspend", {"reason": "check"}, role="sara")
    posted = await api.post(f"/api/v1/transfers/{holds[0]}/post", role="sara")
    assert_problem(posted, 409, "account-suspended")
    voided = await api.post(f"/api/v1/transfers/{holds[1]}/void", role="marco")
    assert voided.status_code == 201, voided.text


async def test_managers_act_on_members_only_and_never_on_themselves(api: Api) -> None:
    sara = await api.add_member("sara", role="manager")
    luca = await api.add_member("luca", role="manager")
    marco = await api.add_member("marco")
    on_staff = await api.post(f"/api/v1/members/{luca.id}/suspend", {"reason": "x"}, role="sara")
    assert_problem(on_staff, 403, "forbidden")
    on_self = await api.post(f"/api/v1/members/{sara.id}/suspend", {"reason": "x"}, role="sara")
    assert_problem(on_self, 403, "forbidden")
    # A member with the manage scope is still no manager.
    by_member = await api.post(f"/api/v1/members/{luca.id}/suspend", {"reason": "x"}, role="marco")
    assert_problem(by_member, 403, "forbidden")
    # An admin may suspend a manager.
    by_admin = await api.post(f"/api/v1/members/{luca.id}/suspend", {"reason": "left"})
    assert by_admin.json()["status"] == "suspended"
    assert marco.id


async def test_only_admins_change_roles_and_the_change_is_audited(api: Api) -> None:
    await api.add_member("sara", role="manager")
    marco = await api.add_member("marco")
    body = {"role": "manager", "reason": "new community manager for Zone 4"}
    assert_problem(
        await api.post(f"/api/v1/members/{marco.id}/role", body, role="sara"), 403, "forbidden"
    )
    changed = await api.post(f"/api/v1/members/{marco.id}/role", body)
    assert changed.json()["role"] == "manager"
    # The new role applies to his existing token at once.
    pending = await api.get("/api/v1/members", role="marco", status="pending")
    assert pending.status_code == 200
    bad = await api.post(f"/api/v1/members/{marco.id}/role", {"role": "king", "reason": "x"})
    assert_problem(bad, 422, "invalid-field")
    log = (await api.get("/api/v1/audit", action="member.role-changed")).json()["items"]
    assert [(e["details"], e["reason"]) for e in log] == [
        ({"from": "member", "to": "manager"}, "new community manager for Zone 4")
    ]


async def test_profile_changes_by_a_manager_are_audited_and_by_the_member_not(
    api: Api,
) -> None:
    sara = await api.add_member("sara", role="manager")
    marco = await api.add_member("marco")
    mine = await api.request(
        "PATCH",
        f"/api/v1/members/{marco.id}",
        role="marco",
        json={"zone": "municipio-4", "areas": ["housing", "housing"], "about": "<b>hi</b>"},
    )
    assert mine.status_code == 200, mine.text
    assert (mine.json()["zone"], mine.json()["areas"]) == ("municipio-4", ["housing"])
    # HTML is stored and returned as the text it is, in JSON, never rendered.
    assert mine.json()["about"] == "<b>hi</b>"
    assert mine.headers["content-type"].startswith("application/json")
    theirs = await api.request(
        "PATCH", f"/api/v1/members/{marco.id}", role="sara", json={"name": "Marco Verdi"}
    )
    assert theirs.json()["name"] == "Marco Verdi"
    log = (await api.get("/api/v1/audit", role="sara", subject_id=marco.id)).json()["items"]
    changes = [e for e in log if e["action"] == "member.profile-changed"]
    assert len(changes) == 1
    assert changes[0]["actor_member_id"] == sara.id
    assert changes[0]["details"] == {
        "fields": ["name"],
        "name": {"from": "Marco", "to": "Marco Verdi"},
    }
    cleared = await api.request(
        "PATCH", f"/api/v1/members/{marco.id}", role="marco", json={"zone": None}
    )
    assert cleared.json()["zone"] is None


async def test_the_audit_log_is_append_only_in_the_database(api: Api) -> None:
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DBAPIError

    from scambio.store.db import make_engine
    from scambio.store.people_tables import audit_log

    await api.add_member("marco")
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        for statement in (update(audit_log).values(reason="forged"), delete(audit_log)):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(statement)
    finally:
        await engine.dispose()
    assert len((await api.get("/api/v1/audit")).json()["items"]) == 1
