"""Policies over HTTP: a company admin enrols staff and reads the figures; a member reads
their sponsored credit; managers grant from the pool; and every error path is a problem
with its type, writing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scambio.ledger.entry import format_time
from scambio.policy import runner
from scambio.policy.loader import apply_directory
from scambio.store.db import make_engine

from .api_helpers import Api, Person, assert_problem, in_app, new_uuid, running_api
from .conftest import Clock
from .policy_helpers import policy_text

GRANT = "acme-care"
BAD = "invalid-request"
POOL = "solidarity"


@dataclass
class Acme:
    api: Api
    org: dict[str, Any]
    paolo: Person  # Acme's admin
    marco: Person  # an Acme employee, a parent
    giulia: Person  # a neighbour who looks after children
    bea: Person  # admin of another company
    folder: Path

    async def apply(self) -> None:
        engine = make_engine(str(self.api.ledger.engine.url), null_pool=True)
        try:
            report = await apply_directory(
                engine, self.folder, format_time(self.api.ledger.clock())
            )
        finally:
            await engine.dispose()
        assert report.ok, [r.error for r in report.errors]


@pytest.fixture
async def acme(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Acme]:
    """Acme and its people, on 25 November 2026 (the test clock)."""
    async with running_api(db_url, tmp_path, clock=clock) as api:
        paolo = await api.add_member("paolo")
        marco = await api.add_member("marco", zone="municipio-6")
        giulia = await api.add_member("giulia")
        bea = await api.add_member("bea")
        org = await api.add_org("Acme", admin=paolo)
        await api.add_org("Beta", admin=bea)
        link = await api.post(
            f"/api/v1/organisations/{org['id']}/employees", {"member_id": marco.id}
        )
        assert (
            await api.post(f"/api/v1/employee-links/{link.json()['id']}/accept", role="marco")
        ).status_code == 200
        folder = tmp_path / "policies-here"
        folder.mkdir()
        (folder / "grant.toml").write_text(
            policy_text(
                GRANT,
                "grant",
                org["id"],
                {"minutes": 240, "areas": ["childcare"], "enrolment": "by-admin"},
                budget=2400,
                start="2026-01",
            )
        )
        (folder / "pool.toml").write_text(
            policy_text(POOL, "pool", None, {"member_cap_minutes": 120}, budget=150)
        )
        world = Acme(api, org, paolo, marco, giulia, bea, folder)
        await world.apply()
        yield world


async def test_an_org_admin_enrols_a_parent_and_follows_the_figures(acme: Acme) -> None:
    api, org, marco = acme.api, acme.org, acme.marco
    path = f"/api/v1/policies/{GRANT}/enrolments/{marco.id}"
    enrolled = await api.request("PUT", path, role="paolo")
    assert enrolled.status_code == 201, enrolled.text
    assert [e["member_id"] for e in enrolled.json()["items"]] == [marco.id]
    assert (await api.request("PUT", path, role="paolo")).status_code == 200

    run = in_app(api, runner.run_due, api.ledger.clock())
    assert [r.issued for r in run.runs] == [1]

    # Marco pays Giulia for 90 minutes of childcare: all of it sponsored.
    body = {
        "id": new_uuid(),
        "provider": acme.giulia.account,
        "receiver": marco.account,
        "minutes": 90,
        "title": "Babysitting",
        "area": "childcare",
    }
    proposed = await api.post("/api/v1/exchanges", body, role="giulia")
    assert proposed.status_code == 201, proposed.text
    exchange = proposed.json()["id"]
    for action, who in (("accept", "marco"), ("done", "giulia"), ("confirm", "marco")):
        moved = await api.post(f"/api/v1/exchanges/{exchange}/{action}", role=who)
        assert moved.status_code == 200, moved.text
    assert (await api.get(f"/api/v1/accounts/{marco.account}")).json()["posted"] == 0

    figures = await api.get(f"/api/v1/organisations/{org['id']}/sponsorship", role="paolo")
    assert figures.status_code == 200, figures.text
    (policy,) = figures.json()["policies"]
    assert policy["id"] == GRANT and [e["member_id"] for e in policy["enrolled"]] == [marco.id]
    (period,) = policy["periods"]
    assert period == {
        "period": "2026-11",
        "budget_minutes": 2400,
        "used": 240,
        "left": 2160,
        "not_issued": 0,
        "granted": 240,
        "spent": 90,
        "spent_by_area": {"childcare": 90},
        "expired": 0,
        "matched": 0,
        "staff_time": 0,
        "pool_granted": 0,
        "failed": 0,
    }

    credit = await api.get(f"/api/v1/members/{marco.id}/sponsored-credit", role="marco")
    assert credit.status_code == 200
    (item,) = credit.json()["items"]
    assert (item["available"], item["posted"], item["areas"]) == (150, 150, ["childcare"])
    assert item["organisation_name"] == "Acme"
    (lot,) = item["lots"]
    assert (lot["granted"], lot["unspent"], lot["period"]) == (240, 150, "2026-11")
    assert lot["expires_at"] == "2027-02-23T09:00:00.000000Z"

    simulated = await api.get(f"/api/v1/policies/{GRANT}/simulate", role="paolo", period="2026-12")
    assert simulated.status_code == 200
    assert [(p["rule"], p["minutes"], p["status"]) for p in simulated.json()["postings"]] == [
        ("grant", 240, "would issue")
    ]

    removed = await api.request("DELETE", path, role="paolo")
    assert removed.status_code == 204
    assert (await api.get(f"/api/v1/policies/{GRANT}/enrolments", role="paolo")).json()[
        "items"
    ] == []


async def test_policies_and_the_text_of_every_version_are_readable(acme: Acme) -> None:
    api = acme.api
    listed = (await api.get("/api/v1/policies", role="marco")).json()["items"]
    assert [(p["id"], p["kind"], p["status"]) for p in listed] == [
        (GRANT, "grant", "active"),
        (POOL, "pool", "active"),
    ]
    policy = (await api.get(f"/api/v1/policies/{GRANT}", role="marco")).json()
    assert policy["schedule"] == {"every": "month", "start": "2026-01", "end": None}
    assert policy["params"]["minutes"] == 240 and policy["budget_minutes"] == 2400
    assert policy["file_error"] is None
    (version,) = (await api.get(f"/api/v1/policies/{GRANT}/versions")).json()["items"]
    assert version["version"] == policy["version"] and version["in_force"]
    text = (await api.get(f"/api/v1/policy-versions/{version['version']}", role="marco")).json()
    assert text["source"] == (acme.folder / "grant.toml").read_text()
    assert '"minutes":240' in text["canonical"]


async def test_managers_grant_from_the_pool_with_a_reason(acme: Acme) -> None:
    api = acme.api
    await api.open("pool:community", "pool")
    await api.open("fund", "sponsor")
    assert (await api.transfer("fund", "pool:community", 1000)).status_code == 201
    body = {"id": new_uuid(), "member_id": acme.giulia.id, "minutes": 90, "reason": "hardship"}
    granted = await api.post(f"/api/v1/policies/{POOL}/pool-grants", body, role="manager")
    assert granted.status_code == 201, granted.text
    assert (granted.json()["minutes"], granted.json()["not_issued"]) == (90, 0)
    again = await api.post(f"/api/v1/policies/{POOL}/pool-grants", body, role="manager")
    assert again.status_code == 200 and again.json()["entry_index"] == granted.json()["entry_index"]
    more = {**body, "id": new_uuid(), "minutes": 60}
    capped = await api.post(f"/api/v1/policies/{POOL}/pool-grants", more, role="manager")
    assert (capped.status_code, capped.json()["minutes"], capped.json()["not_issued"]) == (
        201,
        30,
        30,
    )
    audit = (await api.get("/api/v1/audit", role="manager")).json()["items"]
    grants = [a for a in audit if a["action"] == "policy.pool-grant"]
    assert len(grants) == 2 and grants[0]["reason"] == "hardship"


# -- errors --------------------------------------------------------------------------------------


async def unchanged(api: Api, size: int) -> None:
    assert await api.tree_size() == size


async def test_unknown_policies_and_versions_are_404(acme: Acme) -> None:
    api = acme.api
    for path in (
        "/api/v1/policies/no-such-policy",
        "/api/v1/policies/no-such-policy/versions",
        "/api/v1/policies/no-such-policy/enrolments",
        "/api/v1/policies/NOT%20AN%20ID",
    ):
        problem = assert_problem(await api.get(path), 404, "policy-not-found")
        assert "does not exist" in problem["detail"]
    assert_problem(
        await api.get("/api/v1/policies/no-such-policy/simulate", period="2026-11"),
        404,
        "policy-not-found",
    )
    assert_problem(
        await api.get(f"/api/v1/policy-versions/{'0' * 64}"), 404, "policy-version-not-found"
    )
    problem = assert_problem(
        await api.get("/api/v1/policy-versions/abc"), 404, "policy-version-not-found"
    )
    assert problem["detail"] == "'abc' is not a policy version (64 lower-case hex digits)"
    assert_problem(
        await api.get("/api/v1/organisations/0000000000000000/sponsorship"),
        404,
        "organisation-not-found",
    )
    assert_problem(
        await api.get("/api/v1/members/0000000000000000/sponsored-credit"),
        404,
        "member-not-found",
    )


async def test_another_organisation_sees_nothing_of_acme(acme: Acme) -> None:
    api, org = acme.api, acme.org
    for path in (
        f"/api/v1/organisations/{org['id']}/sponsorship",
        f"/api/v1/policies/{GRANT}/enrolments",
    ):
        problem = assert_problem(await api.get(path, role="bea"), 403, "forbidden")
        assert problem["detail"] == "only the sponsor's admins and staff may see this"
    assert_problem(
        await api.get(f"/api/v1/policies/{GRANT}/simulate", role="bea", period="2026-11"),
        403,
        "forbidden",
    )
    size = await api.tree_size()
    refused = await api.request(
        "PUT", f"/api/v1/policies/{GRANT}/enrolments/{acme.marco.id}", role="bea"
    )
    assert_problem(refused, 403, "forbidden")
    assert_problem(
        await api.get(f"/api/v1/members/{acme.marco.id}/sponsored-credit", role="giulia"),
        403,
        "forbidden",
    )
    await unchanged(api, size)


async def test_enrolment_errors(acme: Acme) -> None:
    api = acme.api
    not_employee = await api.request(
        "PUT", f"/api/v1/policies/{GRANT}/enrolments/{acme.giulia.id}", role="paolo"
    )
    problem = assert_problem(not_employee, 422, "not-an-employee")
    assert problem["detail"] == (
        f"member {acme.giulia.id!r} is not an active employee of organisation {acme.org['id']}"
    )
    missing = await api.request(
        "DELETE", f"/api/v1/policies/{GRANT}/enrolments/{acme.marco.id}", role="paolo"
    )
    assert_problem(missing, 404, "enrolment-not-found")
    unknown = await api.request(
        "PUT", f"/api/v1/policies/{GRANT}/enrolments/not-a-member", role="paolo"
    )
    assert_problem(unknown, 404, "member-not-found")
    pool = await api.request(
        "PUT", f"/api/v1/policies/{POOL}/enrolments/{acme.marco.id}", role="manager"
    )
    problem = assert_problem(pool, 409, "enrolment-not-needed")
    assert problem["detail"] == f"policy {POOL!r} does not take enrolments: it is for no members"


async def test_simulate_needs_a_period_of_the_schedule(acme: Acme) -> None:
    api = acme.api
    problem = assert_problem(
        await api.get(f"/api/v1/policies/{GRANT}/simulate", period="2026-Q4"), 400, "invalid-period"
    )
    assert problem["detail"] == "expected a month like 2026-12, got '2026-Q4'"
    assert_problem(await api.get(f"/api/v1/policies/{GRANT}/simulate"), 400, "invalid-request")


@pytest.mark.parametrize(
    ("body", "status", "slug", "detail"),
    [
        ({"minutes": 90.0}, 400, "invalid-request", "Expected `int`, got `float` - at `$.minutes`"),
        ({"minutes": "90"}, 400, "invalid-request", "Expected `int`, got `str` - at `$.minutes`"),
        ({"minutes": 0}, 400, "invalid-request", "Expected `int` >= 1 (in body `minutes`)"),
        (
            {"minutes": 60_001},
            400,
            "invalid-request",
            "Expected `int` <= 60000 (in body `minutes`)",
        ),
        (
            {"reason": ""},
            400,
            "invalid-request",
            "Expected `str` of length >= 1 (in body `reason`)",
        ),
        ({"reason": "   "}, 422, "invalid-field", "a reason is required"),
        (
            {"colour": "red"},
            400,
            "invalid-request",
            "Object contains unknown field `colour` (in body)",
        ),
        (
            {"id": "1"},
            422,
            "invalid-id",
            "id '1' must be a UUID in its 8-4-4-4-12 hexadecimal form",
        ),
        ({"member_id": "nobody"}, 404, "member-not-found", "member 'nobody' does not exist"),
    ],
)
async def test_bad_pool_grants_are_refused_and_write_nothing(
    acme: Acme, body: dict[str, Any], status: int, slug: str, detail: str
) -> None:
    api = acme.api
    size = await api.tree_size()
    full = {"id": new_uuid(), "member_id": acme.giulia.id, "minutes": 30, "reason": "hardship"}
    response = await api.post(
        f"/api/v1/policies/{POOL}/pool-grants", {**full, **body}, role="manager"
    )
    problem = assert_problem(response, status, slug)
    assert problem["detail"] == detail
    await unchanged(api, size)


async def test_pool_grants_that_cannot_be_made(acme: Acme) -> None:
    api = acme.api
    size = await api.tree_size()

    def body(**extra: Any) -> dict[str, Any]:
        return {
            "id": new_uuid(),
            "member_id": acme.giulia.id,
            "minutes": 30,
            "reason": "r",
            **extra,
        }

    problem = assert_problem(
        await api.post(f"/api/v1/policies/{GRANT}/pool-grants", body(), role="manager"),
        422,
        "not-a-pool-policy",
    )
    assert problem["detail"] == f"policy {GRANT!r} is a grant policy, not a pool"
    assert_problem(
        await api.post("/api/v1/policies/nope/pool-grants", body(), role="manager"),
        404,
        "policy-not-found",
    )
    # The pool has no minutes yet: the ledger's own refusal, and nothing is granted.
    empty = await api.post(f"/api/v1/policies/{POOL}/pool-grants", body(), role="manager")
    problem = assert_problem(empty, 422, "limit-exceeded")
    assert problem["detail"].startswith("nothing was granted: ")
    await api.open("fund", "sponsor")
    assert (await api.transfer("fund", "pool:community", 1000)).status_code == 201
    size = await api.tree_size()
    first = body(minutes=120)
    assert (
        await api.post(f"/api/v1/policies/{POOL}/pool-grants", first, role="manager")
    ).status_code == 201
    capped = await api.post(f"/api/v1/policies/{POOL}/pool-grants", body(), role="manager")
    problem = assert_problem(capped, 422, "pool-cap-reached")
    assert "cap 120" in problem["detail"]
    conflict = await api.post(
        f"/api/v1/policies/{POOL}/pool-grants", {**first, "minutes": 119}, role="manager"
    )
    problem = assert_problem(conflict, 409, "idempotency-conflict")
    assert problem["field"] == "minutes"
    assert await api.tree_size() == size + 1
