"""Bad input on the notification, email change and organisation status routes: a 4xx
problem with a stable type, and nothing changes (SQLite and PostgreSQL).

Each route gets malformed JSON, the wrong shape, unknown fields, wrong types, missing
fields, huge strings, control characters, unpaired surrogates, odd Unicode and HTML where
a value has a format (emails, codes, kinds, ids). HTML in a free-text reason is not an
error (it is stored as the text it is), so it is not among them.
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
from scambio.store.notifications_tables import email_changes, notification_settings, notifications
from scambio.store.people_tables import audit_log, login_failures, members, organisations, outbox

from .api_helpers import PASSWORD, Api, Person, assert_problem, exchange_in, running_api

HUGE = "x" * 10_001
NUL = "Giu\u0000lia"
HTML = "<script>alert(1)</script>"
RTL = "\u202egro.elpmaxe@ailuig"
GENERIC: list[bytes] = [b"{", b"[]", b"null", b'"text"', b"{}x", b'{"unknown_field": 1}']
RAW: list[bytes] = [
    b'{"email": "\\ud800@example.org"}',
    b'{"reason": "\\udc00"}',
    b'{"token": "eml_\\ud800"}',
    b"\xff\xfe{}",
]


@dataclass
class World:
    api: Api
    marco: Person
    pina: str
    acme: str
    beta: str
    notification: int


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        giulia = await api.add_member("giulia")
        marco = await api.add_member("marco")
        await exchange_in(api, giulia, marco, "proposed")
        page = (await api.get("/api/v1/notifications", role="marco")).json()
        pina = (await api.post("/api/v1/members", {"name": "Pina"}, role="manager")).json()
        acme = await api.add_org("Acme")
        beta = await api.add_org("Beta")
        suspended = await api.post(
            f"/api/v1/organisations/{beta['id']}/suspend", {"reason": "r"}, role="manager"
        )
        assert suspended.status_code == 200
        yield World(api, marco, pina["id"], acme["id"], beta["id"], page["items"][0]["id"])


async def fingerprint(api: Api) -> tuple[Any, ...]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (
                    notifications,
                    notification_settings,
                    email_changes,
                    audit_log,
                    outbox,
                    login_failures,
                )
            ]
            read = list(await conn.execute(select(notifications.c.id, notifications.c.read_at)))
            people = list(
                await conn.execute(select(members.c.id, members.c.email, members.c.updated_at))
            )
            orgs = list(await conn.execute(select(organisations.c.id, organisations.c.status)))
    finally:
        await engine.dispose()
    return (
        await api.tree_size(),
        counts,
        sorted(map(tuple, read)),
        sorted(map(tuple, people)),
        sorted(map(tuple, orgs)),
    )


def bodies(valid: dict[str, Any], missing: list[str], **fields: list[Any]) -> list[Any]:
    out: list[Any] = [{k: v for k, v in valid.items() if k != name} for name in missing]
    for name, values in fields.items():
        out += [{**valid, name: value} for value in values]
    return out


EMAILS = ["", "no-at-sign", "a@b", HTML, "a" * 250 + "@x.org", NUL + "@x.org", RTL, 7, None]
REASONS = ["", " \n\t ", HUGE, NUL, "\u0007bell", 1, None]


def routes(w: World) -> list[tuple[str, str, str, list[Any], bool]]:
    """(method, path, caller, bad bodies, body optional)."""
    many_kinds = {f"kind.{n}": True for n in range(51)}
    return [
        (
            "POST",
            f"/api/v1/notifications/{w.notification}/read",
            "marco",
            [{"x": 1}, {"read": True}],
            True,
        ),
        (
            "POST",
            "/api/v1/notifications/read-all",
            "marco",
            bodies({}, [], up_to=[0, -1, "5", 1.5, 2**64, HTML, True]),
            True,
        ),
        (
            "PUT",
            "/api/v1/members/me/notification-settings",
            "marco",
            bodies(
                {"email": {"exchange.done": False}, "digest": False},
                ["email", "digest"],
                email=[
                    "x",
                    [],
                    None,
                    {"exchange.done": "no"},
                    {"exchange.done": 0},
                    {"": True},
                    {HTML: True},
                    {"exchange.teleported": True},
                    {"k" * 41: True},
                    {"exchange.d\u00f6ne": False},
                    {NUL: True},
                    many_kinds,
                ],
                digest=["true", 1, None, "off"],
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/email-change",
            "marco",
            bodies(
                {"email": "marco.new@example.org", "password": PASSWORD},
                ["email", "password"],
                email=[*EMAILS, HUGE, "marco@ex\u00e4mple.org", w.marco.email],
                password=[None, 5, HUGE, ["x"]],
            ),
            False,
        ),
        (
            "POST",
            "/api/v1/auth/email-change/confirm",
            "marco",
            bodies(
                {"token": "eml_" + "A" * 43},
                ["token"],
                token=["", HTML, NUL, HUGE, None, 5, "eml_" + "\u00e9" * 43, "eml_" + "A" * 44],
            ),
            False,
        ),
        (
            "POST",
            f"/api/v1/members/{w.pina}/email",
            "manager",
            bodies(
                {"email": "pina@example.org", "reason": "her daughter's"},
                ["email", "reason"],
                email=[e for e in EMAILS if e is not None] + [HUGE, "pina@ex\u00e4mple.org"],
                reason=REASONS,
            ),
            False,
        ),
        (
            "POST",
            f"/api/v1/organisations/{w.acme}/suspend",
            "manager",
            [{}, *bodies({"reason": "r"}, [], reason=REASONS)],
            False,
        ),
        (
            "POST",
            f"/api/v1/organisations/{w.beta}/reactivate",
            "manager",
            [{}, *bodies({"reason": "r"}, [], reason=REASONS)],
            False,
        ),
    ]


async def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    seen = 0
    for method, path, caller, bad, optional in routes(world):
        raw: list[bytes] = list(GENERIC) + ([] if optional else [b""]) + RAW
        raw += [json.dumps(body).encode() for body in bad]
        for content in raw:
            response = await api.request(method, path, role=caller, content=content)
            where = (
                f"{method} {path} {content[:120]!r}: {response.status_code} {response.text[:200]}"
            )
            assert 400 <= response.status_code < 500, where
            assert response.headers["content-type"].startswith("application/problem+json"), where
            assert response.json()["type"].startswith("urn:scambio:problem:"), where
            seen += 1
    assert seen > 150
    assert await fingerprint(api) == before


async def test_the_problem_types_name_what_is_wrong(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    settings = "/api/v1/members/me/notification-settings"
    unknown = {"email": {"exchange.teleported": True}, "digest": True}
    refused = await api.request("PUT", settings, role="marco", json=unknown)
    assert assert_problem(refused, 422, "invalid-field")["field"] == "email"
    assert_problem(
        await api.request("PUT", settings, role="marco", json={"email": {}}), 400, "invalid-request"
    )
    change = {"email": HTML, "password": PASSWORD}
    assert_problem(
        await api.post("/api/v1/auth/email-change", change, role="marco"), 422, "invalid-email"
    )
    confirm = await api.post("/api/v1/auth/email-change/confirm", {"token": HTML}, role=None)
    assert_problem(confirm, 422, "invalid-confirmation-token")
    reason = await api.post(
        f"/api/v1/organisations/{world.acme}/suspend", {"reason": " "}, role="manager"
    )
    assert assert_problem(reason, 422, "invalid-field")["field"] == "reason"
    read_all = await api.post("/api/v1/notifications/read-all", {"up_to": 0}, role="marco")
    assert_problem(read_all, 400, "invalid-request")
    assert await fingerprint(api) == before


async def test_bad_ids_and_queries_are_4xx_and_change_nothing(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    for path in [
        "/api/v1/notifications?unread=perhaps",
        "/api/v1/notifications?cursor=-1",
        "/api/v1/notifications?cursor=abc",
        "/api/v1/notifications?cursor=%00",
        "/api/v1/notifications?cursor=99999999999999999999999",
        "/api/v1/notifications?limit=0",
        "/api/v1/notifications?limit=100000",
    ]:
        assert_problem(await api.get(path, role="marco"), 400, "invalid-request")
    for notification_id in ("abc", "-1", "0", "%00", "9" * 30, "1.5", "%3Cb%3E", "\u0661"):
        response = await api.post(f"/api/v1/notifications/{notification_id}/read", role="marco")
        assert_problem(response, 404, "notification-not-found")
    for member_id in ("nobody", "%00", "0123456789abcdef", "<b>", "A" * 300):
        response = await api.post(
            f"/api/v1/members/{member_id}/email", {"email": None, "reason": "r"}, role="manager"
        )
        assert_problem(response, 404, "member-not-found")
    for org_id in ("nobody", "%00", "0123456789abcdef", "%F0%9F%98%80"):
        for action in ("suspend", "reactivate"):
            response = await api.post(
                f"/api/v1/organisations/{org_id}/{action}", {"reason": "r"}, role="manager"
            )
            assert_problem(response, 404, "organisation-not-found")
    assert await fingerprint(api) == before
