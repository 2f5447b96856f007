"""Listings lapse, their owners are reminded once, and renewal is one call.

These run the functions the scheduled jobs will call (`send_expiry_reminders`,
`expire_listings`) in the app's own event loop, with the test's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.listings_tables import listings as listings_table
from scambio.store.people_tables import outbox
from scambio.timebank import listings
from scambio.timebank.db import reading

from .api_helpers import Api, Person, in_app, post_listing, running_api
from .conftest import Clock

REMINDER = "listing-expiry-reminder"


@dataclass
class World:
    api: Api
    giulia: Person
    marco: Person
    paolo: Person
    acme: dict[str, Any]


@pytest.fixture
async def world(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        giulia = await api.add_member("giulia", zone="municipio-6")
        marco = await api.add_member("marco", zone="municipio-4")
        paolo = await api.add_member("paolo", zone="municipio-4")
        acme = await api.add_org("Acme S.p.A.", admin=paolo)
        yield World(api, giulia, marco, paolo, acme)


async def reminders(api: Api) -> list[Any]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(outbox).order_by(outbox.c.id))
            return [row for row in rows if row.kind == REMINDER]
    finally:
        await engine.dispose()


async def stored_status(api: Api, listing_id: str) -> str:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            query = select(listings_table.c.status).where(listings_table.c.id == listing_id)
            return str((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def due_ids(tb: Any) -> list[str]:
    async with reading(tb.engine) as conn:
        return [listing.id for listing in await listings.due_reminders(conn, tb.clock())]


async def test_marco_is_reminded_once_per_period(world: World, clock: Clock) -> None:
    api = world.api
    request = await post_listing(
        api, "marco", kind="request", title="Help moving furniture", expires_in_days=10
    )
    offer = await post_listing(api, "giulia", title="Homework help")
    assert in_app(api, listings.send_expiry_reminders) == 0

    clock.advance(days=4)  # Marco's request lapses in 6 days.
    assert in_app(api, due_ids) == [request["id"]]
    assert in_app(api, listings.send_expiry_reminders) == 1
    assert in_app(api, listings.send_expiry_reminders) == 0
    assert in_app(api, due_ids) == []
    (mail,) = await reminders(api)
    assert mail.recipient == world.marco.email
    assert "Help moving furniture" in mail.subject
    assert "expires in 6 days (2026-12-05)" in mail.body
    assert f"POST /api/v1/listings/{request['id']}/renew" in mail.body

    # One click renews for another 60 days from now; the next period reminds again, once.
    renewed = await api.post(f"/api/v1/listings/{request['id']}/renew", role="marco")
    assert renewed.json()["expires_at"].startswith("2027-01-28")
    clock.advance(days=54)  # 6 days before the new expiry.
    assert (await api.login(world.marco.email, as_="marco")).status_code == 200
    assert in_app(api, listings.send_expiry_reminders) == 2  # Giulia's offer is due too.
    assert in_app(api, listings.send_expiry_reminders) == 0
    mails = await reminders(api)
    assert sorted(m.recipient for m in mails[1:]) == [world.giulia.email, world.marco.email]
    assert offer["id"] not in in_app(api, due_ids)


async def test_lapsed_listings_expire_and_renew(world: World, clock: Clock) -> None:
    api = world.api
    offer = await post_listing(api, "giulia", title="Homework help", expires_in_days=3)
    paused = await post_listing(api, "giulia", title="Maths tutoring", expires_in_days=3)
    lasting = await post_listing(api, "giulia", title="Reading stories", expires_in_days=30)
    await api.request(
        "PATCH", f"/api/v1/listings/{paused['id']}", role="giulia", json={"status": "paused"}
    )
    clock.advance(days=3)
    # Lapsed: it reads as expired and search hides it, before the job has run.
    view = await api.get(f"/api/v1/listings/{offer['id']}", role="marco")
    assert view.json()["status"] == "expired"
    assert await stored_status(api, offer["id"]) == "active"
    found = await api.get("/api/v1/listings", role="marco")
    assert [item["id"] for item in found.json()["items"]] == [lasting["id"]]
    mine = await api.get("/api/v1/listings", role="giulia", member="me", status="expired")
    assert sorted(item["id"] for item in mine.json()["items"]) == sorted(
        [offer["id"], paused["id"]]
    )
    # Resuming a lapsed listing is refused: renew it instead.
    resumed = await api.request(
        "PATCH", f"/api/v1/listings/{paused['id']}", role="giulia", json={"status": "active"}
    )
    assert resumed.status_code == 409

    assert in_app(api, listings.expire_listings) == 2
    assert in_app(api, listings.expire_listings) == 0
    assert await stored_status(api, offer["id"]) == "expired"
    assert await stored_status(api, paused["id"]) == "expired"
    assert await stored_status(api, lasting["id"]) == "active"

    # An expired listing can still be edited, and renewing makes it active again.
    edited = await api.request(
        "PATCH", f"/api/v1/listings/{offer['id']}", role="giulia", json={"title": "Compiti"}
    )
    assert edited.json()["status"] == "expired"
    renewed = await api.post(f"/api/v1/listings/{offer['id']}/renew", role="giulia")
    assert renewed.json()["status"] == "active"
    assert renewed.json()["expires_at"].startswith("2027-01-27")
    found = await api.get("/api/v1/listings", role="marco")
    assert offer["id"] in [item["id"] for item in found.json()["items"]]


async def test_who_is_reminded(world: World, clock: Clock) -> None:
    api = world.api
    room = await post_listing(
        api,
        "paolo",
        title="Meeting room",
        resource="space",
        organisation_id=world.acme["id"],
        zone="municipio-4",
        expires_in_days=5,
    )
    offline = await api.post("/api/v1/members", {"name": "Ines", "zone": "municipio-6"})
    ines = offline.json()["id"]
    await post_listing(api, "manager", kind="request", member_id=ines, expires_in_days=5)
    paused = await post_listing(api, "giulia", expires_in_days=5)
    await api.request(
        "PATCH", f"/api/v1/listings/{paused['id']}", role="giulia", json={"status": "paused"}
    )
    suspended = await post_listing(api, "marco", expires_in_days=5)
    await api.post(f"/api/v1/members/{world.marco.id}/suspend", {"reason": "check"})

    # Due: the organisation's (its admin hears) and Ines's (no email: marked, not mailed).
    # Not due: a paused listing (hidden anyway), a suspended member's.
    due = in_app(api, due_ids)
    assert room["id"] in due and paused["id"] not in due and suspended["id"] not in due
    assert in_app(api, listings.send_expiry_reminders) == 2
    (mail,) = await reminders(api)
    assert mail.recipient == world.paolo.email
    assert "Meeting room" in mail.body
    await api.mail_sent()
    assert in_app(api, listings.send_expiry_reminders) == 0
