"""Offers and requests over HTTP, as stories.

Giulia offers homework help; she edits it, pauses it while on holiday, resumes it and
finally closes it. Acme, a company, offers its meeting room in the evenings: only Paolo,
Acme's admin (or a manager), may post and change Acme's listings; Bea, admin of another
company, may not. Sara, the community manager, posts a request for Ines, who has no
computer: that is audited. Auditors read and never write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.people_tables import audit_log

from .api_helpers import Api, Person, assert_problem, post_listing, running_api
from .conftest import Clock

HTML = "<script>alert('x')</script><b>bold</b>"


@dataclass
class World:
    api: Api
    giulia: Person
    marco: Person
    paolo: Person
    bea: Person
    acme: dict[str, Any]


@pytest.fixture
async def world(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        await api.add_member("sara", role="manager")
        giulia = await api.add_member("giulia", zone="municipio-6")
        marco = await api.add_member("marco", zone="municipio-4")
        paolo = await api.add_member("paolo")
        bea = await api.add_member("bea")
        acme = await api.add_org("Acme S.p.A.", admin=paolo)
        await api.add_org("Beta Onlus", admin=bea, kind="nonprofit")
        yield World(api, giulia, marco, paolo, bea, acme)


async def audit_actions(api: Api) -> list[tuple[str, str]]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(audit_log.c.action, audit_log.c.subject_type))
            return [(row.action, row.subject_type) for row in rows]
    finally:
        await engine.dispose()


async def test_giulias_offer_from_posting_to_closing(world: World, clock: Clock) -> None:
    api = world.api
    posted = await api.post(
        "/api/v1/listings",
        {
            "kind": "offer",
            "title": "  Aiuto compiti —  scuola primaria ",
            "description": "Italiano e matematica.\nIn biblioteca il martedì.",
            "area": "training_empowerment",
            "tags": ["Compiti", "scuola", "compiti"],
            "availability": "Tuesday afternoons",
            "availability_slots": [{"day": "tue", "start": "16:00", "end": "18:00"}],
        },
        role="giulia",
    )
    assert posted.status_code == 201, posted.text
    offer = posted.json()
    assert posted.headers["location"] == f"/api/v1/listings/{offer['id']}"
    assert offer["title"] == "Aiuto compiti — scuola primaria"
    assert offer["tags"] == ["compiti", "scuola"]
    # The zone defaults to Giulia's; in person by default; a service; 60 days to live.
    assert (offer["zone"], offer["mode"], offer["resource"]) == (
        "municipio-6",
        "in_person",
        "service",
    )
    assert offer["owner"] == {"type": "member", "id": world.giulia.id, "name": "Giulia"}
    assert offer["posted_by"] == world.giulia.id
    assert offer["status"] == "active"
    assert offer["created_at"].startswith("2026-11-25")
    assert offer["expires_at"].startswith("2027-01-24")
    url = f"/api/v1/listings/{offer['id']}"
    assert (await api.get(url, role="marco")).json() == offer

    # Edits change only what is sent; others may not edit.
    changed = await api.request(
        "PATCH", url, role="giulia", json={"mode": "either", "tags": ["homework"]}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["mode"], changed.json()["tags"]) == ("either", ["homework"])
    assert changed.json()["title"] == offer["title"]
    assert_problem(
        await api.request("PATCH", url, role="marco", json={"title": "Mine now"}), 403, "forbidden"
    )
    assert_problem(await api.post(f"{url}/close", role="marco"), 403, "forbidden")
    assert_problem(await api.post(f"{url}/renew", role="auditor"), 403, "forbidden")

    # Paused: hidden from search, still readable by id; resumed: back.
    paused = await api.request("PATCH", url, role="giulia", json={"status": "paused"})
    assert paused.json()["status"] == "paused"
    found = (await api.get("/api/v1/listings", role="marco")).json()["items"]
    assert offer["id"] not in [item["id"] for item in found]
    assert (await api.get(url, role="marco")).json()["status"] == "paused"
    resumed = await api.request("PATCH", url, role="giulia", json={"status": "active"})
    assert resumed.json()["status"] == "active"
    bad_status = await api.request("PATCH", url, role="giulia", json={"status": "closed"})
    assert_problem(bad_status, 422, "invalid-field")

    # Renewal extends from now; closing is final.
    clock.advance(days=20)
    renewed = (await api.post(f"{url}/renew", role="giulia")).json()
    assert renewed["expires_at"].startswith("2027-02-13")
    assert renewed["renewed_at"].startswith("2026-12-15")
    closed = await api.post(f"{url}/close", {"reason": "found enough families"}, role="giulia")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
    assert_problem(await api.post(f"{url}/close", role="giulia"), 409, "invalid-status")
    assert_problem(await api.post(f"{url}/renew", role="giulia"), 409, "invalid-status")
    edit_closed = await api.request("PATCH", url, role="giulia", json={"title": "Again"})
    assert_problem(edit_closed, 409, "invalid-status")
    # The owner's own acts are not audited (they are the owner's business).
    assert [a for a in await audit_actions(api) if a[1] == "listing"] == []


async def test_html_is_stored_and_returned_as_text(world: World) -> None:
    listing = await post_listing(
        world.api, "giulia", title=HTML[:120], description=HTML, tags=["<b>"]
    )
    assert listing["title"] == HTML[:120]
    assert listing["description"] == HTML
    assert listing["tags"] == ["<b>"]
    raw = await world.api.get(f"/api/v1/listings/{listing['id']}", role="marco")
    assert raw.headers["content-type"].startswith("application/json")
    assert "<script>" in raw.json()["description"]


async def test_places_need_a_zone_unless_remote(world: World) -> None:
    api = world.api
    paolo_has_no_zone = {"kind": "offer", "title": "Excel course", "area": "housing"}
    assert_problem(
        await api.post("/api/v1/listings", paolo_has_no_zone, role="paolo"), 422, "invalid-field"
    )
    remote = await api.post(
        "/api/v1/listings", {**paolo_has_no_zone, "mode": "remote"}, role="paolo"
    )
    assert remote.status_code == 201 and remote.json()["zone"] is None
    url = f"/api/v1/listings/{remote.json()['id']}"
    assert_problem(
        await api.request("PATCH", url, role="paolo", json={"mode": "in_person"}),
        422,
        "invalid-field",
    )
    moved = await api.request(
        "PATCH", url, role="paolo", json={"mode": "either", "zone": "municipio-4"}
    )
    assert moved.json()["zone"] == "municipio-4"
    unknown = await api.post(
        "/api/v1/listings", {**paolo_has_no_zone, "zone": "mars"}, role="paolo"
    )
    assert_problem(unknown, 422, "unknown-zone")
    short = await api.post(
        "/api/v1/listings",
        {**paolo_has_no_zone, "mode": "remote", "expires_in_days": 7},
        role="paolo",
    )
    assert short.json()["expires_at"].startswith("2026-12-02")
    too_long = await api.post(
        "/api/v1/listings",
        {**paolo_has_no_zone, "mode": "remote", "expires_in_days": 61},
        role="paolo",
    )
    assert_problem(too_long, 422, "invalid-field")


async def test_acme_posts_its_meeting_room_through_its_admin(world: World) -> None:
    api, acme = world.api, world.acme
    room = {
        "kind": "offer",
        "resource": "space",
        "title": "Meeting room for 12, weekday evenings",
        "area": "employment_flexible_work",
        "zone": "municipio-4",
        "organisation_id": acme["id"],
        "availability_slots": [{"day": "wed", "start": "18:00", "end": "21:00"}],
    }
    assert_problem(await api.post("/api/v1/listings", room, role="bea"), 403, "forbidden")
    assert_problem(await api.post("/api/v1/listings", room, role="giulia"), 403, "forbidden")
    assert_problem(await api.post("/api/v1/listings", room, role="auditor"), 403, "forbidden")
    posted = await api.post("/api/v1/listings", room, role="paolo")
    assert posted.status_code == 201, posted.text
    listing = posted.json()
    assert listing["owner"] == {"type": "organisation", "id": acme["id"], "name": "Acme S.p.A."}
    assert (listing["resource"], listing["posted_by"]) == ("space", world.paolo.id)
    url = f"/api/v1/listings/{listing['id']}"
    assert_problem(
        await api.request("PATCH", url, role="bea", json={"title": "Ours"}), 403, "forbidden"
    )
    # Paolo, another Acme admin, and a manager (audited) may change it.
    renamed = await api.request("PATCH", url, role="paolo", json={"title": "Sala riunioni"})
    assert renamed.json()["title"] == "Sala riunioni"
    equipment = await api.request("PATCH", url, role="sara", json={"resource": "equipment"})
    assert equipment.json()["resource"] == "equipment"
    assert ("listing.changed", "listing") in await audit_actions(api)
    # Organisation listings are found by organisation.
    found = await api.get("/api/v1/listings", role="marco", organisation=acme["id"])
    assert [item["id"] for item in found.json()["items"]] == [listing["id"]]
    # An unknown organisation, or one that is not an organisation id.
    assert_problem(
        await api.post(
            "/api/v1/listings", {**room, "organisation_id": "0123456789abcdef"}, role="sara"
        ),
        404,
        "organisation-not-found",
    )
    both = {**room, "member_id": world.paolo.id}
    assert_problem(await api.post("/api/v1/listings", both, role="sara"), 422, "invalid-field")


async def test_a_manager_posts_for_a_member_without_a_computer(world: World) -> None:
    api = world.api
    ines = await api.post("/api/v1/members", {"name": "Ines", "zone": "municipio-6"}, role="sara")
    ines_id = ines.json()["id"]
    body = {
        "kind": "request",
        "title": "Company for a walk",
        "area": "health_wellbeing",
        "member_id": ines_id,
    }
    # A member may not post for someone else; the operator token must say for whom.
    assert_problem(await api.post("/api/v1/listings", body, role="giulia"), 403, "forbidden")
    no_owner = {k: v for k, v in body.items() if k != "member_id"}
    assert_problem(await api.post("/api/v1/listings", no_owner, role="manager"), 403, "forbidden")
    posted = await api.post("/api/v1/listings", body, role="sara")
    assert posted.status_code == 201, posted.text
    listing = posted.json()
    assert listing["owner"]["id"] == ines_id and listing["zone"] == "municipio-6"
    renewed = await api.post(f"/api/v1/listings/{listing['id']}/renew", role="manager")
    assert renewed.status_code == 200
    closed = await api.post(
        f"/api/v1/listings/{listing['id']}/close", {"reason": "Ines moved"}, role="sara"
    )
    assert closed.status_code == 200
    actions = [a for a, kind in await audit_actions(api) if kind == "listing"]
    assert actions == ["listing.created", "listing.renewed", "listing.closed"]
    # A member's own posting for themselves with their own id is fine, and not audited.
    mine = await api.post("/api/v1/listings", {**body, "member_id": world.giulia.id}, role="giulia")
    assert mine.status_code == 201
    # Suspended members cannot be posted for.
    await api.post(f"/api/v1/members/{world.marco.id}/suspend", {"reason": "check"}, role="sara")
    suspended = await api.post(
        "/api/v1/listings", {**body, "member_id": world.marco.id}, role="sara"
    )
    assert_problem(suspended, 409, "invalid-status")


async def test_suspended_owners_listings_are_hidden(world: World) -> None:
    api = world.api
    offer = await post_listing(api, "marco", title="Bike repairs", zone="municipio-4")
    url = f"/api/v1/listings/{offer['id']}"
    assert (await api.get(url, role="giulia")).status_code == 200
    await api.post(f"/api/v1/members/{world.marco.id}/suspend", {"reason": "check"}, role="sara")
    assert_problem(await api.get(url, role="giulia"), 404, "listing-not-found")
    found = (await api.get("/api/v1/listings", role="giulia")).json()["items"]
    assert offer["id"] not in [item["id"] for item in found]
    # Staff still see it, by id and when looking at Marco's listings.
    assert (await api.get(url, role="auditor")).status_code == 200
    staff = await api.get("/api/v1/listings", role="sara", member=world.marco.id)
    assert [item["id"] for item in staff.json()["items"]] == [offer["id"]]
    await api.post(f"/api/v1/members/{world.marco.id}/reactivate", role="sara")
    assert (await api.get(url, role="giulia")).status_code == 200
