"""Bad input on every listing and matching route: a 4xx problem, and nothing changes.

Each route gets malformed JSON, the wrong shape, unknown fields, wrong types, missing
fields, huge strings, control characters, unpaired surrogates, values out of bounds
(title over 120, description over 4,000, more than 10 tags or tags over 40 characters),
floats and strings where whole numbers belong, and HTML where a value has a format
(areas, zones, modes, ids). HTML in free text is not an error (see test_listings_api).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scambio.store.db import make_engine
from scambio.store.listings_tables import introductions, listings
from scambio.store.people_tables import audit_log, outbox

from .api_helpers import Api, Person, assert_problem, post_listing, running_api

HUGE = "x" * 10_001
NUL = "Giu\u0000lia"
BELL = "Giu\u0007lia"
HTML = "<script>alert(1)</script>"
NOBODY = "0123456789abcdef"
GENERIC: list[bytes] = [b"{", b"[]", b"null", b'"text"', b"{}x", b'{"unknown_field": 1}']
SLOTS = [
    [{"day": "someday", "start": "10:00", "end": "11:00"}],
    [{"day": "mon", "start": "11:00", "end": "10:00"}],
    [{"day": "mon", "start": "25:00", "end": "26:00"}],
    [{"day": "mon", "start": "9:00", "end": "10:00"}],
    [{"day": "mon", "start": "09:00"}],
    [{"day": "mon", "start": "09:00", "end": "10:00", "x": 1}],
    [{"day": "mon", "start": "09:00", "end": "10:00"}] * 29,
    "mon",
]
FIELDS: dict[str, list[Any]] = {
    "title": ["", "   ", "t" * 121, HUGE, NUL, BELL, "\ud800", 5, None, ["a"]],
    "area": ["cooking", HTML, "", None, ["training_empowerment"], "TRAINING_EMPOWERMENT"],
    "description": ["d" * 4001, HUGE, NUL, 1],
    "tags": [
        [""],
        ["t" * 41],
        [NUL],
        [f"t{n}" for n in range(11)],
        "tag",
        [1],
        [HTML * 2],
    ],
    "zone": ["mars", HTML, "", 6, ["municipio-6"]],
    "mode": ["teleport", HTML, None, "IN_PERSON"],
    "resource": ["car", HTML, None],
    "availability": [HUGE, "\u0001", 3],
    "availability_slots": SLOTS,
}


@dataclass
class World:
    api: Api
    giulia: Person
    marco: Person
    offer: dict[str, Any]
    request: dict[str, Any]


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        giulia = await api.add_member("giulia", zone="municipio-6")
        marco = await api.add_member("marco", zone="municipio-6")
        offer = await post_listing(api, "giulia")
        request = await post_listing(api, "marco", kind="request")
        yield World(api, giulia, marco, offer, request)


async def fingerprint(api: Api) -> tuple[Any, ...]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (listings, introductions, audit_log, outbox)
            ]
            state = list(
                await conn.execute(
                    select(
                        listings.c.id,
                        listings.c.status,
                        listings.c.title,
                        listings.c.updated_at,
                        listings.c.expires_at,
                    ).order_by(listings.c.id)
                )
            )
    finally:
        await engine.dispose()
    return (await api.tree_size(), counts, [tuple(row) for row in state])


def bodies(**fields: Any) -> list[Any]:
    """Bad bodies: each value of each field merged into `_valid`; `_missing` fields dropped
    one at a time."""
    valid: dict[str, Any] = fields.pop("_valid")
    missing: list[str] = fields.pop("_missing", [])
    out: list[Any] = [{k: v for k, v in valid.items() if k != name} for name in missing]
    for name, values in fields.items():
        out += [{**valid, name: value} for value in values]
    return out


def routes(w: World) -> list[tuple[str, str, str, list[Any], bool]]:
    """(method, path, caller, bad bodies, body optional)."""
    offer, request = w.offer["id"], w.request["id"]
    listing = {"kind": "offer", "title": "Homework help", "area": "training_empowerment"}
    return [
        (
            "POST",
            "/api/v1/listings",
            "giulia",
            bodies(
                _valid=listing,
                _missing=["kind", "title", "area"],
                kind=["gift", HTML, None, 1, "OFFER"],
                organisation_id=["nobody", HTML, NOBODY, 5],
                member_id=["nobody", NOBODY, w.marco.id, HTML],
                expires_in_days=[0, 61, 366, 1.5, 7.0, "7", -1, True, 2**70],
                **FIELDS,
            ),
            False,
        ),
        (
            "PATCH",
            f"/api/v1/listings/{offer}",
            "giulia",
            bodies(
                _valid={},
                status=["closed", "expired", HTML, None, "", 1],
                kind=["request"],
                organisation_id=[NOBODY],
                expires_at=["2030-01-01T00:00:00.000000Z"],
                **FIELDS,
            ),
            False,
        ),
        (
            "POST",
            f"/api/v1/listings/{offer}/renew",
            "giulia",
            bodies(_valid={}, expires_in_days=[7], reason=["r"]),
            True,
        ),
        (
            "POST",
            f"/api/v1/listings/{offer}/close",
            "giulia",
            bodies(_valid={}, reason=[HUGE, NUL, 1, None, ["r"]]),
            True,
        ),
        (
            "POST",
            "/api/v1/introductions",
            "manager",
            bodies(
                _valid={"request_id": request, "member_id": w.giulia.id},
                _missing=["request_id", "member_id"],
                request_id=["", HTML, NOBODY, None, offer, 1],
                member_id=[HTML, w.marco.id, NOBODY, "", 5],
                organisation_id=[NOBODY, HTML],
                offer_id=[HTML, NOBODY, request, 1],
                note=[HUGE, NUL, 1, None],
            ),
            False,
        ),
    ]


async def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    seen = 0
    for method, path, caller, bad, optional in routes(world):
        raw: list[bytes] = list(GENERIC) + ([] if optional else [b""])
        raw += [json.dumps(body).encode() for body in bad]
        raw += [b'{"title": "\\ud800"}', b'{"note": "\\udc00"}', b"\xff\xfe{}"]
        for content in raw:
            response = await api.request(method, path, role=caller, content=content)
            where = (
                f"{method} {path} {content[:120]!r}: {response.status_code} {response.text[:200]}"
            )
            assert 400 <= response.status_code < 500, where
            assert response.headers["content-type"].startswith("application/problem+json"), where
            assert response.json()["type"].startswith("urn:scambio:problem:"), where
            seen += 1
    assert seen > 200
    assert await fingerprint(api) == before


async def test_bad_ids_and_queries_are_4xx(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    for path, status in [
        ("/api/v1/listings/%00", 404),
        ("/api/v1/listings/" + "a" * 300, 404),
        ("/api/v1/listings/<b>", 404),
        ("/api/v1/listings/0123456789ABCDEF", 404),
        (f"/api/v1/listings/{NOBODY}", 404),
        ("/api/v1/listings/%F0%9F%98%80", 404),
        ("/api/v1/requests/%00/suggestions", 404),
        (f"/api/v1/requests/{NOBODY}/suggestions", 404),
        (f"/api/v1/requests/{world.request['id']}/suggestions?limit=0", 400),
        (f"/api/v1/requests/{world.request['id']}/suggestions?limit=51", 400),
        (f"/api/v1/requests/{world.request['id']}/suggestions?limit=1.5", 400),
        ("/api/v1/introductions?request_id=%00", 400),
        ("/api/v1/introductions?cursor=%00", 400),
        ("/api/v1/introductions?limit=-1", 400),
        ("/api/v1/manager/queue?limit=51", 400),
        ("/api/v1/manager/queue?cursor=" + "A" * 501, 400),
    ]:
        response = await api.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for method, path in [
        ("PATCH", f"/api/v1/listings/{NOBODY}"),
        ("PATCH", "/api/v1/listings/%00"),
        ("POST", f"/api/v1/listings/{NOBODY}/renew"),
        ("POST", "/api/v1/listings/<b>/close"),
    ]:
        response = await api.request(method, path, role="giulia", json={})
        assert_problem(response, 404, "listing-not-found")
    assert await fingerprint(api) == before
