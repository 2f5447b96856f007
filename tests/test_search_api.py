"""Searching listings over HTTP, on SQLite (FTS5) and PostgreSQL (tsvector) alike.

A small board: Giulia offers homework help and asks for help with maths (in Italian);
Marco offers babysitting and asks for help moving furniture; Paola offers yoga and a CV
workshop; Acme offers its meeting room; Marco's old bicycle is closed. Every filter, text
search with every operator, hostile text, cursors, and who may see what is not active.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .api_helpers import Api, Person, assert_problem, post_listing, running_api
from .conftest import Clock

HOSTILE = [
    '"',
    '""',
    '"unterminated phrase',
    "*",
    "help*",
    "NEAR(help moving)",
    "NEAR(",
    "AND OR",
    "AND",
    "NOT help",
    "help AND",
    "(",
    ")",
    "^help",
    "title:help",
    "-",
    "--help",
    "- -",
    "'; DROP TABLE listings; --",
    "\\",
    "%",
    "_",
    "help & !moving | (",
    "<->",
    ":*",
    "'help':*",
    "\u0000",
    "\u200b\u200d",
    "\U0001f600 help",
    "é" * 200,
    "a" * 200,
    " ".join(["help"] * 40)[:200],
]


@dataclass
class Board:
    api: Api
    giulia: Person
    marco: Person
    acme: dict[str, Any]
    ids: dict[str, str]


@pytest.fixture
async def board(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Board]:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        giulia = await api.add_member("giulia", zone="municipio-6")
        marco = await api.add_member("marco", zone="municipio-4")
        await api.add_member("paola", zone="municipio-6")
        paolo = await api.add_member("paolo")
        acme = await api.add_org("Acme S.p.A.", admin=paolo)
        specs: list[tuple[str, str, dict[str, Any]]] = [
            (
                "homework",
                "giulia",
                {
                    "title": "Homework help for primary school",
                    "tags": ["homework", "scuola"],
                    "availability_slots": [{"day": "tue", "start": "16:00", "end": "18:00"}],
                },
            ),
            (
                "compiti",
                "giulia",
                {
                    "kind": "request",
                    "title": "Compiti di matematica",
                    "description": "Cerco aiuto per i compiti di matematica di mia figlia.",
                    "mode": "remote",
                    "tags": ["matematica"],
                },
            ),
            (
                "babysitting",
                "marco",
                {
                    "title": "Babysitting on weekday evenings",
                    "area": "childcare",
                    "zone": "municipio-4",
                    "mode": "either",
                    "tags": ["babysitting"],
                    "availability_slots": [
                        {"day": "mon", "start": "18:00", "end": "22:00"},
                        {"day": "wed", "start": "18:00", "end": "22:00"},
                    ],
                },
            ),
            (
                "moving",
                "marco",
                {
                    "kind": "request",
                    "title": "Help moving furniture",
                    "area": "housing",
                    "zone": "municipio-4",
                    "tags": ["moving"],
                    "availability_slots": [{"day": "sat", "start": "09:00", "end": "13:00"}],
                },
            ),
            (
                "yoga",
                "paola",
                {
                    "title": "Yoga in the park",
                    "description": "Gentle yoga for beginners, perché fa bene.",
                    "area": "health_wellbeing",
                    "availability_slots": [
                        {"day": "sat", "start": "08:00", "end": "09:00"},
                        {"day": "sun", "start": "08:00", "end": "09:00"},
                    ],
                },
            ),
            (
                "room",
                "paolo",
                {
                    "title": "Meeting room",
                    "resource": "space",
                    "area": "employment_flexible_work",
                    "zone": "municipio-4",
                    "organisation_id": acme["id"],
                    "availability_slots": [{"day": "wed", "start": "18:00", "end": "21:00"}],
                },
            ),
            (
                "cv",
                "paola",
                {
                    "title": "CV writing workshop",
                    "description": "Help with your curriculum and job interviews.",
                    "area": "employment_flexible_work",
                    "mode": "remote",
                    "tags": ["CV", "lavoro"],
                },
            ),
            (
                "bicycle",
                "marco",
                {
                    "title": "Old bicycle to lend",
                    "resource": "equipment",
                    "area": "housing",
                    "zone": "municipio-4",
                },
            ),
        ]
        ids: dict[str, str] = {}
        for key, role, fields in specs:
            clock.advance(minutes=1)
            ids[key] = (await post_listing(api, role, **fields))["id"]
        closed = await api.post(f"/api/v1/listings/{ids['bicycle']}/close", role="marco")
        assert closed.status_code == 200
        yield Board(api, giulia, marco, acme, ids)


async def found(board: Board, role: str = "giulia", **params: Any) -> list[str]:
    """The keys of the listings a search returns, in order."""
    response = await board.api.get("/api/v1/listings", role=role, **params)
    assert response.status_code == 200, response.text
    names = {listing_id: key for key, listing_id in board.ids.items()}
    return [names[item["id"]] for item in response.json()["items"]]


NEWEST = ["cv", "room", "yoga", "moving", "babysitting", "compiti", "homework"]


async def test_every_filter(board: Board) -> None:
    assert await found(board) == NEWEST
    assert await found(board, kind="offer") == ["cv", "room", "yoga", "babysitting", "homework"]
    assert await found(board, kind="request") == ["moving", "compiti"]
    assert await found(board, area="housing") == ["moving"]
    assert await found(board, zone="municipio-4") == ["room", "moving", "babysitting"]
    assert await found(board, mode="remote") == ["cv", "babysitting", "compiti"]
    assert await found(board, mode="in_person") == [
        "room",
        "yoga",
        "moving",
        "babysitting",
        "homework",
    ]
    assert await found(board, day="sat") == ["yoga", "moving"]
    assert await found(board, day="tue,wed") == ["room", "babysitting", "homework"]
    assert await found(board, resource="space") == ["room"]
    assert await found(board, tag="homework") == ["homework"]
    assert await found(board, tag=" CV ") == ["cv"]
    assert await found(board, tag="home") == []
    assert await found(board, member=board.giulia.id) == ["compiti", "homework"]
    assert await found(board, member="me") == ["compiti", "homework"]
    assert await found(board, organisation=board.acme["id"]) == ["room"]
    both = await found(board, kind="offer", zone="municipio-6", mode="in_person", day="sat")
    assert both == ["yoga"]


async def test_only_owners_and_staff_see_what_is_not_active(board: Board) -> None:
    api = board.api
    assert "bicycle" not in await found(board, role="marco")
    refused = await api.get("/api/v1/listings", role="giulia", status="closed")
    assert_problem(refused, 403, "forbidden")
    other = await api.get("/api/v1/listings", role="giulia", status="closed", member=board.marco.id)
    assert_problem(other, 403, "forbidden")
    assert await found(board, role="marco", status="closed", member="me") == ["bicycle"]
    assert await found(board, role="marco", status="active,closed", member="me") == [
        "bicycle",
        "moving",
        "babysitting",
    ]
    assert await found(board, role="auditor", status="closed") == ["bicycle"]
    assert await found(board, role="paolo", status="paused", organisation=board.acme["id"]) == []
    # Operator tokens belong to no member: `member=me` is refused.
    assert_problem(await api.get("/api/v1/listings", role="manager", member="me"), 403, "forbidden")


async def test_cursors_page_through_without_repeats(board: Board, clock: Clock) -> None:
    api = board.api
    for n in range(12):
        clock.advance(seconds=1)
        await post_listing(api, "giulia", title=f"Extra help number {n}")

    async def walk(limit: int, **params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/api/v1/listings", role="marco", **query)).json()
            assert len(page["items"]) <= limit
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    everything = await walk(100)
    assert len(everything) == 19 == len(set(everything))
    for limit in (1, 5, 7, 19):
        assert await walk(limit) == everything
    # Text search pages by relevance, and pages the same way.
    helpful = await walk(100, q="help")
    assert len(helpful) == 15
    assert await walk(4, q="help") == helpful
    # A cursor from one kind of search is refused by the other; forgeries are 400.
    first = (await api.get("/api/v1/listings", role="marco", limit=2)).json()["next_cursor"]
    mixed = await api.get("/api/v1/listings", role="marco", q="help", cursor=first)
    assert_problem(mixed, 400, "invalid-request")
    for bad in ["x", "%%", "e30", "W10", "bmV3", "a" * 600]:
        response = await api.get("/api/v1/listings", role="marco", cursor=bad)
        assert_problem(response, 400, "invalid-request")


async def test_text_search(board: Board) -> None:
    assert await found(board, q="homework") == ["homework"]
    helped = await found(board, q="help")
    # Title matches rank above a description-only match.
    assert sorted(helped[:2]) == ["homework", "moving"] and helped[2:] == ["cv"]
    assert await found(board, q="HELP -moving") == ["homework", "cv"]
    assert await found(board, q='"job interviews"') == ["cv"]
    assert await found(board, q='"interviews job"') == []
    assert sorted(await found(board, q="yoga or babysitting")) == ["babysitting", "yoga"]
    assert await found(board, q="compito") == ["compiti"]
    assert await found(board, q="aiuto per i compiti di matematica") == ["compiti"]
    assert await found(board, q="matematica figlia") == ["compiti"]
    assert await found(board, q="bamb") == []
    assert await found(board, q="babysit") == ["babysitting"]
    assert await found(board, q="perché") == ["yoga"]
    assert await found(board, q="MEETING") == ["room"]
    assert await found(board, q="lavoro") == ["cv"]
    assert await found(board, q="help", kind="request") == ["moving"]
    assert sorted(await found(board, q="help", zone="municipio-6")) == ["cv", "homework"]
    assert await found(board, q="bicycle") == []
    assert await found(board, role="marco", q="bicycle", status="closed", member="me") == [
        "bicycle"
    ]
    # Nothing to look for is no text filter at all.
    assert await found(board, q="the") == NEWEST
    assert await found(board, q="") == NEWEST


async def test_edits_are_searchable_at_once(board: Board) -> None:
    api, room = board.api, board.ids["room"]
    renamed = await api.request(
        "PATCH", f"/api/v1/listings/{room}", role="paolo", json={"title": "Sala riunioni"}
    )
    assert renamed.status_code == 200
    assert await found(board, q="meeting") == []
    assert await found(board, q="riunioni") == ["room"]
    tagged = await api.request(
        "PATCH", f"/api/v1/listings/{room}", role="paolo", json={"tags": ["projector"]}
    )
    assert tagged.status_code == 200
    assert await found(board, q="projector") == ["room"]
    await api.request("PATCH", f"/api/v1/listings/{room}", role="paolo", json={"status": "paused"})
    assert await found(board, q="projector") == []


async def test_hostile_text_never_fails(board: Board) -> None:
    for text in HOSTILE:
        response = await board.api.get("/api/v1/listings", role="giulia", q=text)
        assert response.status_code == 200, (text, response.text)
        for item in response.json()["items"]:
            assert item["status"] == "active"
    too_long = await board.api.get("/api/v1/listings", role="giulia", q="x" * 201)
    assert_problem(too_long, 400, "invalid-request")


async def test_bad_filters_are_400(board: Board) -> None:
    for params in [
        {"kind": "gift"},
        {"area": "cooking"},
        {"area": "<b>"},
        {"zone": "mars"},
        {"mode": "either"},
        {"day": "someday"},
        {"day": "mon,funday"},
        {"resource": "car"},
        {"tag": "\u0000"},
        {"tag": "t" * 41},
        {"member": "nobody"},
        {"organisation": "me"},
        {"status": "deleted"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "many"},
    ]:
        response = await board.api.get("/api/v1/listings", role="giulia", **params)
        assert_problem(response, 400, "invalid-request")
    anonymous = await board.api.get("/api/v1/listings", role=None)
    assert_problem(anonymous, 401, "unauthenticated")


async def test_text_is_ranked_within_a_window_of_the_newest_matches(
    board: Board, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a window of 5: the 5 newest matches are ranked and paged; a listing posted
    between two pages does not make an older one disappear or come back."""
    from scambio.timebank import search as search_module

    api = board.api
    monkeypatch.setattr(search_module, "RANK_WINDOW", 5)
    posted = []
    for n in range(8):
        clock.advance(seconds=1)
        title = f"Garden help {n}" if n % 2 else f"Garden work {n}"
        posted.append((await post_listing(api, "marco", title=title, description="garden"))["id"])
    newest_five = set(posted[-5:])

    first = (await api.get("/api/v1/listings", role="giulia", q="garden", limit=2)).json()
    seen = [item["id"] for item in first["items"]]
    clock.advance(seconds=1)
    late = (await post_listing(api, "marco", title="Garden garden garden"))["id"]
    cursor = first["next_cursor"]
    while cursor:
        page = await api.get("/api/v1/listings", role="giulia", q="garden", limit=2, cursor=cursor)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert late not in seen
    assert len(seen) == len(set(seen)) == 5 and set(seen) == newest_five
    # A new search starts a new window, with the late listing in it.
    fresh = await api.get("/api/v1/listings", role="giulia", q="garden", limit=10)
    assert late in [item["id"] for item in fresh.json()["items"]]
    assert len(fresh.json()["items"]) == 5
