"""Exchanges over HTTP, as stories: the homework help, the confirmation nobody gave, the
manager's record for Signora Pina, an urban lab; then bad input on every route.

Each runs on SQLite and PostgreSQL against the real app (bearer tokens, guards, strict
decoding, problem details).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scambio.ledger import merkle
from scambio.ledger.note import Verifier, open_checkpoint
from scambio.store.db import make_engine
from scambio.store.exchanges_tables import (
    exchange_thanks,
    exchanges,
    group_exchanges,
    group_members,
    group_transfers,
)
from scambio.store.people_tables import audit_log, outbox
from scambio.timebank.exchanges import auto_confirm_due

from .api_helpers import (
    Api,
    Person,
    assert_problem,
    exchange_in,
    in_app,
    new_uuid,
    post_listing,
    running_api,
)
from .conftest import ORIGIN, Clock


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        yield running


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def balance(api: Api, person: Person) -> tuple[int, int]:
    body = (await api.get(f"/api/v1/accounts/{person.account}")).json()
    return body["posted"], body["pending"]


async def test_the_homework_story_over_http(api: Api, clock: Clock) -> None:
    giulia = await api.add_member("giulia", name="Giulia", zone="municipio-6")
    marco = await api.add_member("marco", name="Marco")
    await api.add_member("bruno")

    # Giulia offers homework help; Marco requests it; they agree 90 minutes.
    offer = await post_listing(api, "giulia", title="Homework help")
    brunos = await post_listing(api, "bruno", title="Bike repairs")
    body = {
        "id": new_uuid(),
        "provider": giulia.account,
        "receiver": marco.account,
        "minutes": 90,
        "title": "Homework help, Zone 6",
        "area": "training_empowerment",
        "listing_id": offer["id"],
    }
    # The listing must exist, and be the offer of the provider (or the request of the
    # receiver) that the exchange comes from.
    unknown = await api.post("/api/v1/exchanges", {**body, "listing_id": "lst-42"}, role="giulia")
    assert assert_problem(unknown, 404, "listing-not-found")["field"] == "listing_id"
    wrong = await api.post("/api/v1/exchanges", {**body, "listing_id": brunos["id"]}, role="giulia")
    assert assert_problem(wrong, 422, "invalid-field")["field"] == "listing_id"
    proposed = await api.post("/api/v1/exchanges", body, role="giulia")
    assert proposed.status_code == 201, proposed.text
    ex = proposed.json()
    assert proposed.headers["location"] == f"/api/v1/exchanges/{ex['id']}"
    assert (ex["state"], ex["proposer_side"]) == ("proposed", "provider")
    assert ex["listing_id"] == offer["id"]
    assert ex["provider"] == {
        "account": giulia.account,
        "kind": "member",
        "id": giulia.id,
        "name": "Giulia",
    }
    assert ex["actions"] == ["cancel"]
    retry = await api.post("/api/v1/exchanges", body, role="giulia")
    assert retry.status_code == 200 and retry.json()["version"] == ex["version"]
    conflict = await api.post("/api/v1/exchanges", {**body, "minutes": 60}, role="giulia")
    assert assert_problem(conflict, 409, "idempotency-conflict")["field"] == "minutes"

    seen = (await api.get(f"/api/v1/exchanges/{ex['id']}", role="marco")).json()
    assert seen["actions"] == ["accept", "decline"]
    assert_problem(
        await api.get(f"/api/v1/exchanges/{ex['id']}", role="bruno"), 404, "exchange-not-found"
    )

    # Marco accepts: 90 minutes held.
    accepted = await api.post(f"/api/v1/exchanges/{ex['id']}/accept", role="marco")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["hold_proof"].startswith("/api/v1/ledger/proof/inclusion?index=")
    assert await balance(api, marco) == (0, -90)
    # The hold names the exchange and its area (annotations), never its title.
    hold_index = accepted.json()["hold_index"]
    [held] = (await api.get("/api/v1/ledger/entries", start=hold_index, limit=1)).json()
    assert held["entry"]["refs"]["exchange"] == ex["id"]
    assert held["entry"]["refs"]["area"] == "training_empowerment"
    assert "Homework" not in json.dumps(held["entry"])

    # Giulia marks it done with 75; more than agreed is refused.
    too_many = await api.post(f"/api/v1/exchanges/{ex['id']}/done", {"minutes": 95}, role="giulia")
    assert_problem(too_many, 422, "exceeds-agreed")
    clock.advance(days=1)
    done = await api.post(f"/api/v1/exchanges/{ex['id']}/done", {"minutes": 75}, role="giulia")
    assert done.json()["confirm_due_at"] == "2026-12-03T09:00:00.000000Z"

    # Marco confirms: Marco -75, Giulia +75, nothing pending.
    confirmed = await api.post(f"/api/v1/exchanges/{ex['id']}/confirm", {}, role="marco")
    assert confirmed.status_code == 200, confirmed.text
    ex = confirmed.json()
    assert (ex["state"], ex["final_minutes"], ex["ledger_pending"]) == ("confirmed", 75, False)
    assert ex["actions"] == ["thank"]
    assert await balance(api, marco) == (-75, 0)
    assert await balance(api, giulia) == (75, 0)
    again = await api.post(f"/api/v1/exchanges/{ex['id']}/confirm", role="marco")
    assert again.status_code == 200 and again.json()["settle_index"] == ex["settle_index"]

    # The post is in a signed checkpoint; anyone can check its inclusion proof.
    note = (await api.get("/api/v1/ledger/checkpoint", role=None)).text
    key = (await api.get("/api/v1/ledger/key", role=None)).json()["vkey"]
    checkpoint = open_checkpoint(note, Verifier.from_string(key), ORIGIN)
    proof = (await api.get(ex["settle_proof"], role=None)).json()
    assert proof["size"] == checkpoint.size
    merkle.verify_inclusion(
        b64(proof["leaf_hash"]),
        ex["settle_index"],
        checkpoint.size,
        [b64(h) for h in proof["proof"]],
        checkpoint.root,
    )

    # Marco thanks Giulia; it shows on her profile.
    thanked = await api.post(
        f"/api/v1/exchanges/{ex['id']}/thank", {"message": "Grazie!"}, role="marco"
    )
    assert thanked.status_code == 201, thanked.text
    assert thanked.json()["by"]["name"] == "Marco"
    assert_problem(
        await api.post(f"/api/v1/exchanges/{ex['id']}/thank", {"message": "x"}, role="marco"),
        409,
        "already-thanked",
    )
    profile = (await api.get(f"/api/v1/members/{giulia.id}/thanks", role="bruno")).json()
    assert [(t["message"], t["by"]["id"]) for t in profile["items"]] == [("Grazie!", marco.id)]

    # Marco's statement names the exchange on each line, with a running balance.
    statement = (await api.get(f"/api/v1/members/{marco.id}/statement", role="marco")).json()
    lines = [
        (
            line["kind"],
            line["minutes"],
            line["pending"],
            line["balance"],
            line["exchange_id"],
            line["title"],
            line["counterpart_name"],
        )
        for line in statement["lines"]
    ]
    assert lines == [
        ("hold", -90, True, 0, ex["id"], "Homework help, Zone 6", "Giulia"),
        ("post", -75, False, -75, ex["id"], "Homework help, Zone 6", "Giulia"),
    ]
    assert statement["lines"][1]["proof"] == ex["settle_proof"]


async def test_listing_exchanges_mine_and_everyones(api: Api) -> None:
    giulia = await api.add_member("giulia")
    marco = await api.add_member("marco")
    rosa = await api.add_member("rosa")
    first = await exchange_in(api, giulia, marco)
    second = await exchange_in(api, rosa, giulia, "confirmed")
    third = await exchange_in(api, rosa, marco, "accepted")
    mine = (await api.get("/api/v1/exchanges", role="giulia")).json()
    assert [e["id"] for e in mine["items"]] == [second, first]
    page = (await api.get("/api/v1/exchanges", role="manager", limit=2)).json()
    assert [e["id"] for e in page["items"]] == [third, second]
    rest = (
        await api.get("/api/v1/exchanges", role="manager", limit=2, cursor=page["next_cursor"])
    ).json()
    assert [e["id"] for e in rest["items"]] == [first] and rest["next_cursor"] is None
    accepted = (await api.get("/api/v1/exchanges", role="auditor", state="accepted")).json()
    assert [e["id"] for e in accepted["items"]] == [third]
    by_account = (await api.get("/api/v1/exchanges", role="marco", account=marco.account)).json()
    assert [e["id"] for e in by_account["items"]] == [third, first]
    assert_problem(
        await api.get("/api/v1/exchanges", role="marco", account=rosa.account), 403, "forbidden"
    )
    assert_problem(await api.get("/api/v1/exchanges", state="lost"), 400, "invalid-request")


async def test_an_unconfirmed_exchange_confirms_itself(api: Api, clock: Clock) -> None:
    rosa = await api.add_member("rosa")
    anna = await api.add_member("anna")
    exchange_id = await exchange_in(api, rosa, anna, "done", minutes=45)
    clock.advance(days=7, seconds=1)
    sweep = in_app(api, auto_confirm_due)
    assert sweep.confirmed == [exchange_id]
    ex = (await api.get(f"/api/v1/exchanges/{exchange_id}", role="anna")).json()
    assert (ex["state"], ex["closed_by"]) == ("confirmed", "system (exchange job)")
    assert await balance(api, rosa) == (45, 0)


async def test_sara_records_for_signora_pina_who_is_offline(api: Api) -> None:
    await api.add_member("sara", role="manager")
    francesca = await api.add_member("francesca", name="Francesca")
    created = await api.post("/api/v1/members", {"name": "Pina Colombo"}, role="sara")
    pina = created.json()
    body = {
        "id": new_uuid(),
        "provider": francesca.account,
        "receiver": pina["account_id"],
        "minutes": 120,
        "title": "Company and a walk",
        "reason": "paper form signed at home, 3 March",
    }
    assert_problem(
        await api.post("/api/v1/exchanges/record", body, role="francesca"), 403, "forbidden"
    )
    recorded = await api.post("/api/v1/exchanges/record", body, role="sara")
    assert recorded.status_code == 201, recorded.text
    ex = recorded.json()
    assert ex["state"] == "confirmed" and ex["recorded_by"].startswith("member ")
    assert ex["recorded_reason"] == "paper form signed at home, 3 March"
    assert (await api.post("/api/v1/exchanges/record", body, role="sara")).status_code == 200
    log = (await api.get("/api/v1/audit", role="auditor", action="exchange.recorded")).json()
    assert [(e["subject_id"], e["reason"]) for e in log["items"]] == [
        (ex["id"], "paper form signed at home, 3 March")
    ]
    statement = (await api.get(f"/api/v1/members/{pina['id']}/statement", role="sara")).json()
    (line,) = statement["lines"]
    assert (line["minutes"], line["kind"], line["recorded_by"]) == (
        -120,
        "transfer",
        ex["recorded_by"],
    )


async def test_an_urban_lab_over_http(api: Api) -> None:
    facilitators = [await api.add_member(f"f{n}") for n in range(2)]
    participants = [await api.add_member(f"p{n}") for n in range(8)]
    body = {
        "id": new_uuid(),
        "title": "Urban lab: a garden for via Giambellino",
        "minutes": 90,
        "facilitators": [f.account for f in facilitators],
        "participants": [
            {"account": p.account, "paid_by": "pool" if n < 2 else "self"}
            for n, p in enumerate(participants)
        ],
        "zone": "municipio-6",
    }
    created = await api.post("/api/v1/exchanges/group", body, role="manager")
    assert created.status_code == 201, created.text
    group = created.json()
    assert (group["state"], group["pool"], len(group["participants"])) == (
        "planned",
        "pool:community",
        8,
    )
    assert (await api.post("/api/v1/exchanges/group", body, role="manager")).status_code == 200
    seen = await api.get(f"/api/v1/exchanges/group/{group['id']}", role="p3")
    assert seen.status_code == 200
    outsider = await api.add_member("outsider")
    assert_problem(
        await api.get(f"/api/v1/exchanges/group/{group['id']}", role=outsider.key),
        404,
        "group-not-found",
    )

    # The pool is empty: nothing settles, and the pool is named.
    failed = await api.post(f"/api/v1/exchanges/group/{group['id']}/settle", role="manager")
    problem = assert_problem(failed, 422, "group-settlement-failed")
    assert (problem["participant"], problem["cause"]) == ("pool:community", "limit-exceeded")
    # A sponsor funds the pool; p7 did not come.
    await api.open("sponsor:fondazione", "sponsor")
    assert (await api.transfer("sponsor:fondazione", "pool:community", 600)).status_code == 201
    settled = await api.post(
        f"/api/v1/exchanges/group/{group['id']}/settle",
        {"absent": [participants[7].account]},
        role="manager",
    )
    assert settled.status_code == 200, settled.text
    result = settled.json()
    assert result["state"] == "settled"
    assert sum(t["minutes"] for t in result["transfers"]) == 180
    assert all(t["proof"] for t in result["transfers"])
    assert await balance(api, participants[7]) == (0, 0)
    assert [await balance(api, f) for f in facilitators] == [(90, 0), (90, 0)]
    statement = (await api.get(f"/api/v1/members/{participants[3].id}/statement", role="p3")).json()
    assert {line["group_id"] for line in statement["lines"]} == {group["id"]}


# -- bad input -------------------------------------------------------------------------------------

HUGE = "x" * 10_001
NUL = "Giu\u0000lia"
HTML = "<script>alert(1)</script>"
GENERIC: list[bytes] = [b"{", b"[]", b"null", b'"text"', b"{}x", b'{"unknown_field": 1}']
MINUTES = [0, -5, 90.0, "90", 10**7, 2**64, None, True, [90]]


@dataclass
class World:
    api: Api
    giulia: Person
    marco: Person
    ids: dict[str, str]
    group: str


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        giulia = await api.add_member("giulia")
        marco = await api.add_member("marco")
        ids = {
            state: await exchange_in(api, giulia, marco, state)
            for state in ("proposed", "accepted", "done", "disputed", "confirmed")
        }
        group = await api.post(
            "/api/v1/exchanges/group",
            {
                "id": new_uuid(),
                "title": "Lab",
                "minutes": 10,
                "facilitators": [giulia.account],
                "participants": [{"account": marco.account}],
            },
            role="manager",
        )
        yield World(api, giulia, marco, ids, group.json()["id"])


async def fingerprint(api: Api) -> tuple[Any, ...]:
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    try:
        async with engine.connect() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in (
                    exchanges,
                    exchange_thanks,
                    group_exchanges,
                    group_members,
                    group_transfers,
                    audit_log,
                    outbox,
                )
            ]
            states = sorted(
                map(
                    tuple,
                    await conn.execute(
                        select(exchanges.c.id, exchanges.c.state, exchanges.c.version)
                    ),
                )
            )
            groups = list(map(tuple, await conn.execute(select(group_exchanges.c.state))))
    finally:
        await engine.dispose()
    return (await api.tree_size(), counts, states, groups)


def bodies(valid: dict[str, Any], missing: list[str], **fields: list[Any]) -> list[Any]:
    out: list[Any] = [{k: v for k, v in valid.items() if k != name} for name in missing]
    for name, values in fields.items():
        out += [{**valid, name: value} for value in values]
    return out


def routes(w: World) -> list[tuple[str, str, list[Any], bool]]:
    """(path, caller, bad bodies, body optional) for every POST route."""
    g, m = w.giulia.account, w.marco.account
    propose = {"id": new_uuid(), "provider": g, "receiver": m, "minutes": 30, "title": "Help"}
    common = {
        "id": ["", "not-a-uuid", HTML, 5, None, NUL],
        "provider": ["", HTML, "m-nobody", m, "pool:community", NUL, None, 7],
        "receiver": ["", HTML, "o-0000000000000000", g, None],
        "minutes": MINUTES,
        "title": ["", "   ", HUGE, "t" * 201, NUL, None, 5],
        "description": [HUGE, NUL, 3],
        "area": ["cooking", HTML, 3],
        "listing_id": ["", HTML, "l" * 65, NUL, 4],
    }
    group = {
        "id": new_uuid(),
        "title": "Lab",
        "minutes": 10,
        "facilitators": [g],
        "participants": [{"account": m}],
    }
    ids = w.ids
    return [
        (
            "/api/v1/exchanges",
            "giulia",
            bodies(propose, ["id", "provider", "receiver", "minutes", "title"], **common),
            False,
        ),
        (
            "/api/v1/exchanges/record",
            "manager",
            bodies(
                propose,
                ["id", "provider", "receiver", "minutes", "title"],
                **common,
                reason=[HUGE, NUL, 1],
            ),
            False,
        ),
        (
            "/api/v1/exchanges/group",
            "manager",
            bodies(
                group,
                ["id", "title", "minutes", "facilitators", "participants"],
                id=["x", None],
                title=["", HUGE, NUL],
                minutes=MINUTES,
                facilitators=[[], [HTML], [g, g], [m], ["m-nobody"], "x", [g] * 51],
                participants=[
                    [],
                    [{"account": g}],
                    [{"account": m}, {"account": m}],
                    [{"account": m, "paid_by": "grandma"}],
                    [{"account": m, "x": 1}],
                    [{"account": HTML}],
                    [m],
                ],
                pool=["community", "pool:", HTML, "pool:" + "x" * 60, m],
                zone=["mars", HTML],
                area=["cooking"],
                description=[HUGE],
            ),
            False,
        ),
        (
            f"/api/v1/exchanges/group/{w.group}/settle",
            "manager",
            bodies({}, [], absent=[[w.giulia.account], ["m-nobody"], [HTML], "x", [None]]),
            True,
        ),
        (f"/api/v1/exchanges/{ids['proposed']}/accept", "marco", [{"reason": "x"}], True),
        (
            f"/api/v1/exchanges/{ids['proposed']}/decline",
            "marco",
            bodies({}, [], reason=[HUGE, NUL, 1, None]),
            True,
        ),
        (
            f"/api/v1/exchanges/{ids['accepted']}/cancel",
            "giulia",
            bodies({}, [], reason=[HUGE, NUL, 1, None]),
            True,
        ),
        (
            f"/api/v1/exchanges/{ids['accepted']}/done",
            "giulia",
            bodies({}, [], minutes=[m for m in MINUTES if m is not None] + [3]),
            True,
        ),
        (f"/api/v1/exchanges/{ids['done']}/confirm", "marco", [{"minutes": 1}], True),
        (
            f"/api/v1/exchanges/{ids['done']}/dispute",
            "marco",
            [*bodies({"reason": "r"}, ["reason"], reason=["", " \n ", HUGE, NUL, None, 1])],
            False,
        ),
        (
            f"/api/v1/exchanges/{ids['disputed']}/resolve",
            "manager",
            bodies(
                {"minutes": 1, "reason": "r"},
                ["minutes", "reason"],
                minutes=[-1, 3, 1.0, "1", None, 2**64],
                reason=["", HUGE, NUL, None],
            ),
            False,
        ),
        (
            f"/api/v1/exchanges/{ids['confirmed']}/thank",
            "marco",
            bodies({"message": "m"}, ["message"], message=["", "  ", "x" * 501, NUL, None, 5]),
            False,
        ),
    ]


async def test_bad_input_on_every_exchange_route_changes_nothing(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    seen = 0
    for path, caller, bad, optional in routes(world):
        raw: list[bytes] = list(GENERIC) + ([] if optional else [b""])
        raw += [json.dumps(body).encode() for body in bad]
        raw += [b'{"title": "\\ud800"}', b'{"reason": "\\udc00"}', b"\xff\xfe{}"]
        for content in raw:
            response = await api.request("POST", path, role=caller, content=content)
            where = f"POST {path} {content[:120]!r}: {response.status_code} {response.text[:200]}"
            assert 400 <= response.status_code < 500, where
            assert response.headers["content-type"].startswith("application/problem+json"), where
            assert response.json()["type"].startswith("urn:scambio:problem:"), where
            seen += 1
    assert seen > 250
    assert await fingerprint(api) == before


async def test_bad_ids_and_queries_are_4xx(world: World) -> None:
    api = world.api
    before = await fingerprint(api)
    for path, status in [
        ("/api/v1/exchanges/%00", 404),
        ("/api/v1/exchanges/" + "a" * 300, 404),
        ("/api/v1/exchanges/<b>", 404),
        (f"/api/v1/exchanges/{new_uuid()}", 404),
        ("/api/v1/exchanges/group/nope", 404),
        (f"/api/v1/exchanges/group/{new_uuid()}", 404),
        ("/api/v1/exchanges?limit=0", 400),
        ("/api/v1/exchanges?limit=100000", 400),
        ("/api/v1/exchanges?cursor=-1", 400),
        ("/api/v1/exchanges?cursor=%00", 400),
        ("/api/v1/exchanges?state=<b>", 400),
        ("/api/v1/members/nobody/statement", 404),
        ("/api/v1/members/0123456789abcdef/statement", 404),
        (f"/api/v1/members/{world.marco.id}/statement?cursor=x", 400),
        (f"/api/v1/members/{world.marco.id}/statement?limit=501", 400),
        ("/api/v1/members/<b>/statement.csv", 404),
        ("/api/v1/members/nobody/thanks", 404),
        (f"/api/v1/members/{world.marco.id}/thanks?cursor=abc", 400),
    ]:
        response = await api.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for action in ("accept", "decline", "cancel", "done", "confirm", "thank"):
        for exchange_id in ("nope", new_uuid(), "%00", world.ids["proposed"] + "0"):
            body = {"message": "m"} if action == "thank" else None
            response = await api.post(
                f"/api/v1/exchanges/{exchange_id}/{action}", body, role="marco"
            )
            assert 400 <= response.status_code < 500, (action, exchange_id, response.text)
    assert await fingerprint(api) == before
