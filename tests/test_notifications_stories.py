"""In-app notifications as worked examples, over HTTP on SQLite and PostgreSQL.

Giulia offers homework help in Zone 6 and Marco asks for it. Each step of their exchange
tells the other one, in the app (always) and by email (as each chooses); the one who acts
is not told of their own act. Signora Pina has no email: she still has her notifications,
for the manager who helps her to read. A dispute reaches Sara, the community manager. A
listing about to lapse, an introduction and an employee link proposal notify too, and a
digest gathers what nobody read and no email covered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.notifications_tables import notifications as notifications_table
from scambio.store.people_tables import outbox
from scambio.timebank.listings import send_expiry_reminders
from scambio.timebank.notifications import KINDS, send_digests

from .api_helpers import Api, Person, assert_problem, in_app, new_uuid, post_listing, running_api
from .conftest import Clock


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


async def inbox(api: Api, who: str, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/notifications", role=who, **params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def kinds(api: Api, who: str) -> list[str]:
    return [n["kind"] for n in (await inbox(api, who))["items"]]


async def rows(api: Api, table: Any) -> list[Any]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(select(table)))
    finally:
        await engine.dispose()


async def mails(api: Api, prefix: str = "") -> list[tuple[str, str]]:
    found = sorted(await rows(api, outbox), key=lambda m: m.id)
    return [(m.kind, m.recipient) for m in found if m.kind.startswith(prefix)]


async def act(api: Api, exchange_id: str, action: str, who: str, body: Any = None) -> None:
    response = await api.post(f"/api/v1/exchanges/{exchange_id}/{action}", body, role=who)
    assert response.status_code == 200, response.text


async def propose(
    api: Api, provider: Person, receiver: Person, minutes: int, title: str, **extra: Any
) -> str:
    body = {
        "id": new_uuid(),
        "provider": provider.account,
        "receiver": receiver.account,
        "minutes": minutes,
        "title": title,
        **extra,
    }
    response = await api.post("/api/v1/exchanges", body, role=provider.key)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_giulia_and_marco_follow_their_exchange_in_the_app(api: Api, clock: Clock) -> None:
    giulia = await api.add_member("giulia", name="Giulia", zone="municipio-6")
    marco = await api.add_member("marco", name="Marco", zone="municipio-6")
    offer = await post_listing(api, "giulia", title="Homework help")

    # Giulia proposes 90 minutes from her offer: Marco is told, Giulia (who acted) is not.
    exchange_id = await propose(api, giulia, marco, 90, "Homework help", listing_id=offer["id"])
    page = await inbox(api, "marco")
    assert page["unread_count"] == 1
    (proposal,) = page["items"]
    assert proposal["kind"] == "exchange.proposed"
    assert proposal["text"] == (
        "Giulia proposes \u201cHomework help\u201d, 90 minutes: accept or decline it."
    )
    assert (proposal["exchange_id"], proposal["listing_id"]) == (exchange_id, offer["id"])
    assert proposal["read_at"] is None and proposal["emailed"] is True
    assert (await inbox(api, "giulia"))["items"] == []

    # Marco accepts; Giulia is told. Giulia marks it done (75 minutes); Marco is asked
    # to confirm by the date after which it confirms itself. Marco confirms; Giulia hears.
    await act(api, exchange_id, "accept", "marco")
    clock.advance(days=1)
    await act(api, exchange_id, "done", "giulia", {"minutes": 75})
    await act(api, exchange_id, "confirm", "marco")
    assert await kinds(api, "giulia") == ["exchange.confirmed", "exchange.accepted"]
    assert await kinds(api, "marco") == ["exchange.done", "exchange.proposed"]
    done = (await inbox(api, "marco"))["items"][0]
    assert done["text"] == (
        "\u201cHomework help\u201d is reported done, 75 minutes: confirm it or open a dispute "
        "by 2026-12-03, or it is confirmed automatically."
    )
    confirmed = (await inbox(api, "giulia"))["items"][0]
    assert confirmed["text"] == "\u201cHomework help\u201d is confirmed: 75 minutes moved."
    # By default only what needs someone to act also goes to email: not the confirmation.
    assert confirmed["emailed"] is False
    assert await mails(api, "exchange-") == [
        ("exchange-proposed", marco.email),
        ("exchange-accepted", giulia.email),
        ("exchange-done", marco.email),
    ]

    # Marco reads the request to confirm; the proposal stays unread.
    read = await api.post(f"/api/v1/notifications/{done['id']}/read", role="marco")
    assert read.status_code == 200 and read.json()["read_at"] == "2026-11-26T09:00:00.000000Z"
    clock.advance(hours=1)
    again = await api.post(f"/api/v1/notifications/{done['id']}/read", role="marco")
    assert again.json()["read_at"] == read.json()["read_at"]
    unread = await inbox(api, "marco", unread="true")
    assert [n["kind"] for n in unread["items"]] == ["exchange.proposed"]
    assert unread["unread_count"] == 1
    # Nobody else can touch Marco's notifications: for them they do not exist.
    assert_problem(
        await api.post(f"/api/v1/notifications/{done['id']}/read", role="giulia"),
        404,
        "notification-not-found",
    )
    everything = await api.post("/api/v1/notifications/read-all", role="marco")
    assert everything.json() == {"marked": 1, "unread_count": 0}


async def test_read_all_up_to_what_was_shown_and_paging(api: Api) -> None:
    giulia = await api.add_member("giulia")
    marco = await api.add_member("marco")
    ids = [await propose(api, giulia, marco, 10 + n, f"Lesson {n}") for n in range(5)]
    first = await inbox(api, "marco", limit=2)
    assert [n["exchange_id"] for n in first["items"]] == [ids[4], ids[3]]
    second = await inbox(api, "marco", limit=2, cursor=first["next_cursor"])
    third = await inbox(api, "marco", limit=2, cursor=second["next_cursor"])
    assert [n["exchange_id"] for n in second["items"] + third["items"]] == ids[2::-1]
    assert third["next_cursor"] is None
    # Marco's app showed the first page; a sixth proposal arrives before he taps "read
    # all": it stays unread.
    shown = first["items"][0]["id"]
    await propose(api, giulia, marco, 30, "Lesson 5")
    marked = await api.post("/api/v1/notifications/read-all", {"up_to": shown}, role="marco")
    assert marked.json() == {"marked": 5, "unread_count": 1}
    assert [n["text"][:10] for n in (await inbox(api, "marco", unread="true"))["items"]] == [
        "Giulia pro"
    ]


async def test_marco_chooses_what_also_comes_by_email(api: Api) -> None:
    giulia = await api.add_member("giulia")
    marco = await api.add_member("marco")
    defaults = (await api.get("/api/v1/members/me/notification-settings", role="marco")).json()
    assert defaults == {"email": KINDS, "digest": True, "defaults": KINDS, "updated_at": None}

    # Marco wants no email when something is done (he checks the app), but one when he
    # is paid; and no digest.
    wanted = {"email": {"exchange.done": False, "exchange.confirmed": True}, "digest": False}
    saved = await api.request(
        "PUT", "/api/v1/members/me/notification-settings", role="marco", json=wanted
    )
    assert saved.status_code == 200, saved.text
    settings = saved.json()
    assert settings["email"]["exchange.done"] is False
    assert settings["email"]["exchange.confirmed"] is True
    assert settings["email"]["exchange.proposed"] is True  # left out: the default
    assert settings["digest"] is False

    # Giulia helps Marco: the "done" reaches Marco in the app only.
    exchange_id = await propose(api, giulia, marco, 30, "Shopping")
    await act(api, exchange_id, "accept", "marco")
    await act(api, exchange_id, "done", "giulia")
    done = (await inbox(api, "marco"))["items"][0]
    assert (done["kind"], done["emailed"]) == ("exchange.done", False)
    # Marco helps Giulia: his payment comes by email.
    back = await propose(api, marco, giulia, 20, "Bike repair")
    await act(api, back, "accept", "giulia")
    await act(api, back, "done", "marco")
    await act(api, back, "confirm", "giulia")
    paid = (await inbox(api, "marco"))["items"][0]
    assert (paid["kind"], paid["emailed"]) == ("exchange.confirmed", True)
    assert [m[0] for m in await mails(api, "exchange-") if m[1] == marco.email] == [
        "exchange-proposed",  # Giulia's proposal
        "exchange-accepted",  # Giulia accepted his; no "done" for Giulia's
        "exchange-confirmed",
    ]

    # An unknown kind is refused, and nothing changes.
    bad = {"email": {"exchange.teleported": True}, "digest": True}
    refused = await api.request(
        "PUT", "/api/v1/members/me/notification-settings", role="marco", json=bad
    )
    assert assert_problem(refused, 422, "invalid-field")["field"] == "email"
    after = (await api.get("/api/v1/members/me/notification-settings", role="marco")).json()
    assert after == settings


async def test_a_dispute_reaches_the_manager_and_pina_reads_hers_with_help(api: Api) -> None:
    giulia = await api.add_member("giulia", name="Giulia")
    marco = await api.add_member("marco", name="Marco")
    await api.add_member("sara", name="Sara", role="manager")
    exchange_id = await propose(api, giulia, marco, 60, "Ironing")
    await act(api, exchange_id, "accept", "marco")
    await act(api, exchange_id, "done", "giulia")
    await act(api, exchange_id, "dispute", "marco", {"reason": "it took half the time"})
    # Giulia and Sara are told; Marco, who disputed, is not told of his own dispute.
    assert (await kinds(api, "giulia"))[0] == "exchange.disputed"
    assert await kinds(api, "sara") == ["exchange.disputed"]
    assert (await kinds(api, "marco"))[0] == "exchange.done"
    await act(api, exchange_id, "resolve", "sara", {"minutes": 30, "reason": "half"})
    for who in ("giulia", "marco"):
        resolved = (await inbox(api, who))["items"][0]
        assert (
            resolved["text"]
            == "The dispute about \u201cIroning\u201d was resolved: 30 minutes moved."
        )
    assert await kinds(api, "sara") == ["exchange.disputed"]

    # Signora Pina has no email and no smartphone; a manager records her exchange. She
    # gets her notification all the same (no email), as does Giulia (with one).
    pina = await api.post("/api/v1/members", {"name": "Pina"}, role="manager")
    pina_account = pina.json()["account_id"]
    body = {
        "id": new_uuid(),
        "provider": giulia.account,
        "receiver": pina_account,
        "minutes": 45,
        "title": "Company and a walk",
        "reason": "Pina has no phone",
    }
    recorded = await api.post("/api/v1/exchanges/record", body, role="manager")
    assert recorded.status_code == 201, recorded.text
    found = [r for r in await rows(api, notifications_table) if r.kind == "exchange.recorded"]
    assert sorted((r.member_id, bool(r.emailed)) for r in found) == sorted(
        [(pina.json()["id"], False), (giulia.id, True)]
    )


async def test_lapsing_listings_introductions_and_links_notify_too(api: Api, clock: Clock) -> None:
    giulia = await api.add_member("giulia", name="Giulia")
    marco = await api.add_member("marco", name="Marco")
    paolo = await api.add_member("paolo", name="Paolo")
    request = await post_listing(api, "marco", kind="request", title="Help moving furniture")

    # A manager introduces Giulia to Marco's request: both are told.
    intro = await api.post(
        "/api/v1/introductions",
        {"request_id": request["id"], "member_id": giulia.id},
        role="manager",
    )
    assert intro.status_code == 201, intro.text
    to_marco = (await inbox(api, "marco"))["items"][0]
    assert to_marco["kind"] == "introduction"
    assert to_marco["text"] == (
        "A community manager introduced you to Giulia, who could help with your request "
        "\u201cHelp moving furniture\u201d."
    )
    assert (to_marco["listing_id"], to_marco["introduction_id"]) == (
        request["id"],
        intro.json()["id"],
    )
    assert (await inbox(api, "giulia"))["items"][0]["text"].startswith(
        "A community manager introduced you to Marco"
    )

    # Marco's request is about to lapse: he is reminded, in the app and by email.
    clock.advance(days=54)
    assert in_app(api, send_expiry_reminders) == 1
    for person in (giulia, marco, paolo):  # their tokens lasted 30 days
        assert (await api.login(person.email, as_=person.key)).status_code == 200
    reminder = (await inbox(api, "marco"))["items"][0]
    assert reminder["kind"] == "listing.expiring"
    assert reminder["text"] == (
        "Your request \u201cHelp moving furniture\u201d expires in 6 days (2027-01-24): renew it "
        "if it is still current."
    )
    assert ("listing-expiry-reminder", marco.email) in await mails(api)

    # Acme (Paolo is its admin) proposes to link Giulia as an employee: she is asked.
    acme = await api.add_org("Acme", admin=paolo)
    link = await api.post(
        f"/api/v1/organisations/{acme['id']}/employees", {"member_id": giulia.id}, role="paolo"
    )
    assert link.status_code == 201, link.text
    asked = (await inbox(api, "giulia"))["items"][0]
    assert (asked["kind"], asked["link_id"], asked["organisation_id"]) == (
        "employee-link.proposed",
        link.json()["id"],
        acme["id"],
    )
    assert (await inbox(api, "paolo"))["items"] == []


async def test_the_digest_gathers_what_nobody_read_and_no_email_covered(api: Api) -> None:
    giulia = await api.add_member("giulia", name="Giulia")
    marco = await api.add_member("marco", name="Marco")
    # Two exchanges are confirmed: Giulia gets two in-app notices that send no email.
    for title in ("Maths", "Physics"):
        exchange_id = await propose(api, giulia, marco, 15, title)
        await act(api, exchange_id, "accept", "marco")
        await act(api, exchange_id, "done", "giulia")
        await act(api, exchange_id, "confirm", "marco")
    # Marco read everything; Giulia read nothing. Marco switched digests off anyway.
    await api.post("/api/v1/notifications/read-all", role="marco")
    await api.request(
        "PUT",
        "/api/v1/members/me/notification-settings",
        role="marco",
        json={"email": {}, "digest": False},
    )
    run = in_app(api, send_digests)
    # Giulia's digest covers the two confirmations (the acceptances had their own email).
    assert (run.members, run.notifications) == (1, 2)
    (digest,) = [m for m in await rows(api, outbox) if m.kind == "notification-digest"]
    assert digest.recipient == giulia.email
    assert digest.subject == "Scambio: 2 unread notifications"
    assert "\u201cMaths\u201d is confirmed: 15 minutes moved." in digest.body
    assert "\u201cPhysics\u201d is confirmed: 15 minutes moved." in digest.body
    assert "accepted" not in digest.body
    # Running it again sends nothing new.
    again = in_app(api, send_digests)
    assert (again.members, again.notifications) == (0, 0)
