"""Transfers, holds, batches and reversals over HTTP, and every way to get them wrong."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scambio.ledger.entry import MAX_MINUTES

from .api_helpers import Api, assert_problem, new_uuid, running_api
from .conftest import Clock


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path, clock=clock) as running:
        await running.open("marco")
        await running.open("giulia")
        await running.open("anna", min_balance=0)
        yield running


async def balances(api: Api, account: str) -> tuple[int, int, int]:
    view = (await api.get(f"/api/v1/accounts/{account}")).json()
    return view["posted"], view["pending"], view["available"]


# -- transfers ---------------------------------------------------------------------------


async def test_transfer_returns_receipt_matching_the_entry(api: Api) -> None:
    transfer_id = new_uuid()
    body = {"id": transfer_id, "payer": "marco", "payee": "giulia", "minutes": 90, "memo": "maths"}
    response = await api.post("/api/v1/transfers", body)
    assert response.status_code == 201
    receipt = response.json()
    assert set(receipt) == {"id", "index", "leaf_hash", "tree_size"}
    assert receipt["id"] == transfer_id
    assert receipt["index"] == 3
    assert receipt["tree_size"] == 4
    entries = (await api.get("/api/v1/ledger/entries", start=3)).json()
    canonical = base64.b64decode(entries[0]["canonical"])
    assert base64.b64decode(receipt["leaf_hash"]) == hashlib.sha256(b"\x00" + canonical).digest()
    assert entries[0]["entry"]["memo"] == "maths"
    assert await balances(api, "marco") == (-90, 0, -90)
    assert await balances(api, "giulia") == (90, 0, 90)


async def test_identical_retry_is_200_with_the_same_body(api: Api) -> None:
    body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 45}
    first = await api.post("/api/v1/transfers", body)
    await api.transfer("giulia", "marco", 5)
    again = await api.post("/api/v1/transfers", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await balances(api, "marco") == (-40, 0, -40)


async def test_upper_case_uuid_is_the_same_idempotency_key(api: Api) -> None:
    transfer_id = new_uuid()
    body = {"payer": "marco", "payee": "giulia", "minutes": 45}
    first = await api.post("/api/v1/transfers", {"id": transfer_id, **body})
    again = await api.post("/api/v1/transfers", {"id": transfer_id.upper(), **body})
    assert again.status_code == 200
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payer": "anna"}, "payer"),
        ({"payee": "anna"}, "payee"),
        ({"minutes": 46}, "minutes"),
        ({"memo": "other"}, "memo"),
        ({"hold": True}, "hold"),
    ],
)
async def test_same_id_different_fields_is_409(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 45}
    assert (await api.post("/api/v1/transfers", body)).status_code == 201
    size = await api.tree_size()
    problem = assert_problem(
        await api.post("/api/v1/transfers", {**body, **change}), 409, "idempotency-conflict"
    )
    assert problem["field"] == field
    assert await api.tree_size() == size


async def test_limit_exceeded_names_account_available_and_shortfall(api: Api) -> None:
    response = await api.transfer("marco", "giulia", 601)
    problem = assert_problem(response, 422, "limit-exceeded")
    assert problem["account"] == "marco"
    assert problem["available"] == 0
    assert problem["shortfall"] == 1
    problem = assert_problem(await api.transfer("anna", "giulia", 30), 422, "limit-exceeded")
    assert (problem["account"], problem["shortfall"]) == ("anna", 30)


BAD_TRANSFERS: list[tuple[str, dict[str, Any] | bytes, int, str]] = [
    ("float minutes", {"minutes": 90.5}, 400, "invalid-request"),
    ("integral float minutes", {"minutes": 90.0}, 400, "invalid-request"),
    ("exponent minutes", {"minutes": 9e1}, 400, "invalid-request"),
    ("string minutes", {"minutes": "90"}, 400, "invalid-request"),
    ("boolean minutes", {"minutes": True}, 400, "invalid-request"),
    ("null minutes", {"minutes": None}, 400, "invalid-request"),
    ("zero minutes", {"minutes": 0}, 422, "invalid-amount"),
    ("negative minutes", {"minutes": -5}, 422, "invalid-amount"),
    ("minutes beyond 10^9", {"minutes": MAX_MINUTES + 1}, 422, "invalid-amount"),
    ("huge minutes", {"minutes": 10**30}, 422, "invalid-amount"),
    ("unknown payee", {"payee": "nobody"}, 422, "unknown-account"),
    ("unknown payer", {"payer": "nobody"}, 422, "unknown-account"),
    ("payer is payee", {"payee": "marco"}, 422, "same-account"),
    ("malformed payer", {"payer": "Marco Rossi"}, 422, "invalid-account-id"),
    ("id not a uuid", {"id": "transfer-1"}, 422, "invalid-id"),
    ("uuid without hyphens", {"id": "0f8e1c9a2b7d4e519a3c5d6f7a8b9c0d"}, 422, "invalid-id"),
    ("numeric id", {"id": 12}, 400, "invalid-request"),
    ("unknown field", {"colour": "red"}, 400, "invalid-request"),
    ("memo too long", {"memo": "x" * 1001}, 400, "invalid-request"),
    ("expiry without hold", {"hold_expires_in": 60}, 422, "invalid-hold"),
    ("zero expiry", {"hold": True, "hold_expires_in": 0}, 400, "invalid-request"),
    ("float expiry", {"hold": True, "hold_expires_in": 1.5}, 400, "invalid-request"),
    ("invalid json", b'{"id": ', 400, "invalid-request"),
    ("not an object", b"[1, 2]", 400, "invalid-request"),
    ("empty body", b"", 400, "invalid-request"),
    (
        "missing field",
        b'{"payer": "marco", "payee": "giulia", "minutes": 5}',
        400,
        "invalid-request",
    ),
]


@pytest.mark.parametrize(
    ("change", "status", "slug"),
    [case[1:] for case in BAD_TRANSFERS],
    ids=[case[0] for case in BAD_TRANSFERS],
)
async def test_bad_transfers_are_4xx_and_write_nothing(
    api: Api, change: dict[str, Any] | bytes, status: int, slug: str
) -> None:
    size = await api.tree_size()
    if isinstance(change, bytes):
        response = await api.post("/api/v1/transfers", content=change)
    else:
        body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 30, **change}
        response = await api.post("/api/v1/transfers", body)
    assert_problem(response, status, slug)
    assert await api.tree_size() == size
    assert await balances(api, "marco") == (0, 0, 0)


async def test_validation_messages_name_the_field(api: Api) -> None:
    body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 90.0}
    problem = assert_problem(await api.post("/api/v1/transfers", body), 400, "invalid-request")
    assert "minutes" in problem["detail"]
    body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 9, "tip": 1}
    problem = assert_problem(await api.post("/api/v1/transfers", body), 400, "invalid-request")
    assert "tip" in problem["detail"]


async def test_oversize_body_is_413(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path, SCAMBIO_MAX_BODY_SIZE="2048") as api:
        await api.open("marco")
        await api.open("giulia")
        body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 5}
        response = await api.post("/api/v1/transfers", {**body, "memo": "x" * 4000})
        assert_problem(response, 413, "body-too-large")
        assert await api.tree_size() == 2


# -- holds -------------------------------------------------------------------------------


async def hold(api: Api, minutes: int = 60, **extra: Any) -> str:
    hold_id = new_uuid()
    body = {"id": hold_id, "payer": "marco", "payee": "giulia", "minutes": minutes, "hold": True}
    response = await api.post("/api/v1/transfers", {**body, **extra})
    assert response.status_code == 201, response.text
    return hold_id


async def test_hold_then_partial_post(api: Api) -> None:
    hold_id = await hold(api, 60)
    assert await balances(api, "marco") == (0, -60, -60)
    response = await api.post(f"/api/v1/transfers/{hold_id}/post", {"minutes": 45})
    assert response.status_code == 201
    assert response.json()["id"] == f"{hold_id}:post"
    assert await balances(api, "marco") == (-45, 0, -45)
    assert await balances(api, "giulia") == (45, 0, 45)
    again = await api.post(f"/api/v1/transfers/{hold_id}/post", {"minutes": 45})
    assert again.status_code == 200
    assert again.json() == response.json()
    problem = assert_problem(
        await api.post(f"/api/v1/transfers/{hold_id}/post", {"minutes": 40}),
        409,
        "idempotency-conflict",
    )
    assert problem["field"] == "minutes"


async def test_post_without_body_posts_everything(api: Api) -> None:
    hold_id = await hold(api, 60)
    response = await api.post(f"/api/v1/transfers/{hold_id}/post")
    assert response.status_code == 201
    assert await balances(api, "giulia") == (60, 0, 60)


async def test_void_releases_the_hold_and_retries_are_200(api: Api) -> None:
    hold_id = await hold(api, 60)
    first = await api.post(f"/api/v1/transfers/{hold_id}/void")
    assert first.status_code == 201
    assert first.json()["id"] == f"{hold_id}:void"
    assert await balances(api, "marco") == (0, 0, 0)
    again = await api.post(f"/api/v1/transfers/{hold_id}/void", {})
    assert (again.status_code, again.json()) == (200, first.json())
    assert_problem(await api.post(f"/api/v1/transfers/{hold_id}/post"), 409, "hold-resolved")


async def test_void_after_post_is_409(api: Api) -> None:
    hold_id = await hold(api, 60)
    await api.post(f"/api/v1/transfers/{hold_id}/post")
    problem = assert_problem(
        await api.post(f"/api/v1/transfers/{hold_id}/void"), 409, "hold-resolved"
    )
    assert isinstance(problem["resolved_by"], int)


async def test_expired_hold_cannot_be_posted(api: Api, clock: Clock) -> None:
    hold_id = await hold(api, 60, hold_expires_in=600)
    clock.advance(seconds=601)
    size = await api.tree_size()
    assert_problem(await api.post(f"/api/v1/transfers/{hold_id}/post"), 409, "hold-expired")
    assert await api.tree_size() == size


@pytest.mark.parametrize(
    ("path", "body", "status", "slug"),
    [
        ("/api/v1/transfers/{unknown}/post", None, 404, "hold-not-found"),
        ("/api/v1/transfers/{unknown}/void", None, 404, "hold-not-found"),
        ("/api/v1/transfers/{transfer}/post", None, 404, "hold-not-found"),
        ("/api/v1/transfers/{hold}/post", {"minutes": 61}, 422, "post-exceeds-hold"),
        ("/api/v1/transfers/{hold}/post", {"minutes": 0}, 422, "invalid-amount"),
        ("/api/v1/transfers/{hold}/post", {"minutes": 30.0}, 400, "invalid-request"),
        ("/api/v1/transfers/{hold}/post", {"minutes": 30, "x": 1}, 400, "invalid-request"),
        ("/api/v1/transfers/{hold}/void", {"reason": "changed mind"}, 400, "invalid-request"),
    ],
)
async def test_bad_hold_resolutions(
    api: Api, path: str, body: dict[str, Any] | None, status: int, slug: str
) -> None:
    hold_id = await hold(api, 60)
    transfer = (await api.transfer("marco", "giulia", 5)).json()["id"]
    size = await api.tree_size()
    url = path.format(unknown=new_uuid(), transfer=transfer, hold=hold_id)
    assert_problem(await api.post(url, body), status, slug)
    assert await api.tree_size() == size


async def test_the_expire_holds_job_voids_expired_holds(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running_api(db_url, tmp_path, clock=clock, SCAMBIO_RUN_JOBS="serve") as api:
        await api.open("marco")
        await api.open("giulia")
        hold_id = await hold(api, 60, hold_expires_in=60)
        clock.advance(seconds=61)
        # The scheduler looks at each job just after its period ends; wake it now instead.
        api.client.blocking_portal.call(api.app.state.jobs.wake, "expire-holds")
        for _ in range(200):
            statement = (await api.get("/api/v1/accounts/marco/statement")).json()
            if len(statement["lines"]) == 1 and (await balances(api, "marco"))[1] == 0:
                break
            await asyncio.sleep(0.05)
        assert await balances(api, "marco") == (0, 0, 0)
        entries = (await api.get("/api/v1/ledger/entries")).json()
        assert entries[-1]["entry"]["id"] == f"{hold_id}:void"
        assert entries[-1]["entry"]["refs"]["reason"] == "expired"


# -- reversals ---------------------------------------------------------------------------


async def test_reverse_a_transfer(api: Api) -> None:
    index = (await api.transfer("marco", "giulia", 90)).json()["index"]
    reversal_id = new_uuid()
    body = {"id": reversal_id, "memo": "entered twice"}
    response = await api.post(f"/api/v1/entries/{index}/reverse", body)
    assert response.status_code == 201
    assert response.json()["id"] == reversal_id
    assert await balances(api, "marco") == (0, 0, 0)
    again = await api.post(f"/api/v1/entries/{index}/reverse", body)
    assert (again.status_code, again.json()) == (200, response.json())
    problem = assert_problem(
        await api.post(f"/api/v1/entries/{index}/reverse", {"id": new_uuid()}),
        409,
        "already-reversed",
    )
    assert problem["reversed_by"] == response.json()["index"]
    problem = assert_problem(
        await api.post(f"/api/v1/entries/{index}/reverse", {**body, "memo": "other"}),
        409,
        "idempotency-conflict",
    )
    assert problem["field"] == "memo"


@pytest.mark.parametrize(
    ("target", "body", "status", "slug"),
    [
        ("0", {"id": "{id}"}, 422, "not-reversible"),  # an account entry
        ("999", {"id": "{id}"}, 422, "not-reversible"),
        ("-1", {"id": "{id}"}, 422, "not-reversible"),
        ("{index}", {"id": "not-a-uuid"}, 422, "invalid-id"),
        ("{index}", {"id": "{id}", "memo": 5}, 400, "invalid-request"),
        ("{index}", {"memo": "no id"}, 400, "invalid-request"),
        ("abc", {"id": "{id}"}, 404, "not-found"),
    ],
)
async def test_bad_reversals(
    api: Api, target: str, body: dict[str, Any], status: int, slug: str
) -> None:
    index = (await api.transfer("marco", "giulia", 90)).json()["index"]
    size = await api.tree_size()
    filled = {k: v.format(id=new_uuid()) if isinstance(v, str) else v for k, v in body.items()}
    response = await api.post(f"/api/v1/entries/{target.format(index=index)}/reverse", filled)
    assert_problem(response, status, slug)
    assert await api.tree_size() == size


# -- batches -----------------------------------------------------------------------------


def item(payer: str, payee: str, minutes: Any, **extra: Any) -> dict[str, Any]:
    return {"id": new_uuid(), "payer": payer, "payee": payee, "minutes": minutes, **extra}


async def test_unlinked_batch_commits_each_item_on_its_own(api: Api) -> None:
    items = [
        item("marco", "giulia", 10),
        item("anna", "giulia", 10),  # anna may not go below zero
        item("marco", "marco", 10),
        {**item("marco", "giulia", 10), "id": "nope"},
        item("giulia", "marco", 3),
    ]
    response = await api.post("/api/v1/transfers/batch", {"linked": False, "transfers": items})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["linked"] is False
    results = body["results"]
    assert [r["status"] for r in results] == [201, 422, 422, 422, 201]
    assert [r["id"] for r in results] == [i["id"] for i in items]
    assert results[1]["problem"]["type"] == "urn:scambio:problem:limit-exceeded"
    assert results[2]["problem"]["type"] == "urn:scambio:problem:same-account"
    assert results[3]["problem"]["type"] == "urn:scambio:problem:invalid-id"
    assert results[0]["receipt"]["tree_size"] == results[4]["receipt"]["tree_size"]
    assert await balances(api, "giulia") == (7, 0, 7)

    retry = await api.post("/api/v1/transfers/batch", {"linked": False, "transfers": items})
    assert [r["status"] for r in retry.json()["results"]] == [200, 422, 422, 422, 200]


async def test_linked_batch_is_all_or_nothing(api: Api) -> None:
    items = [item("marco", "giulia", 10), item("anna", "giulia", 10), item("giulia", "marco", 3)]
    size = await api.tree_size()
    response = await api.post("/api/v1/transfers/batch", {"linked": True, "transfers": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["linked"]) == (False, True)
    statuses = [(r["status"], r["problem"]["type"].rsplit(":", 1)[1]) for r in body["results"]]
    assert statuses == [(422, "linked-failed"), (422, "limit-exceeded"), (422, "linked-failed")]
    assert body["results"][0]["problem"]["failed_item"] == 1
    assert await api.tree_size() == size

    good = [item("marco", "giulia", 10), item("giulia", "anna", 4)]
    response = await api.post("/api/v1/transfers/batch", {"linked": True, "transfers": good})
    body = response.json()
    assert body["ok"] is True
    assert [r["status"] for r in body["results"]] == [201, 201]
    assert await balances(api, "anna") == (4, 0, 4)


async def test_linked_batch_with_a_malformed_id_writes_nothing(api: Api) -> None:
    items = [item("marco", "giulia", 10), {**item("marco", "giulia", 10), "id": "x"}]
    size = await api.tree_size()
    body = (await api.post("/api/v1/transfers/batch", {"linked": True, "transfers": items})).json()
    kinds = [r["problem"]["type"].rsplit(":", 1)[1] for r in body["results"]]
    assert kinds == ["linked-failed", "invalid-id"]
    assert await api.tree_size() == size


@pytest.mark.parametrize(
    "body",
    [
        {"linked": True, "transfers": []},
        {"linked": True},
        {"linked": "yes", "transfers": [{"payer": "a"}]},
        {"transfers": [{"id": "x", "payer": "marco", "payee": "giulia", "minutes": 1.0}]},
        {"transfers": [item("marco", "giulia", 5)] * 501},
        {"transfers": [item("marco", "giulia", 5)], "atomic": True},
    ],
)
async def test_unreadable_batches_are_400(api: Api, body: dict[str, Any]) -> None:
    size = await api.tree_size()
    assert_problem(await api.post("/api/v1/transfers/batch", body), 400, "invalid-request")
    assert await api.tree_size() == size


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "slug"),
    [
        ("POST", "/api/v1/transfers", {"payer": "mar\u0000co"}, 422, "invalid-account-id"),
        ("POST", "/api/v1/transfers", {"payee": "x" * 65}, 422, "invalid-account-id"),
        (
            "POST",
            "/api/v1/accounts",
            {"id": "ann\u0000a", "kind": "member"},
            422,
            "invalid-account-id",
        ),
        ("POST", "/api/v1/transfers/%00/post", None, 404, "hold-not-found"),
        ("POST", "/api/v1/transfers/a%00b/void", None, 404, "hold-not-found"),
        ("POST", f"/api/v1/transfers/{'h' * 300}/void", None, 404, "hold-not-found"),
        ("GET", "/api/v1/accounts/mar%00co", None, 404, "unknown-account"),
        ("GET", "/api/v1/accounts/mar%00co/statement", None, 404, "unknown-account"),
        (
            "GET",
            "/api/v1/accounts/marco/statement?cursor=99999999999999999999",
            None,
            400,
            "invalid-request",
        ),
        ("GET", "/api/v1/accounts/marco/statement?cursor=%D9%A3", None, 400, "invalid-request"),
        ("GET", "/api/v1/ledger/entries?start=99999999999999999999", None, 400, "invalid-request"),
    ],
)
async def test_ids_the_database_could_choke_on_are_4xx(
    api: Api, method: str, path: str, body: dict[str, Any] | None, status: int, slug: str
) -> None:
    size = await api.tree_size()
    if path == "/api/v1/transfers" and body is not None:
        body = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 5, **body}
    assert_problem(await api.request(method, path, json=body), status, slug)
    assert await api.tree_size() == size


async def test_memo_text_round_trips_exactly(api: Api) -> None:
    memo = 'aiuto compiti \u00e8 \u2603 \u0000 \n "quoted" <b>'
    response = await api.transfer("marco", "giulia", 5, memo=memo)
    assert response.status_code == 201
    statement = (await api.get("/api/v1/accounts/giulia/statement")).json()
    assert statement["lines"][0]["memo"] == memo
