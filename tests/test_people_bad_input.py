"""Bad input on every people, organisation and session route: a 4xx problem, no change.

Each route gets malformed JSON, the wrong shape, unknown fields, wrong types, missing
fields, huge strings, control characters and unpaired surrogates, and HTML where a value
has a format (emails, zones, areas, languages, phones, scopes, ids). HTML in free text
(names, "about", descriptions) is not an error: it is stored and returned as the text it
is, inside JSON, and never rendered (see test_people_suspension).
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
from scambio.store.people_tables import (
    audit_log,
    employee_links,
    login_failures,
    members,
    org_admins,
    organisations,
    outbox,
    password_resets,
)
from scambio.store.tables import api_tokens

from .api_helpers import PASSWORD, Api, Person, assert_problem, running_api

HUGE = "x" * 10_001
NUL = "Giu\u0000lia"
BELL = "Giu\u0007lia"
HTML = "<script>alert(1)</script>"

#: Malformed or wrongly shaped bodies, for every route that reads one.
GENERIC: list[bytes] = [b"{", b"[]", b"null", b'"text"', b"{}x", b'{"unknown_field": 1}']


@dataclass
class World:
    api: Api
    marco: Person
    pending: str
    acme: dict[str, Any]
    link: str


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        marco = await api.add_member("marco")
        paolo = await api.add_member("paolo")
        body = {"email": "pending@example.org", "password": PASSWORD, "name": "Pending"}
        await api.post("/api/v1/members/register", body, role=None)
        page = (await api.get("/api/v1/members", status="pending")).json()
        acme = await api.add_org("Acme", admin=paolo)
        link = await api.post(
            f"/api/v1/organisations/{acme['id']}/employees", {"member_id": marco.id}
        )
        yield World(api, marco, page["items"][0]["id"], acme, link.json()["id"])


async def fingerprint(api: Api) -> tuple[Any, ...]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            counts = []
            for table in (
                audit_log,
                members,
                organisations,
                org_admins,
                employee_links,
                outbox,
                password_resets,
                login_failures,
                api_tokens,
            ):
                counts.append(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
            state = list(
                await conn.execute(
                    select(members.c.id, members.c.status, members.c.name, members.c.updated_at)
                )
            )
            links = list(await conn.execute(select(employee_links.c.status)))
            revoked = (
                await conn.execute(
                    select(func.count())
                    .select_from(api_tokens)
                    .where(api_tokens.c.revoked_at.is_not(None))
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return (await api.tree_size(), counts, sorted(map(tuple, state)), links, revoked)


def bodies(**fields: Any) -> list[Any]:
    """Field-specific bad bodies: `fields` maps a field to its bad values, merged into
    the valid body `fields["_valid"]`; `_missing` lists fields to drop one at a time."""
    valid: dict[str, Any] = fields.pop("_valid")
    missing: list[str] = fields.pop("_missing", [])
    out: list[Any] = [{k: v for k, v in valid.items() if k != name} for name in missing]
    for name, values in fields.items():
        out += [{**valid, name: value} for value in values]
    return out


NAMES = ["", "   ", HUGE, "n" * 201, NUL, BELL, 5, None, ["a"]]
EMAILS = ["", "no-at-sign", "a@b", HTML, "a" * 250 + "@x.org", NUL + "@x.org", 7, None]
PASSWORDS = ["short", "x" * 201, "ten chars\u0000", HUGE, 1234567890, None]
PROFILE = {
    "zone": ["mars", HTML, "", 6],
    "areas": [["cooking"], [HTML], "childcare", [1], ["childcare"] * 60],
    "tags": [[""], ["t" * 41], [NUL], [f"t{n}" for n in range(21)], "tag"],
    "languages": [["italian"], [HTML], [""], [f"l{n:02}" for n in range(11)]],
    "about": [HUGE, NUL, 1],
    "availability": [HUGE, "\u0001"],
    "availability_slots": [
        [{"day": "someday", "start": "10:00", "end": "11:00"}],
        [{"day": "mon", "start": "11:00", "end": "10:00"}],
        [{"day": "mon", "start": "25:00", "end": "26:00"}],
        [{"day": "mon", "start": "9:00", "end": "10:00"}],
        [{"day": "mon", "start": "09:00"}],
        [{"day": "mon", "start": "09:00", "end": "10:00", "x": 1}],
        [{"day": "mon", "start": "09:00", "end": "10:00"}] * 29,
    ],
    "contact": [
        {"preferred": "pigeon"},
        {"preferred": "phone"},
        {"preferred": "phone", "phone": HTML},
        {"preferred": "email", "phone": "1" * 40},
        {"note": HUGE},
        {"unknown": 1},
        "email",
    ],
}


def routes(w: World) -> list[tuple[str, str, str | None, list[Any], bool]]:
    """(method, path, caller, bad bodies, body optional)."""
    acme, marco = w.acme["id"], w.marco.id
    register = {"email": "new@example.org", "password": PASSWORD, "name": "New"}
    return [
        (
            "POST",
            "/api/v1/members/register",
            None,
            bodies(
                _valid=register,
                _missing=["email", "password", "name"],
                name=NAMES,
                email=EMAILS,
                password=PASSWORDS,
                **PROFILE,
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/members",
            "manager",
            bodies(
                _valid={"name": "Offline"},
                _missing=["name"],
                name=NAMES,
                email=[e for e in EMAILS if e is not None],
                password=PASSWORDS[:-1],
                role=["king", HTML, 1],
                min_balance=[1.5, "10", 2**60, 1],
                max_balance=[-1, 1.0],
                reason=[HUGE, NUL],
                **PROFILE,
            ),
            False,
        ),
        (
            "PATCH",
            f"/api/v1/members/{marco}",
            "marco",
            bodies(_valid={}, name=NAMES, email=["x@y.org"], role=["admin"], **PROFILE),
            False,
        ),
        (
            "POST",
            f"/api/v1/members/{w.pending}/approve",
            "manager",
            bodies(
                _valid={},
                reason=[HUGE, NUL, 1],
                min_balance=[1, 1.5, "x", 2**60],
                max_balance=[-5, True],
            ),
            True,
        ),
        (
            "POST",
            f"/api/v1/members/{w.pending}/reject",
            "manager",
            [*bodies(_valid={"reason": "r"}, reason=["", "  ", HUGE, NUL, None, 1]), {}],
            False,
        ),
        (
            "POST",
            f"/api/v1/members/{marco}/suspend",
            "manager",
            [*bodies(_valid={"reason": "r"}, reason=["", "\n\t ", HUGE, NUL, None]), {}],
            False,
        ),
        (
            "POST",
            f"/api/v1/members/{marco}/role",
            "admin",
            bodies(
                _valid={"role": "manager", "reason": "r"},
                _missing=["role", "reason"],
                role=["king", "", HTML, None],
                reason=["", HUGE],
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/login",
            None,
            bodies(
                _valid={"email": w.marco.email, "password": PASSWORD},
                _missing=["email", "password"],
                email=[None, 5, HUGE],
                password=[None, 5, HUGE],
                token_name=["", NUL, "n" * 101, HUGE],
                scopes=[["root"], [], "read", [HTML], ["read"] * 11],
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/tokens",
            "marco",
            bodies(
                _valid={"name": "app", "scopes": ["read"]},
                _missing=["name", "scopes"],
                name=NAMES,
                scopes=[[], ["root"], [HTML], "read"],
                expires_in=[0, 59, 1.5, "60", -1, 2**40],
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/password",
            "marco",
            bodies(
                _valid={"current_password": PASSWORD, "new_password": "a new long password"},
                _missing=["current_password", "new_password"],
                current_password=["wrong password", None],
                new_password=PASSWORDS,
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/password-reset",
            None,
            bodies(_valid={"email": "x@y.org"}, _missing=["email"], email=[None, 5, HUGE]),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/password-reset/confirm",
            None,
            bodies(
                _valid={"token": "rst_" + "A" * 43, "password": PASSWORD},
                _missing=["token", "password"],
                token=["", HTML, NUL, HUGE, None],
                password=PASSWORDS,
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/organisations",
            "manager",
            bodies(
                _valid={"name": "Org", "kind": "company"},
                _missing=["name", "kind"],
                name=NAMES,
                kind=["cartel", HTML, None],
                zone=["mars", HTML],
                description=[HUGE, NUL],
                admin_member_id=["nobody", HTML, "0123456789abcdef"],
                min_balance=[5, 0.5],
            ),
            False,
        ),
        (
            "PATCH",
            f"/api/v1/organisations/{acme}",
            "manager",
            bodies(_valid={}, name=NAMES, zone=["mars", HTML], description=[HUGE, NUL], kind=["x"]),
            False,
        ),
        (
            "POST",
            f"/api/v1/organisations/{acme}/employees",
            "manager",
            bodies(
                _valid={"member_id": marco},
                _missing=["member_id"],
                member_id=["", HTML, "0123456789abcdef", None, marco],
                title=[HUGE, NUL, 3],
            ),
            False,
        ),
        *(
            (
                "POST",
                f"/api/v1/employee-links/{w.link}/{action}",
                "marco",
                bodies(_valid={}, reason=[HUGE, NUL, 1, None]),
                True,
            )
            for action in ("accept", "decline", "end")
        ),
    ]


async def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    seen = 0
    for method, path, caller, bad, optional in routes(world):
        raw: list[bytes] = list(GENERIC) + ([] if optional else [b""])
        raw += [json.dumps(body).encode() for body in bad]
        raw += [b'{"name": "\\ud800"}', b'{"email": "\\udc00@x.org"}', b"\xff\xfe{}"]
        for content in raw:
            response = await api.request(method, path, role=caller, content=content)
            where = (
                f"{method} {path} {content[:120]!r}: {response.status_code} {response.text[:200]}"
            )
            assert 400 <= response.status_code < 500, where
            assert response.headers["content-type"].startswith("application/problem+json"), where
            assert response.json()["type"].startswith("urn:scambio:problem:"), where
            seen += 1
    assert seen > 300
    assert await fingerprint(api) == before


async def test_bad_ids_and_queries_are_4xx(world: World) -> None:
    api = world.api
    for path, status in [
        ("/api/v1/members/%00", 404),
        ("/api/v1/members/" + "a" * 300, 404),
        ("/api/v1/members/<b>", 404),
        ("/api/v1/members/0123456789ABCDEF", 404),
        ("/api/v1/organisations/%F0%9F%98%80", 404),
        ("/api/v1/employee-links/..%2F..", 404),
        ("/api/v1/members?limit=0", 400),
        ("/api/v1/members?limit=100000", 400),
        ("/api/v1/members?status=royal", 400),
        ("/api/v1/members?area=<b>", 400),
        ("/api/v1/members?cursor=%00", 400),
        ("/api/v1/audit?cursor=-1", 400),
        ("/api/v1/audit?cursor=99999999999999999999999", 400),
        ("/api/v1/audit?action=%00", 400),
        ("/api/v1/organisations?cursor=<script>", 400),
    ]:
        response = await api.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for method, path in [
        ("DELETE", "/api/v1/auth/tokens/%00"),
        ("DELETE", "/api/v1/auth/tokens/" + "f" * 16),
        ("PUT", f"/api/v1/organisations/{world.acme['id']}/admins/nobody"),
        ("DELETE", f"/api/v1/organisations/{world.acme['id']}/admins/0123456789abcdef"),
    ]:
        response = await api.request(method, path, role="marco" if "tokens" in path else "admin")
        assert_problem(response, 404, response.json()["type"].rsplit(":", 1)[1])
