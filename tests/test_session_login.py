"""Logging in, throttling, and a member's own tokens (scoped, listed, revocable, expiring)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .api_helpers import PASSWORD, Api, Person, assert_problem, running_api
from .conftest import Clock


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with running_api(
        db_url, tmp_path, clock=clock, SCAMBIO_MEMBER_TOKEN_TTL="7200"
    ) as running:
        yield running


@pytest.fixture
async def giulia(api: Api) -> Person:
    return await api.add_member("giulia")


async def test_wrong_password_and_unknown_email_look_the_same(api: Api, giulia: Person) -> None:
    verified: list[bool] = []
    passwords = api.app.state.timebank.passwords
    original = passwords._verify

    def spy(stored: str | None, password: str) -> bool:
        verified.append(stored is not None)
        return bool(original(stored, password))

    passwords._verify = spy
    wrong = await api.login(giulia.email, "not the password")
    unknown = await api.login("nobody@example.org", "not the password")
    malformed = await api.login("not an email", "not the password")
    for response in (wrong, unknown, malformed):
        body = assert_problem(response, 401, "invalid-credentials")
        assert body["detail"] == "the email or the password is wrong"
    # Every attempt checked a hash: the real one, or a dummy of the same cost.
    assert verified == [True, False, False]


async def test_five_failures_lock_the_email_for_fifteen_minutes(
    api: Api, giulia: Person, clock: Clock
) -> None:
    for _ in range(5):
        assert_problem(await api.login(giulia.email, "wrong password"), 401, "invalid-credentials")
    locked = await api.login(giulia.email)  # even the right password
    body = assert_problem(locked, 429, "too-many-attempts")
    assert locked.headers["retry-after"] == "900"
    assert body["retry_after"] == 900
    clock.advance(minutes=10)
    assert (await api.login(giulia.email)).headers["retry-after"] == "300"
    # Another address is not locked.
    other = await api.add_member("marco")
    assert (await api.login(other.email)).status_code == 200
    clock.advance(minutes=5, seconds=1)
    assert (await api.login(giulia.email)).status_code == 200


async def test_a_successful_login_resets_the_count(api: Api, giulia: Person) -> None:
    for _ in range(4):
        await api.login(giulia.email, "wrong password")
    assert (await api.login(giulia.email)).status_code == 200
    for _ in range(4):
        await api.login(giulia.email, "wrong password")
    assert (await api.login(giulia.email)).status_code == 200


async def test_one_address_trying_many_emails_is_throttled(api: Api, clock: Clock) -> None:
    for n in range(20):
        response = await api.login(f"guess{n}@example.org", "wrong password")
        assert_problem(response, 401, "invalid-credentials")
    blocked = await api.login("guess99@example.org", "wrong password")
    assert_problem(blocked, 429, "too-many-attempts")
    assert int(blocked.headers["retry-after"]) == 900


async def test_tokens_are_scoped_listed_and_revocable(api: Api, giulia: Person) -> None:
    marco = await api.add_member("marco")
    tokens = (await api.get("/api/v1/auth/tokens", role="giulia")).json()
    assert [(t["name"], t["scopes"]) for t in tokens] == [
        ("login", ["manage", "read", "transfer", "write"])
    ]
    assert tokens[0]["expires_at"] == "2026-11-25T11:00:00.000000Z"

    created = await api.post(
        "/api/v1/auth/tokens", {"name": "phone app", "scopes": ["read"]}, role="giulia"
    )
    assert created.status_code == 201, created.text
    api.tokens["giulia-ro"] = created.json()["token"]
    assert (
        await api.get(f"/api/v1/accounts/{giulia.account}", role="giulia-ro")
    ).status_code == 200
    refused = await api.transfer(giulia.account, marco.account, 5, role="giulia-ro")
    assert_problem(refused, 403, "forbidden")
    # A read-only token cannot mint itself more.
    escalate = await api.post(
        "/api/v1/auth/tokens", {"name": "more", "scopes": ["transfer"]}, role="giulia-ro"
    )
    assert_problem(escalate, 422, "invalid-scope")

    listed = (await api.get("/api/v1/auth/tokens", role="giulia")).json()
    assert len(listed) == 2
    # Marco cannot revoke Giulia's token; Giulia can.
    token_id = created.json()["id"]
    assert_problem(
        await api.request("DELETE", f"/api/v1/auth/tokens/{token_id}", role="marco"),
        404,
        "token-not-found",
    )
    gone = await api.request("DELETE", f"/api/v1/auth/tokens/{token_id}", role="giulia")
    assert gone.status_code == 204
    assert_problem(await api.get("/api/v1/members/me", role="giulia-ro"), 401, "unauthenticated")

    assert (await api.post("/api/v1/auth/logout", role="giulia")).status_code == 204
    assert_problem(await api.get("/api/v1/members/me", role="giulia"), 401, "unauthenticated")


async def test_login_scopes_and_expiry(api: Api, giulia: Person, clock: Clock) -> None:
    limited = await api.login(giulia.email, scopes=["read"], token_name="kiosk", as_="kiosk")
    assert limited.json()["scopes"] == ["read"]
    bad = await api.login(giulia.email, scopes=["root"])
    assert_problem(bad, 422, "invalid-scope")
    empty = await api.login(giulia.email, scopes=[])
    assert_problem(empty, 422, "invalid-scope")
    clock.advance(hours=2)
    assert_problem(await api.get("/api/v1/members/me", role="kiosk"), 401, "unauthenticated")
    assert (await api.get("/api/v1/auth/tokens", role="admin")).status_code == 403


async def test_changing_the_password_revokes_the_other_tokens(api: Api, giulia: Person) -> None:
    await api.login(giulia.email, as_="tablet")
    wrong = await api.post(
        "/api/v1/auth/password",
        {"current_password": "not it at all", "new_password": "a brand new secret"},
        role="giulia",
    )
    assert_problem(wrong, 401, "invalid-credentials")
    short = await api.post(
        "/api/v1/auth/password",
        {"current_password": PASSWORD, "new_password": "short"},
        role="giulia",
    )
    assert_problem(short, 422, "invalid-password")
    changed = await api.post(
        "/api/v1/auth/password",
        {"current_password": PASSWORD, "new_password": "a brand new secret"},
        role="giulia",
    )
    assert changed.status_code == 204
    assert (await api.get("/api/v1/members/me", role="giulia")).status_code == 200
    assert_problem(await api.get("/api/v1/members/me", role="tablet"), 401, "unauthenticated")
    assert_problem(await api.login(giulia.email), 401, "invalid-credentials")
    assert (await api.login(giulia.email, "a brand new secret")).status_code == 200


async def test_passwords_and_tokens_never_reach_the_logs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    giulia = await api.add_member("giulia")
    await api.login(giulia.email, "a wrong password!")
    await api.post(
        "/api/v1/auth/password",
        {"current_password": PASSWORD, "new_password": "another secret 42"},
        role="giulia",
    )
    created = await api.post(
        "/api/v1/auth/tokens", {"name": "x", "scopes": ["read"]}, role="giulia"
    )
    secrets: list[Any] = [
        PASSWORD,
        "a wrong password!",
        "another secret 42",
        created.json()["token"],
    ]
    secrets += list(api.tokens.values())
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in text
