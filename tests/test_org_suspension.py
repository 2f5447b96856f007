"""Suspending and reactivating an organisation, as a worked example over HTTP (SQLite and
PostgreSQL).

Acme lends its meeting room to the community; Paolo is its admin. A complaint comes in
and Sara, the community manager, suspends Acme while she looks into it: the room
disappears from search, Acme's account neither pays nor is paid, nobody can propose an
exchange to it or accept one for it, Paolo no longer acts for it, and a manager cannot
post for it either. The audit log says who did it and why, and Paolo is told. When Sara
reactivates Acme, everything works again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .api_helpers import Api, assert_problem, new_uuid, post_listing, running_api


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


async def test_acme_is_suspended_and_reactivated(api: Api) -> None:
    paolo = await api.add_member("paolo", name="Paolo")
    giulia = await api.add_member("giulia", name="Giulia")
    acme = await api.add_org("Acme", admin=paolo)
    room = await post_listing(
        api,
        "paolo",
        title="Meeting room in the evening",
        resource="space",
        organisation_id=acme["id"],
    )
    # Giulia asks to book the room; Acme has not answered yet.
    booking = {
        "id": new_uuid(),
        "provider": acme["account_id"],
        "receiver": giulia.account,
        "minutes": 60,
        "title": "Room for the homework club",
        "listing_id": room["id"],
    }
    assert (await api.post("/api/v1/exchanges", booking, role="giulia")).status_code == 201
    funded = await api.transfer(giulia.account, acme["account_id"], 30, role="giulia")
    assert funded.status_code == 201

    found = (await api.get("/api/v1/listings", role="giulia", q="meeting room")).json()
    assert [item["id"] for item in found["items"]] == [room["id"]]

    suspend = f"/api/v1/organisations/{acme['id']}/suspend"
    reactivate = f"/api/v1/organisations/{acme['id']}/reactivate"
    # A reason is required; Paolo cannot suspend or reactivate his own organisation.
    assert_problem(await api.post(suspend, {"reason": "  "}, role="manager"), 422, "invalid-field")
    assert_problem(await api.post(suspend, {"reason": "x"}, role="paolo"), 403, "forbidden")
    suspended = await api.post(suspend, {"reason": "complaint under review"}, role="manager")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    again = await api.post(suspend, {"reason": "twice"}, role="manager")
    assert assert_problem(again, 409, "invalid-status")["current_status"] == "suspended"
    log = (await api.get("/api/v1/audit", subject_id=acme["id"])).json()["items"]
    assert [(e["action"], e["reason"]) for e in log][-1] == (
        "organisation.suspended",
        "complaint under review",
    )
    told = (await api.get("/api/v1/notifications", role="paolo")).json()["items"][0]
    assert told["kind"] == "organisation.suspended"
    assert told["text"].endswith("The reason: complaint under review")

    # The room is gone from search and from Giulia's view.
    found = (await api.get("/api/v1/listings", role="giulia", q="meeting room")).json()
    assert found["items"] == []
    assert_problem(
        await api.get(f"/api/v1/listings/{room['id']}", role="giulia"), 404, "listing-not-found"
    )
    # Nobody posts for Acme: Paolo is no longer its admin in effect; a manager is refused.
    listing = {"kind": "offer", "title": "Projector", "area": "housing", "zone": "municipio-6"}
    as_paolo = await api.post(
        "/api/v1/listings", {**listing, "organisation_id": acme["id"]}, role="paolo"
    )
    assert_problem(as_paolo, 403, "forbidden")
    as_manager = await api.post(
        "/api/v1/listings", {**listing, "organisation_id": acme["id"]}, role="manager"
    )
    assert_problem(as_manager, 409, "invalid-status")
    # No exchange is proposed to Acme, or accepted for it; its account is frozen.
    proposal = {**booking, "id": new_uuid(), "listing_id": None}
    assert_problem(
        await api.post("/api/v1/exchanges", proposal, role="giulia"), 409, "account-suspended"
    )
    pending = (await api.get("/api/v1/exchanges", state="proposed")).json()["items"][0]
    accept = f"/api/v1/exchanges/{pending['id']}/accept"
    assert_problem(await api.post(accept, role="manager"), 409, "account-suspended")
    assert_problem(
        await api.transfer(giulia.account, acme["account_id"], 5, role="giulia"),
        409,
        "account-suspended",
    )
    # Paolo cannot manage Acme or spend from its account; nor can it take on employees.
    patch = await api.request(
        "PATCH", f"/api/v1/organisations/{acme['id']}", role="paolo", json={"description": "x"}
    )
    assert_problem(patch, 403, "forbidden")
    assert_problem(
        await api.transfer(acme["account_id"], giulia.account, 5, role="paolo"), 403, "forbidden"
    )
    link = await api.post(
        f"/api/v1/organisations/{acme['id']}/employees", {"member_id": giulia.id}, role="manager"
    )
    assert_problem(link, 409, "invalid-status")

    # Sara reactivates Acme (a reason again): everything works as before.
    assert_problem(await api.post(reactivate, {}, role="manager"), 422, "invalid-field")
    back = await api.post(reactivate, {"reason": "complaint resolved"}, role="manager")
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert_problem(
        await api.post(reactivate, {"reason": "again"}, role="manager"), 409, "invalid-status"
    )
    assert (await api.get("/api/v1/notifications", role="paolo")).json()["items"][0][
        "kind"
    ] == "organisation.reactivated"
    assert (await api.get(f"/api/v1/listings/{room['id']}", role="giulia")).status_code == 200
    accepted = await api.post(accept, role="paolo")
    assert accepted.status_code == 200, accepted.text
    assert (
        await api.post("/api/v1/listings", {**listing, "organisation_id": acme["id"]}, role="paolo")
    ).status_code == 201
    log = (await api.get("/api/v1/audit", subject_id=acme["id"])).json()["items"]
    assert [e["action"] for e in log if e["action"].startswith("organisation.")][-2:] == [
        "organisation.suspended",
        "organisation.reactivated",
    ]
