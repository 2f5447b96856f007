"""The meeting of demand and supply, as a worked example.

Giulia offers homework help in Zone 6 (municipio-6), in the area "training and
empowerment", on Tuesday afternoons; earlier this year she received two hours of help and
has not yet given any. Luca tutors maths too, but in Zone 4 and in person only. Paola
has posted nothing, but lists training among her competences and lives in Zone 6.

Marco posts a request for homework help for his son in Zone 6, Tuesdays 17:00-19:00.
Sara, the community manager, opens her queue: Marco's request is there, with Giulia's
offer first, because it is in the same area and zone, their Tuesdays overlap, she shares
the "homework" tag, was active recently and has received help without giving yet; then
Paola (competent, same zone), then Luca (right area, wrong zone). Sara introduces Giulia
to Marco: both get an email, the audit log records it, and the request leaves the queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.people_tables import audit_log, outbox

from .api_helpers import Api, Person, assert_problem, post_listing, running_api
from .conftest import Clock

TRAINING = "training_empowerment"
TUESDAY_AFTERNOON = [{"day": "tue", "start": "16:00", "end": "18:00"}]


@dataclass
class World:
    api: Api
    giulia: Person
    luca: Person
    paola: Person
    marco: Person
    offer: dict[str, Any]
    luca_offer: dict[str, Any]
    request: dict[str, Any]


async def rows(api: Api, table: Any) -> list[Any]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(select(table)))
    finally:
        await engine.dispose()


@pytest.fixture
async def world(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        await api.add_member("sara", role="manager")
        anna = await api.add_member("anna", zone="municipio-4")
        giulia = await api.add_member(
            "giulia", zone="municipio-6", areas=[TRAINING], availability_slots=TUESDAY_AFTERNOON
        )
        luca = await api.add_member("luca", zone="municipio-4")
        paola = await api.add_member("paola", zone="municipio-6", areas=[TRAINING, "housing"])
        marco = await api.add_member("marco", zone="municipio-6")
        # Giulia received two hours of help (she paid Anna); Luca has given an hour.
        assert (await api.transfer(giulia.account, anna.account, 120)).status_code == 201
        assert (await api.transfer(anna.account, luca.account, 60)).status_code == 201
        clock.advance(days=2)
        offer = await post_listing(
            api,
            "giulia",
            title="Homework help for primary school",
            description="Italian, maths and reading, at the library or at your home.",
            tags=["homework", "primary school"],
            availability_slots=TUESDAY_AFTERNOON,
        )
        luca_offer = await post_listing(
            api, "luca", title="Maths tutoring", zone="municipio-4", tags=["maths"]
        )
        clock.advance(hours=1)
        request = await post_listing(
            api,
            "marco",
            kind="request",
            title="Homework help for my son",
            description="He is 9 and struggles with maths homework.",
            tags=["homework"],
            availability_slots=[{"day": "tue", "start": "17:00", "end": "19:00"}],
        )
        yield World(api, giulia, luca, paola, marco, offer, luca_offer, request)


def codes(suggestion: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in suggestion["reasons"]]


async def test_the_queue_puts_giulia_first_for_marcos_request(world: World) -> None:
    api = world.api
    queue = await api.get("/api/v1/manager/queue", role="sara")
    assert queue.status_code == 200, queue.text
    (item,) = queue.json()["items"]
    assert item["request"]["id"] == world.request["id"]
    assert item["request"]["owner"] == {"type": "member", "id": world.marco.id, "name": "Marco"}
    assert item["waiting_days"] == 0
    first, second, third = item["suggestions"]

    assert first["candidate"] == {"type": "member", "id": world.giulia.id, "name": "Giulia"}
    assert first["offer"] == {"id": world.offer["id"], "title": world.offer["title"]}
    assert codes(first) == [
        "same-area",
        "shared-tags",
        "same-zone",
        "slot-overlap",
        "recent-activity",
        "received-not-given",
    ]
    details = {r["code"]: r["detail"] for r in first["reasons"]}
    assert details["same-zone"] == "also in Municipio 6"
    assert details["slot-overlap"] == "both available Tuesdays 17:00-18:00"
    assert details["received-not-given"] == "has received 2 h of help and not yet given"
    assert first["score"] == sum(r["weight"] for r in first["reasons"]) == 105

    # Paola posted nothing but is competent and in Zone 6; Luca is in Zone 4.
    assert (second["candidate"]["id"], second["offer"]) == (world.paola.id, None)
    assert codes(second) == ["profile-area", "same-zone", "recent-activity"]
    assert third["candidate"]["id"] == world.luca.id
    assert codes(third) == ["same-area", "other-zone", "recent-activity"]
    assert first["score"] > second["score"] > third["score"]

    # The request's owner sees the same ranking; another member may not.
    mine = await api.get(f"/api/v1/requests/{world.request['id']}/suggestions", role="marco")
    assert [s["candidate"]["id"] for s in mine.json()["suggestions"]] == [
        world.giulia.id,
        world.paola.id,
        world.luca.id,
    ]
    assert_problem(
        await api.get(f"/api/v1/requests/{world.request['id']}/suggestions", role="luca"),
        403,
        "forbidden",
    )
    # An offer has no suggestions.
    assert_problem(
        await api.get(f"/api/v1/requests/{world.offer['id']}/suggestions", role="giulia"),
        404,
        "listing-not-found",
    )


async def test_sara_introduces_giulia_to_marco(world: World) -> None:
    api = world.api
    body = {
        "request_id": world.request["id"],
        "member_id": world.giulia.id,
        "offer_id": world.offer["id"],
        "note": "Giulia is at the library on Tuesdays.",
    }
    made = await api.post("/api/v1/introductions", body, role="sara")
    assert made.status_code == 201, made.text
    intro = made.json()
    assert intro["helper"] == {"type": "member", "id": world.giulia.id}
    assert intro["offer_id"] == world.offer["id"]

    # Both are told, by email, with names and listings but no contact details.
    mails = [m for m in await rows(api, outbox) if m.kind == "introduction"]
    assert sorted(m.recipient for m in mails) == [world.giulia.email, world.marco.email]
    to_marco = next(m for m in mails if m.recipient == world.marco.email)
    assert "Giulia" in to_marco.body and "Homework help for primary school" in to_marco.body
    assert "Giulia is at the library on Tuesdays." in to_marco.body
    assert world.giulia.email not in to_marco.body
    # Audited, with who introduced whom.
    (record,) = [r for r in await rows(api, audit_log) if r.action == "introduction.created"]
    assert record.subject_id == intro["id"]
    assert f"member:{world.giulia.id}" in record.details

    # Marco's request leaves the queue; Giulia now ranks lower for it, and says why.
    queue = (await api.get("/api/v1/manager/queue", role="sara")).json()
    assert queue["items"] == []
    again = (
        await api.get(f"/api/v1/requests/{world.request['id']}/suggestions", role="sara")
    ).json()
    giulia = next(s for s in again["suggestions"] if s["candidate"]["id"] == world.giulia.id)
    assert "already-introduced" in codes(giulia)
    assert giulia["score"] == 105 - 20

    # Once per request and helper; and staff can list what was done.
    assert_problem(
        await api.post("/api/v1/introductions", body, role="sara"), 409, "already-introduced"
    )
    listed = await api.get("/api/v1/introductions", role="auditor", request_id=world.request["id"])
    assert [i["id"] for i in listed.json()["items"]] == [intro["id"]]


async def test_introductions_are_checked(world: World) -> None:
    api = world.api
    request_id = world.request["id"]

    async def introduce(role: str = "sara", **fields: Any) -> Any:
        body = {"request_id": request_id, "member_id": world.luca.id, **fields}
        return await api.post("/api/v1/introductions", body, role=role)

    assert_problem(await introduce(role="giulia"), 403, "forbidden")
    assert_problem(await introduce(role="auditor"), 403, "forbidden")
    assert_problem(await introduce(member_id=world.marco.id), 422, "invalid-field")
    assert_problem(await introduce(request_id=world.offer["id"]), 422, "not-a-request")
    assert_problem(await introduce(offer_id=world.offer["id"]), 422, "invalid-field")
    assert_problem(await introduce(member_id="0123456789abcdef"), 404, "member-not-found")
    assert_problem(await introduce(request_id="0123456789abcdef"), 404, "listing-not-found")
    both = await introduce(organisation_id="0123456789abcdef")
    assert_problem(both, 422, "invalid-field")
    # Luca, with his own offer, is fine; a closed request cannot be introduced any more.
    assert (await introduce(offer_id=world.luca_offer["id"])).status_code == 201
    closed = await api.post(f"/api/v1/listings/{request_id}/close", role="marco")
    assert closed.status_code == 200
    assert_problem(await introduce(member_id=world.paola.id), 409, "invalid-status")


async def test_the_queue_pages_oldest_first_and_filters(world: World, clock: Clock) -> None:
    api = world.api
    later = []
    for n in range(3):
        clock.advance(minutes=5)
        later.append(
            await post_listing(
                api, "paola", kind="request", title=f"Help moving boxes {n}", area="housing"
            )
        )
    ids = [world.request["id"], *(listing["id"] for listing in later)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "suggestions": 0}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/manager/queue", role="manager", **params)).json()
        seen += [item["request"]["id"] for item in page["items"]]
        assert all(item["suggestions"] == [] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    housing = (await api.get("/api/v1/manager/queue", role="sara", area="housing")).json()
    assert [item["request"]["id"] for item in housing["items"]] == ids[1:]
    zone4 = (await api.get("/api/v1/manager/queue", role="sara", zone="municipio-4")).json()
    assert zone4["items"] == []
    for bad in ({"zone": "mars"}, {"area": "cooking"}, {"cursor": "x"}, {"suggestions": 11}):
        assert_problem(
            await api.get("/api/v1/manager/queue", role="sara", **bad), 400, "invalid-request"
        )
    # Members may not read the queue; auditors may.
    assert_problem(await api.get("/api/v1/manager/queue", role="marco"), 403, "forbidden")
    assert (await api.get("/api/v1/manager/queue", role="auditor")).status_code == 200
