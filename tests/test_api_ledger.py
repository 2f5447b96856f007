"""The public ledger endpoints: checkpoints, key, entries, proofs, health, and outages."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scambio.ledger import merkle
from scambio.ledger.entry import decode_entry
from scambio.ledger.note import Checkpoint, Verifier, open_checkpoint
from scambio.store.db import make_engine

from .api_helpers import Api, assert_problem, running_api
from .conftest import ORIGIN

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        await running.open("marco")
        await running.open("giulia")
        yield running


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def signed_checkpoint(api: Api) -> Checkpoint:
    """The latest checkpoint, verified with the key the API publishes."""
    response = await api.get("/api/v1/ledger/checkpoint", role=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    key = (await api.get("/api/v1/ledger/key", role=None)).json()
    assert key["origin"] == ORIGIN
    return open_checkpoint(response.text, Verifier.from_string(key["vkey"]), ORIGIN)


async def test_checkpoint_verifies_with_the_published_key(api: Api) -> None:
    checkpoint = await signed_checkpoint(api)
    assert checkpoint.size == 2
    await api.transfer("marco", "giulia", 30)
    later = await signed_checkpoint(api)
    assert later.size == 3
    assert later.root != checkpoint.root


async def test_entries_carry_canonical_bytes_and_leaf_hashes(api: Api) -> None:
    await api.transfer("marco", "giulia", 30, memo="ciao è")
    entries = (await api.get("/api/v1/ledger/entries")).json()
    assert [e["index"] for e in entries] == [0, 1, 2]
    for item in entries:
        canonical = b64(item["canonical"])
        assert b64(item["leaf_hash"]) == merkle.leaf_hash(canonical)
        assert decode_entry(canonical).index == item["index"]
        assert item["entry"]["index"] == item["index"]
    assert entries[2]["entry"]["memo"] == "ciao è"
    leaves = [b64(e["leaf_hash"]) for e in entries]
    assert merkle.root_of(leaves) == (await signed_checkpoint(api)).root

    page = (await api.get("/api/v1/ledger/entries", start=1, limit=1)).json()
    assert [e["index"] for e in page] == [1]
    assert (await api.get("/api/v1/ledger/entries", start=50)).json() == []


async def test_inclusion_proofs_verify_against_signed_roots(api: Api) -> None:
    for minutes in range(1, 6):
        await api.transfer("marco", "giulia", minutes)
    checkpoint = await signed_checkpoint(api)
    assert checkpoint.size == 7
    for index in range(checkpoint.size):
        proof = (await api.get("/api/v1/ledger/proof/inclusion", role=None, index=index)).json()
        assert proof["size"] == checkpoint.size
        assert proof["index"] == index
        merkle.verify_inclusion(
            b64(proof["leaf_hash"]),
            index,
            checkpoint.size,
            [b64(h) for h in proof["proof"]],
            checkpoint.root,
        )
    # An older tree, by explicit size, against the root of the tree built from entries.
    entries = (await api.get("/api/v1/ledger/entries")).json()
    old_root = merkle.root_of([b64(e["leaf_hash"]) for e in entries[:4]])
    proof = (await api.get("/api/v1/ledger/proof/inclusion", role=None, index=1, size=4)).json()
    merkle.verify_inclusion(
        b64(proof["leaf_hash"]), 1, 4, [b64(h) for h in proof["proof"]], old_root
    )


async def test_consistency_proofs_verify_between_signed_checkpoints(api: Api) -> None:
    first = await signed_checkpoint(api)
    seen = [first]
    for minutes in range(1, 5):
        await api.transfer("marco", "giulia", minutes)
        seen.append(await signed_checkpoint(api))
    latest = seen[-1]
    for old in seen:
        response = await api.get(
            "/api/v1/ledger/proof/consistency", role=None, **{"from": old.size}
        )
        proof = response.json()
        assert (proof["from"], proof["to"]) == (old.size, latest.size)
        merkle.verify_consistency(
            old.size, latest.size, [b64(h) for h in proof["proof"]], old.root, latest.root
        )
    explicit = (
        await api.get("/api/v1/ledger/proof/consistency", role=None, **{"from": 2, "to": 4})
    ).json()
    merkle.verify_consistency(2, 4, [b64(h) for h in explicit["proof"]], seen[0].root, seen[2].root)


@pytest.mark.parametrize(
    ("path", "params", "slug"),
    [
        ("inclusion", {"index": 2}, "invalid-proof-request"),
        ("inclusion", {"index": 0, "size": 3}, "beyond-tree"),
        ("inclusion", {"index": 0, "size": 0}, "invalid-proof-request"),
        ("inclusion", {"index": -1}, "invalid-request"),
        ("inclusion", {"index": "one"}, "invalid-request"),
        ("inclusion", {}, "invalid-request"),
        ("inclusion", {"index": 2**70}, "invalid-request"),
        ("consistency", {"from": 0}, "invalid-proof-request"),
        ("consistency", {"from": 0, "to": 0}, "invalid-proof-request"),
        ("consistency", {"from": 2, "to": 1}, "invalid-proof-request"),
        ("consistency", {"from": 1, "to": 3}, "beyond-tree"),
        ("consistency", {"from": 3}, "invalid-proof-request"),
        ("consistency", {"to": 2}, "invalid-request"),
        ("consistency", {"from": "x"}, "invalid-request"),
    ],
)
async def test_bad_proof_requests_are_400(
    api: Api, path: str, params: dict[str, object], slug: str
) -> None:
    response = await api.get(f"/api/v1/ledger/proof/{path}", role=None, **params)
    assert_problem(response, 400, slug)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"start": -1}, {"start": "a"}])
async def test_bad_entry_ranges_are_400(api: Api, params: dict[str, object]) -> None:
    assert_problem(await api.get("/api/v1/ledger/entries", **params), 400, "invalid-request")


async def test_health_reports_the_tree(api: Api) -> None:
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "origin": ORIGIN,
        "tree_size": 2,
        "appender": "running",
        "ledger": "unverified",
    }


async def test_database_outage_is_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = make_engine(UNREACHABLE, null_pool=True)
    try:
        monkeypatch.setattr(api.ledger, "engine", dead)
        monkeypatch.setattr(api.ledger.appender, "_engine", dead)

        health = await api.client.get("/health")
        assert health.status_code == 503
        assert health.headers["retry-after"] == "5"
        assert health.json()["database"] == "unreachable"

        for response in (
            await api.get("/api/v1/accounts/marco"),
            await api.get("/api/v1/ledger/checkpoint", role=None),
            await api.get("/api/v1/ledger/proof/inclusion", role=None, index=0),
        ):
            problem = assert_problem(response, 503, "storage-unavailable")
            assert response.headers["retry-after"] == "5"
            assert "127.0.0.1" not in problem["detail"]
    finally:
        monkeypatch.undo()
        await dead.dispose()


async def test_failed_commit_is_503_and_writes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = make_engine(UNREACHABLE, null_pool=True)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(api.ledger.appender, "_engine", dead)
            response = await api.transfer("marco", "giulia", 30)
            assert_problem(response, 503, "storage-unavailable")
            assert response.headers["retry-after"] == "5"
    finally:
        await dead.dispose()
    assert await api.tree_size() == 2
    assert (await api.transfer("marco", "giulia", 30)).status_code == 201
