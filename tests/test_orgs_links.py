"""Organisations and employee links, as a story.

Sara (manager) registers Acme with Paolo as its admin, and Beta with Bea. Paolo proposes
that Luisa, a worker, is linked to Acme; Luisa accepts. Bea, admin of another company,
can neither see nor change Acme's links. Either side can end a link; a proposal resolves
once. Acme's time account is Paolo's to spend, not Bea's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .api_helpers import Api, Person, assert_problem, running_api


@dataclass
class World:
    api: Api
    paolo: Person
    bea: Person
    luisa: Person
    acme: dict[str, Any]
    beta: dict[str, Any]


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", role="manager")
        paolo = await api.add_member("paolo")
        bea = await api.add_member("bea")
        luisa = await api.add_member("luisa")
        acme = await api.add_org("Acme S.p.A.", admin=paolo)
        beta = await api.add_org("Beta Onlus", admin=bea, kind="nonprofit")
        yield World(api, paolo, bea, luisa, acme, beta)


async def test_paolo_links_luisa_to_acme_and_she_accepts(world: World) -> None:
    api, acme, luisa = world.api, world.acme, world.luisa
    assert acme["account_id"] == f"o-{acme['id']}"
    account = (await api.get(f"/api/v1/accounts/{acme['account_id']}", role="sara")).json()
    assert account["kind"] == "organisation"

    proposed = await api.post(
        f"/api/v1/organisations/{acme['id']}/employees",
        {"member_id": luisa.id, "title": "HR"},
        role="paolo",
    )
    assert proposed.status_code == 201, proposed.text
    link = proposed.json()
    assert (link["status"], link["organisation"], link["member"]) == (
        "proposed",
        acme["id"],
        luisa.id,
    )
    twice = await api.post(
        f"/api/v1/organisations/{acme['id']}/employees", {"member_id": luisa.id}, role="paolo"
    )
    assert_problem(twice, 409, "link-exists")

    # Paolo cannot accept on Luisa's behalf; Luisa can.
    assert_problem(
        await api.post(f"/api/v1/employee-links/{link['id']}/accept", role="paolo"),
        403,
        "forbidden",
    )
    accepted = await api.post(f"/api/v1/employee-links/{link['id']}/accept", role="luisa")
    assert accepted.json()["status"] == "active"
    assert_problem(
        await api.post(f"/api/v1/employee-links/{link['id']}/accept", role="luisa"),
        409,
        "invalid-status",
    )
    me = (await api.get("/api/v1/members/me", role="luisa")).json()
    assert me["employers"] == [acme["id"]]
    employees = (
        await api.get(f"/api/v1/organisations/{acme['id']}/employees", role="paolo")
    ).json()
    assert [(i["member"], i["status"]) for i in employees["items"]] == [(luisa.id, "active")]
    mine = (await api.get(f"/api/v1/members/{luisa.id}/links", role="luisa")).json()
    assert [i["id"] for i in mine["items"]] == [link["id"]]

    # Either side ends it; afterwards a new proposal is possible.
    ended = await api.post(
        f"/api/v1/employee-links/{link['id']}/end", {"reason": "moved on"}, role="luisa"
    )
    assert ended.json()["status"] == "ended"
    log = (await api.get("/api/v1/audit", role="auditor", subject_type="employee-link")).json()
    assert [e["action"] for e in log["items"]] == [
        "employee-link.proposed",
        "employee-link.accepted",
        "employee-link.ended",
    ]
    assert log["items"][-1]["reason"] == "moved on"
    again = await api.post(
        f"/api/v1/organisations/{acme['id']}/employees", {"member_id": luisa.id}, role="paolo"
    )
    assert again.status_code == 201


async def test_another_companys_admin_cannot_see_or_change_acmes_links(world: World) -> None:
    api, acme, luisa = world.api, world.acme, world.luisa
    link = (
        await api.post(
            f"/api/v1/organisations/{acme['id']}/employees", {"member_id": luisa.id}, role="paolo"
        )
    ).json()
    assert_problem(
        await api.get(f"/api/v1/organisations/{acme['id']}/employees", role="bea"),
        403,
        "forbidden",
    )
    assert_problem(
        await api.get(f"/api/v1/employee-links/{link['id']}", role="bea"), 404, "link-not-found"
    )
    for action in ("end", "accept", "decline"):
        response = await api.post(f"/api/v1/employee-links/{link['id']}/{action}", role="bea")
        assert_problem(response, 404, "link-not-found")
    assert_problem(
        await api.post(
            f"/api/v1/organisations/{acme['id']}/employees", {"member_id": world.bea.id}, role="bea"
        ),
        403,
        "forbidden",
    )
    assert_problem(
        await api.request(
            "PATCH", f"/api/v1/organisations/{acme['id']}", role="bea", json={"name": "Mine"}
        ),
        403,
        "forbidden",
    )
    assert_problem(
        await api.request(
            "PUT", f"/api/v1/organisations/{acme['id']}/admins/{world.bea.id}", role="bea"
        ),
        403,
        "forbidden",
    )
    # Acme's profile is public, its admins are not.
    seen = (await api.get(f"/api/v1/organisations/{acme['id']}", role="bea")).json()
    assert seen["name"] == "Acme S.p.A." and "admins" not in seen
    # Acme's account is Paolo's to read and spend, not Bea's.
    assert_problem(
        await api.get(f"/api/v1/accounts/{acme['account_id']}", role="bea"), 403, "forbidden"
    )
    denied = await api.transfer(acme["account_id"], luisa.account, 60, role="bea")
    assert_problem(denied, 403, "forbidden")
    donated = await api.transfer(acme["account_id"], luisa.account, 60, role="paolo")
    assert donated.status_code == 201, denied.text
    # Nothing changed: the link is still proposed.
    still = (await api.get(f"/api/v1/employee-links/{link['id']}", role="paolo")).json()
    assert still["status"] == "proposed"


async def test_a_proposal_is_withdrawn_or_declined_once(world: World) -> None:
    api, acme, luisa = world.api, world.acme, world.luisa
    path = f"/api/v1/organisations/{acme['id']}/employees"
    first = (await api.post(path, {"member_id": luisa.id}, role="paolo")).json()
    withdrawn = await api.post(f"/api/v1/employee-links/{first['id']}/end", role="paolo")
    assert withdrawn.json()["status"] == "withdrawn"
    late = await api.post(f"/api/v1/employee-links/{first['id']}/accept", role="luisa")
    assert assert_problem(late, 409, "invalid-status")["current_status"] == "withdrawn"
    second = (await api.post(path, {"member_id": luisa.id}, role="paolo")).json()
    declined = await api.post(f"/api/v1/employee-links/{second['id']}/decline", role="luisa")
    assert declined.json()["status"] == "declined"


async def test_org_admins_appoint_and_remove_admins(world: World) -> None:
    api, acme = world.api, world.acme
    added = await api.request(
        "PUT", f"/api/v1/organisations/{acme['id']}/admins/{world.luisa.id}", role="paolo"
    )
    assert added.status_code == 201, added.text
    assert sorted(added.json()["admins"]) == sorted([world.paolo.id, world.luisa.id])
    same = await api.request(
        "PUT", f"/api/v1/organisations/{acme['id']}/admins/{world.luisa.id}", role="paolo"
    )
    assert same.status_code == 200
    # Luisa's existing token now acts for Acme.
    renamed = await api.request(
        "PATCH", f"/api/v1/organisations/{acme['id']}", role="luisa", json={"zone": "municipio-4"}
    )
    assert renamed.json()["zone"] == "municipio-4"
    removed = await api.request(
        "DELETE", f"/api/v1/organisations/{acme['id']}/admins/{world.luisa.id}", role="sara"
    )
    assert removed.json()["admins"] == [world.paolo.id]
    assert_problem(
        await api.request(
            "DELETE", f"/api/v1/organisations/{acme['id']}/admins/{world.luisa.id}", role="sara"
        ),
        404,
        "admin-not-found",
    )
    assert_problem(
        await api.request("PATCH", f"/api/v1/organisations/{acme['id']}", role="luisa", json={}),
        403,
        "forbidden",
    )


async def test_organisations_are_listed_and_validated(world: World) -> None:
    api = world.api
    page = (await api.get("/api/v1/organisations", role="luisa", limit=1)).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = (await api.get("/api/v1/organisations", role="luisa", cursor=page["next_cursor"])).json()
    names = {page["items"][0]["name"], rest["items"][0]["name"]}
    assert names == {"Acme S.p.A.", "Beta Onlus"}
    bad_kind = await api.post("/api/v1/organisations", {"name": "X", "kind": "cartel"}, role="sara")
    assert_problem(bad_kind, 422, "invalid-field")
    bad_zone = await api.post(
        "/api/v1/organisations", {"name": "X", "kind": "company", "zone": "mars"}, role="sara"
    )
    assert_problem(bad_zone, 422, "unknown-zone")
    by_member = await api.post(
        "/api/v1/organisations", {"name": "X", "kind": "company"}, role="luisa"
    )
    assert_problem(by_member, 403, "forbidden")
    nobody = await api.post(
        "/api/v1/organisations",
        {"name": "X", "kind": "company", "admin_member_id": "0123456789abcdef"},
        role="sara",
    )
    assert_problem(nobody, 404, "member-not-found")
    assert_problem(
        await api.get("/api/v1/organisations/zzz", role="luisa"), 404, "organisation-not-found"
    )
