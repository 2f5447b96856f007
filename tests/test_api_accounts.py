"""Accounts over HTTP: opening (idempotent), balances, statements and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .api_helpers import Api, assert_problem, running_api


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


async def test_open_account_applies_kind_defaults(api: Api) -> None:
    response = await api.post("/api/v1/accounts", {"id": "giulia", "kind": "member"})
    assert response.status_code == 201
    assert response.headers["location"] == "/api/v1/accounts/giulia"
    body = response.json()
    assert body["id"] == "giulia"
    assert body["kind"] == "member"
    assert (body["min_balance"], body["max_balance"]) == (-600, None)
    assert body["index"] == 0
    assert body["tree_size"] == 1
    assert len(body["leaf_hash"]) == 44  # base64 of 32 bytes

    pool = await api.post("/api/v1/accounts", {"id": "pool", "kind": "pool"})
    assert (pool.json()["min_balance"], pool.json()["max_balance"]) == (0, None)


async def test_explicit_null_limits_are_unbounded(api: Api) -> None:
    response = await api.post(
        "/api/v1/accounts",
        {"id": "acme", "kind": "organisation", "min_balance": None, "max_balance": 6000},
    )
    assert response.status_code == 201
    assert (response.json()["min_balance"], response.json()["max_balance"]) == (None, 6000)
    view = (await api.get("/api/v1/accounts/acme")).json()
    assert view == {
        "id": "acme",
        "kind": "organisation",
        "posted": 0,
        "pending": 0,
        "available": 0,
        "min_balance": None,
        "max_balance": 6000,
        "tree_size": 1,
    }


async def test_identical_retry_returns_200_and_same_body(api: Api) -> None:
    request = {"id": "marco", "kind": "member", "min_balance": -120}
    first = await api.post("/api/v1/accounts", request)
    assert first.status_code == 201
    await api.post("/api/v1/accounts", {"id": "giulia", "kind": "member"})
    await api.transfer("marco", "giulia", 60)
    again = await api.post("/api/v1/accounts", request)
    assert again.status_code == 200
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"kind": "organisation"}, "kind"),
        ({"min_balance": -60}, "min_balance"),
        ({"max_balance": 100}, "max_balance"),
    ],
)
async def test_same_id_different_fields_is_409_naming_the_field(
    api: Api, retry: dict[str, object], field: str
) -> None:
    await api.post("/api/v1/accounts", {"id": "marco", "kind": "member"})
    size = await api.tree_size()
    response = await api.post("/api/v1/accounts", {"id": "marco", "kind": "member", **retry})
    body = assert_problem(response, 409, "idempotency-conflict")
    assert body["field"] == field
    assert field in body["detail"]
    assert await api.tree_size() == size


async def test_account_balances_follow_transfers_and_holds(api: Api) -> None:
    await api.open("marco")
    await api.open("giulia")
    assert (await api.transfer("marco", "giulia", 90)).status_code == 201
    assert (await api.transfer("marco", "giulia", 30, hold=True)).status_code == 201
    marco = (await api.get("/api/v1/accounts/marco")).json()
    giulia = (await api.get("/api/v1/accounts/giulia")).json()
    assert (marco["posted"], marco["pending"], marco["available"]) == (-90, -30, -120)
    assert (giulia["posted"], giulia["pending"], giulia["available"]) == (90, 30, 90)


async def test_unknown_account_is_404(api: Api) -> None:
    body = assert_problem(await api.get("/api/v1/accounts/nobody"), 404, "unknown-account")
    assert body["account"] == "nobody"
    assert_problem(await api.get("/api/v1/accounts/nobody/statement"), 404, "unknown-account")


async def test_statement_pages_with_cursor(api: Api) -> None:
    await api.open("marco")
    await api.open("giulia")
    for minutes in (10, 20, 30, 40, 50):
        await api.transfer("marco", "giulia", minutes, memo=f"visit {minutes}")
    await api.transfer("giulia", "marco", 5, hold=True)

    first = (await api.get("/api/v1/accounts/giulia/statement", limit=4)).json()
    assert [line["minutes"] for line in first["lines"]] == [10, 20, 30, 40]
    assert [line["balance"] for line in first["lines"]] == [10, 30, 60, 100]
    assert first["lines"][0]["memo"] == "visit 10"
    assert first["lines"][0]["kind"] == "transfer"
    assert first["lines"][0]["pending"] is False
    assert first["next_cursor"] == str(first["lines"][-1]["index"])

    second = (
        await api.get("/api/v1/accounts/giulia/statement", limit=4, cursor=first["next_cursor"])
    ).json()
    assert [(line["minutes"], line["pending"]) for line in second["lines"]] == [
        (50, False),
        (-5, True),
    ]
    assert second["lines"][-1]["kind"] == "hold"
    assert second["lines"][-1]["balance"] == 150  # a hold leaves the posted balance alone
    assert second["next_cursor"] is None

    everything = (await api.get("/api/v1/accounts/giulia/statement")).json()
    assert len(everything["lines"]) == 6
    assert set(everything["lines"][0]) == {
        "index",
        "id",
        "kind",
        "time",
        "minutes",
        "pending",
        "balance",
        "memo",
    }


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"cursor": "abc"}, {"cursor": "-1"}],
)
async def test_bad_statement_parameters_are_400(api: Api, params: dict[str, object]) -> None:
    await api.open("marco")
    response = await api.get("/api/v1/accounts/marco/statement", **params)
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"id": "Marco", "kind": "member"}, 422, "invalid-account-id"),
        ({"id": "", "kind": "member"}, 422, "invalid-account-id"),
        ({"id": "marco", "kind": "wizard"}, 422, "invalid-account-kind"),
        ({"id": "marco", "kind": "member", "min_balance": 10}, 422, "invalid-limits"),
        ({"id": "marco", "kind": "member", "max_balance": -10}, 422, "invalid-limits"),
        ({"id": "marco", "kind": "member", "min_balance": -(10**20)}, 400, "invalid-request"),
        ({"id": "marco", "kind": "member", "min_balance": -60.0}, 400, "invalid-request"),
        ({"id": "marco", "kind": "member", "min_balance": "-60"}, 400, "invalid-request"),
        ({"id": "marco", "kind": "member", "colour": "red"}, 400, "invalid-request"),
        ({"id": "marco"}, 400, "invalid-request"),
        ({"id": 7, "kind": "member"}, 400, "invalid-request"),
        (["marco", "member"], 400, "invalid-request"),
    ],
)
async def test_bad_account_requests_write_nothing(
    api: Api, body: object, status: int, slug: str
) -> None:
    size = await api.tree_size()
    problem = assert_problem(await api.post("/api/v1/accounts", body), status, slug)
    if slug == "invalid-request":
        assert "$" in problem["detail"] or "field" in problem["detail"] or problem["detail"]
    assert await api.tree_size() == size


async def test_unknown_field_is_named(api: Api) -> None:
    response = await api.post("/api/v1/accounts", {"id": "marco", "kind": "member", "colour": 1})
    assert "colour" in assert_problem(response, 400, "invalid-request")["detail"]


async def test_invalid_json_is_400(api: Api) -> None:
    response = await api.post("/api/v1/accounts", content=b'{"id": "marco",')
    assert_problem(response, 400, "invalid-request")
    assert await api.tree_size() == 0
