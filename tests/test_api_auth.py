"""Bearer tokens: storage, revocation, and the role matrix for every route."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scambio.store.db import make_engine
from scambio.store.tables import api_tokens
from scambio.store.tokens import (
    TokenError,
    authenticate,
    hash_token,
    issue_token,
    list_tokens,
    revoke_token,
)

from .api_helpers import Api, assert_problem, new_uuid, running_api


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        await running.open("marco")
        await running.open("giulia")
        yield running


# -- the token store ---------------------------------------------------------------------


async def test_tokens_are_stored_hashed_and_revocable(db_url: str) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        token = await issue_token(engine, "manager", "Sara, community manager")
        assert token.startswith("scb_")
        async with engine.connect() as conn:
            row = (await conn.execute(select(api_tokens))).one()
        assert bytes(row.token_hash) == hash_token(token)
        assert token not in repr(tuple(row))
        assert token.split("_", 2)[2] not in repr(tuple(row))

        principal = await authenticate(engine, token)
        assert principal is not None
        assert (principal.role, principal.name, principal.can_write) == (
            "manager",
            "Sara, community manager",
            True,
        )
        async with engine.connect() as conn:
            assert await authenticate(conn, token) == principal

        listed = await list_tokens(engine)
        assert [(t.id, t.role, t.revoked_at) for t in listed] == [
            (principal.token_id, "manager", None)
        ]
        assert await revoke_token(engine, principal.token_id) is True
        assert await revoke_token(engine, principal.token_id) is False
        assert await authenticate(engine, token) is None
        assert (await list_tokens(engine))[0].revoked_at is not None
    finally:
        await engine.dispose()


async def test_malformed_and_forged_tokens_are_refused(db_url: str) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        token = await issue_token(engine, "auditor", "auditor")
        prefix, token_id, secret = token.split("_", 2)
        forged_secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        other_id = "0" * 16 if token_id != "0" * 16 else "1" * 16
        for bad in (
            "",
            "scb",
            token + "x",
            f"{prefix}_{token_id}_{forged_secret}",
            f"{prefix}_{other_id}_{secret}",
            token.upper(),
        ):
            assert await authenticate(engine, bad) is None
        principal = await authenticate(engine, token)
        assert principal is not None
        assert principal.can_write is False
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("role", "name", "match"),
    [("root", "x", "role 'root'"), ("admin", "  ", "name"), ("admin", "x" * 201, "name")],
)
async def test_issue_token_checks_role_and_name(
    db_url: str, role: str, name: str, match: str
) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        with pytest.raises(TokenError, match=match):
            await issue_token(engine, role, name)
    finally:
        await engine.dispose()


# -- the role matrix ---------------------------------------------------------------------

PUBLIC, READ, WRITE = "public", "read", "write"


def routes(post_id: str, void_id: str, index: int) -> list[tuple[str, str, Any, str]]:
    """Every route: method, path, body (a fresh valid one), access level."""

    def transfer(**extra: Any) -> dict[str, Any]:
        return {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 1, **extra}

    return [
        ("GET", "/", None, PUBLIC),
        ("GET", "/health", None, PUBLIC),
        ("GET", "/schema/openapi.json", None, PUBLIC),
        ("GET", "/schema/swagger", None, PUBLIC),
        ("GET", "/schema/redoc", None, PUBLIC),
        ("GET", "/api/v1/ledger/checkpoint", None, PUBLIC),
        ("GET", "/api/v1/ledger/key", None, PUBLIC),
        ("GET", "/api/v1/ledger/proof/inclusion?index=0", None, PUBLIC),
        ("GET", "/api/v1/ledger/proof/consistency?from=1", None, PUBLIC),
        ("GET", "/api/v1/ledger/entries", None, READ),
        ("GET", "/api/v1/accounts/marco", None, READ),
        ("GET", "/api/v1/accounts/marco/statement", None, READ),
        ("POST", "/api/v1/accounts", {"id": f"a{new_uuid()[:8]}", "kind": "member"}, WRITE),
        ("POST", "/api/v1/transfers", transfer(), WRITE),
        ("POST", "/api/v1/transfers/batch", {"transfers": [transfer()]}, WRITE),
        ("POST", f"/api/v1/transfers/{post_id}/post", {"minutes": 1}, WRITE),
        ("POST", f"/api/v1/transfers/{void_id}/void", None, WRITE),
        ("POST", f"/api/v1/entries/{index}/reverse", {"id": new_uuid()}, WRITE),
    ]


@pytest.mark.parametrize("role", [None, "auditor", "manager", "admin"])
async def test_role_matrix(api: Api, role: str | None) -> None:
    transfer = await api.transfer("marco", "giulia", 5)
    index = transfer.json()["index"]
    holds = []
    for _ in range(2):
        hold = {"id": new_uuid(), "payer": "marco", "payee": "giulia", "minutes": 5, "hold": True}
        assert (await api.post("/api/v1/transfers", hold)).status_code == 201
        holds.append(hold["id"])
    for method, path, body, access in routes(*holds, index):
        size = await api.tree_size()
        response = await api.request(method, path, role=role, json=body)
        where = f"{role} {method} {path}: {response.text[:200]}"
        if access == PUBLIC or (access == READ and role is not None):
            assert response.status_code == 200, where
        elif role is None:
            assert_problem(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"].startswith("Bearer"), where
            assert await api.tree_size() == size, where
        elif access == WRITE and role == "auditor":
            assert_problem(response, 403, "forbidden")
            assert await api.tree_size() == size, where
        else:
            assert response.status_code in (200, 201), where


@pytest.mark.parametrize(
    "header",
    [
        "Bearer scb_0000000000000000_" + "A" * 43,
        "Bearer not-a-token",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "scb_0000000000000000_" + "A" * 43,
    ],
)
async def test_bad_credentials_are_401(api: Api, header: str) -> None:
    response = await api.client.get("/api/v1/accounts/marco", headers={"Authorization": header})
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_token_is_401(api: Api) -> None:
    principal = await authenticate(api.ledger.engine, api.tokens["manager"])
    assert principal is not None
    assert (await api.get("/api/v1/accounts/marco", role="manager")).status_code == 200
    assert await revoke_token(api.ledger.engine, principal.token_id)
    response = await api.get("/api/v1/accounts/marco", role="manager")
    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_auth_is_checked_before_the_body(api: Api) -> None:
    bad = b'{"minutes": 90.5'
    assert_problem(
        await api.post("/api/v1/transfers", role=None, content=bad), 401, "unauthenticated"
    )
    assert_problem(
        await api.post("/api/v1/transfers", role="auditor", content=bad), 403, "forbidden"
    )


async def test_tokens_never_reach_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = "scb_0123456789abcdef_" + "Z" * 43
    await api.client.get("/api/v1/accounts/marco", headers={"Authorization": f"Bearer {forged}"})
    for role in ("admin", "auditor"):
        await api.get("/api/v1/accounts/marco", role=role)
        await api.post("/api/v1/transfers", {"id": "bad"}, role=role)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for token in (*api.tokens.values(), forged):
        assert token not in text
        assert token.split("_", 2)[2] not in text
