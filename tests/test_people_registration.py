"""Registration and approval, as a story: Giulia joins, Sara (a community manager) approves.

Giulia registers with her email and a password and is pending: she cannot log in until
Sara approves her. Approval opens her time account in the ledger with the community's
default limit (-600 minutes), and the audit log records that Sara approved her, and when.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .api_helpers import PASSWORD, Api, Person, assert_problem, running_api
from .conftest import Clock

GIULIA = {
    "email": "  Giulia.Rossi@Example.ORG ",
    "password": "una password lunga",
    "name": "Giulia Rossi",
    "zone": "municipio-6",
    "areas": ["childcare", "training_empowerment"],
    "languages": ["it", "en"],
    "tags": ["Homework help", "maths"],
    "availability": "Weekday afternoons",
    "availability_slots": [{"day": "tue", "start": "17:00", "end": "19:00"}],
    "contact": {"preferred": "phone", "phone": "+39 02 1234 5678"},
}


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


@pytest.fixture
async def sara(api: Api) -> Person:
    return await api.add_member("sara", name="Sara Bianchi", role="manager")


async def pending_id(api: Api, email: str) -> str:
    page = (await api.get("/api/v1/members", role="sara", status="pending")).json()
    (member,) = [m for m in page["items"] if m["email"] == email]
    return str(member["id"])


async def test_giulia_registers_waits_for_approval_and_sara_approves_her(
    api: Api, sara: Person, clock: Clock
) -> None:
    response = await api.post("/api/v1/members/register", GIULIA, role=None)
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"

    # Pending: the right password gets a 403 that says why, not a token.
    refused = await api.login("giulia.rossi@example.org", "una password lunga")
    assert_problem(refused, 403, "member-pending")
    assert "token" not in refused.json()

    giulia_id = await pending_id(api, "giulia.rossi@example.org")
    pending = (await api.get(f"/api/v1/members/{giulia_id}", role="sara")).json()
    assert pending["status"] == "pending"
    assert pending["account_id"] is None
    assert pending["zone"] == "municipio-6"
    assert pending["tags"] == ["homework help", "maths"]

    clock.advance(hours=2)
    approved = await api.post(
        f"/api/v1/members/{giulia_id}/approve", {"reason": "met at the Zone 6 lab"}, role="sara"
    )
    assert approved.status_code == 200, approved.text
    giulia = approved.json()
    assert giulia["status"] == "active"
    assert giulia["account_id"] == f"m-{giulia_id}"
    assert giulia["approved_by"] == f"member {sara.id} (manager)"
    assert giulia["approved_at"] == "2026-11-25T11:00:00.000000Z"

    # Her account exists in the ledger with the default limit.
    account = (await api.get(f"/api/v1/accounts/m-{giulia_id}", role="sara")).json()
    assert account["kind"] == "member"
    assert (account["posted"], account["min_balance"], account["max_balance"]) == (0, -600, None)

    # Now she logs in and sees herself, private fields included.
    logged_in = await api.login("GIULIA.ROSSI@example.org ", "una password lunga", as_="giulia")
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["member"]["email"] == "giulia.rossi@example.org"
    assert sorted(logged_in.json()["scopes"]) == ["manage", "read", "transfer", "write"]
    me = (await api.get("/api/v1/members/me", role="giulia")).json()
    assert me["id"] == giulia_id
    assert me["contact"] == {"preferred": "phone", "phone": "+39 02 1234 5678", "note": ""}

    # The audit log says who approved her, when, and why.
    log = (await api.get("/api/v1/audit", role="sara", subject_id=giulia_id)).json()["items"]
    assert [entry["action"] for entry in log] == ["member.registered", "member.approved"]
    approval = log[1]
    assert approval["actor_member_id"] == sara.id
    assert approval["at"] == "2026-11-25T11:00:00.000000Z"
    assert approval["reason"] == "met at the Zone 6 lab"
    assert approval["details"]["account"] == f"m-{giulia_id}"
    assert approval["details"]["min_balance"] == -600


async def test_a_manager_sets_limits_at_approval(api: Api, sara: Person) -> None:
    await api.post("/api/v1/members/register", GIULIA, role=None)
    giulia_id = await pending_id(api, "giulia.rossi@example.org")
    response = await api.post(
        f"/api/v1/members/{giulia_id}/approve",
        {"min_balance": -1200, "max_balance": 6000},
        role="sara",
    )
    assert response.status_code == 200, response.text
    account = (await api.get(f"/api/v1/accounts/m-{giulia_id}", role="sara")).json()
    assert (account["min_balance"], account["max_balance"]) == (-1200, 6000)


async def test_approving_twice_or_a_stranger_is_refused(api: Api, sara: Person) -> None:
    await api.post("/api/v1/members/register", GIULIA, role=None)
    giulia_id = await pending_id(api, "giulia.rossi@example.org")
    assert (await api.post(f"/api/v1/members/{giulia_id}/approve", role="sara")).status_code == 200
    again = await api.post(f"/api/v1/members/{giulia_id}/approve", role="sara")
    body = assert_problem(again, 409, "invalid-status")
    assert body["current_status"] == "active"
    assert "is active, not pending" in body["detail"]
    unknown = await api.post("/api/v1/members/0123456789abcdef/approve", role="sara")
    assert_problem(unknown, 404, "member-not-found")
    malformed = await api.post("/api/v1/members/not-an-id/approve", role="sara")
    assert_problem(malformed, 404, "member-not-found")


async def test_a_rejected_registration_cannot_log_in(api: Api, sara: Person) -> None:
    await api.post("/api/v1/members/register", GIULIA, role=None)
    giulia_id = await pending_id(api, "giulia.rossi@example.org")
    no_reason = await api.post(f"/api/v1/members/{giulia_id}/reject", {}, role="sara")
    assert_problem(no_reason, 422, "invalid-field")
    rejected = await api.post(
        f"/api/v1/members/{giulia_id}/reject", {"reason": "not in the area"}, role="sara"
    )
    assert rejected.json()["status"] == "rejected"
    assert_problem(
        await api.login("giulia.rossi@example.org", "una password lunga"), 403, "member-rejected"
    )
    # Other members do not see her at all.
    await api.add_member("marco")
    assert_problem(
        await api.get(f"/api/v1/members/{giulia_id}", role="marco"), 404, "member-not-found"
    )


async def test_registering_a_taken_email_answers_the_same_and_tells_the_owner(
    api: Api, sara: Person, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    first = await api.post("/api/v1/members/register", GIULIA, role=None)
    await api.mail_sent()
    second = await api.post(
        "/api/v1/members/register",
        {**GIULIA, "password": "another long password", "name": "Impostor"},
        role=None,
    )
    await api.mail_sent()
    assert (first.status_code, first.json()) == (second.status_code, second.json())
    assert "registration received" in caplog.text
    assert "already has an account" in caplog.text
    members = (await api.get("/api/v1/members", role="sara", status="pending")).json()["items"]
    assert [m["name"] for m in members] == ["Giulia Rossi"]
    # Passwords never reach the log.
    assert "una password lunga" not in caplog.text
    assert "another long password" not in caplog.text


async def test_members_see_public_profiles_only(api: Api, sara: Person) -> None:
    marco = await api.add_member("marco", zone="municipio-4", areas=["housing"])
    anna = await api.add_member("anna", zone="municipio-6", contact={"preferred": "email"})
    seen = (await api.get(f"/api/v1/members/{anna.id}", role="marco")).json()
    assert seen["name"] == "Anna"
    assert seen["preferred_contact"] == "email"
    for private in ("email", "account_id", "status", "role", "contact"):
        assert private not in seen
    directory = (await api.get("/api/v1/members", role="marco", zone="municipio-4")).json()
    assert [m["id"] for m in directory["items"]] == [marco.id]
    by_area = (await api.get("/api/v1/members", role="anna", area="housing")).json()
    assert [m["id"] for m in by_area["items"]] == [marco.id]
    assert_problem(
        await api.get("/api/v1/members", role="marco", status="pending"), 403, "forbidden"
    )
    full = (await api.get(f"/api/v1/members/{anna.id}", role="auditor")).json()
    assert full["email"] == "anna@example.org"


async def test_the_directory_pages_with_a_cursor(api: Api) -> None:
    created = [await api.add_member(f"m{n}") for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/members", role="manager", **params)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(p.id for p in created)
    assert_problem(await api.get("/api/v1/members", cursor="zz!"), 400, "invalid-request")


async def test_a_manager_registers_an_offline_member_without_email(api: Api, sara: Person) -> None:
    response = await api.post(
        "/api/v1/members",
        {"name": "Nonna Pina", "zone": "municipio-4", "reason": "no computer"},
        role="sara",
    )
    assert response.status_code == 201, response.text
    pina = response.json()
    assert (pina["status"], pina["email"]) == ("active", None)
    assert response.headers["location"] == f"/api/v1/members/{pina['id']}"
    account = (await api.get(f"/api/v1/accounts/{pina['account_id']}", role="sara")).json()
    assert account["min_balance"] == -600
    # Only an admin creates staff.
    staff = await api.post("/api/v1/members", {"name": "X", "role": "manager"}, role="sara")
    assert_problem(staff, 403, "forbidden")
    taken = await api.post("/api/v1/members", {"name": "Y", "email": "sara@example.org"})
    assert_problem(taken, 409, "email-taken")
    assert PASSWORD  # the shared test password is long enough for the rules
