"""Helpers for the API tests: a running app on the test database, with a token per role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from scambio.app import create_app
from scambio.store.appender import Clock
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.tokens import issue_token

from .conftest import make_settings

ROLES = ("admin", "manager", "auditor")
PROBLEM = "urn:scambio:problem:"
#: The password of every member `Api.add_member` creates.
PASSWORD = "correct horse battery staple"


@dataclass
class Api:
    """A started app, its client and one bearer token per role."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    tokens: dict[str, str]

    @property
    def ledger(self) -> LedgerService:
        service: LedgerService = self.app.state.ledger
        return service

    def auth(self, role: str | None = "admin") -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = self.auth(role)
        if content is not None:
            headers["Content-Type"] = "application/json"
        return await self.client.request(
            method, path, headers=headers, json=json, content=content, params=params
        )

    async def get(self, path: str, *, role: str | None = "admin", **params: Any) -> httpx.Response:
        return await self.request("GET", path, role=role, params=params or None)

    async def post(
        self,
        path: str,
        json: Any = None,
        *,
        role: str | None = "admin",
        content: bytes | None = None,
    ) -> httpx.Response:
        return await self.request("POST", path, role=role, json=json, content=content)

    async def tree_size(self) -> int:
        response = await self.client.get("/health")
        return int(response.json()["tree_size"])

    async def open(self, account_id: str, kind: str = "member", **limits: Any) -> None:
        response = await self.post("/api/v1/accounts", {"id": account_id, "kind": kind, **limits})
        assert response.status_code == 201, response.text

    async def transfer(
        self, payer: str, payee: str, minutes: int, *, role: str | None = "admin", **extra: Any
    ) -> httpx.Response:
        body = {"id": new_uuid(), "payer": payer, "payee": payee, "minutes": minutes, **extra}
        return await self.post("/api/v1/transfers", body, role=role)

    # -- people (members log in; their tokens join `tokens` under a name) ------------------

    async def login(
        self, email: str, password: str = PASSWORD, *, as_: str | None = None, **extra: Any
    ) -> httpx.Response:
        """Log in; on success keep the token under `as_` for `role=` in later requests."""
        response = await self.post(
            "/api/v1/auth/login", {"email": email, "password": password, **extra}, role=None
        )
        if response.status_code == 200 and as_ is not None:
            self.tokens[as_] = response.json()["token"]
        return response

    async def add_member(
        self,
        key: str,
        *,
        name: str | None = None,
        role: str = "member",
        by: str = "admin",
        **profile: Any,
    ) -> Person:
        """Create an active member through the API and log them in as `key`."""
        email = f"{key}@example.org"
        body = {"name": name or key.capitalize(), "email": email, "password": PASSWORD}
        response = await self.post("/api/v1/members", {**body, "role": role, **profile}, role=by)
        assert response.status_code == 201, response.text
        member = response.json()
        logged_in = await self.login(email, as_=key)
        assert logged_in.status_code == 200, logged_in.text
        return Person(key, member["id"], member["account_id"], email)

    async def add_org(
        self, name: str, *, admin: Person | None = None, kind: str = "company"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "kind": kind}
        if admin is not None:
            body["admin_member_id"] = admin.id
        response = await self.post("/api/v1/organisations", body, role="manager")
        assert response.status_code == 201, response.text
        org: dict[str, Any] = response.json()
        if admin is not None:
            # The admin's token learns of the organisation at its next request.
            assert org["admins"] == [admin.id]
        return org

    async def mail_sent(self) -> None:
        """Wait until the outbox has been flushed (messages are logged at INFO).

        The app runs in the test client's own event loop (another thread): the flush runs
        there, through the client's portal.
        """
        mailer = self.app.state.timebank.mailer

        async def flush() -> None:
            await mailer.idle()
            await mailer.flush()

        self.client.blocking_portal.call(flush)


@dataclass(frozen=True)
class Person:
    """A member the test created: their token is `api.tokens[key]`."""

    key: str
    id: str
    account: str
    email: str


def new_uuid() -> str:
    return str(uuid.uuid4())


@asynccontextmanager
async def running_api(
    db_url: str, tmp_path: Path, *, clock: Clock | None = None, **env: str
) -> AsyncIterator[Api]:
    """Issue a token per role into the test database, then start the app on it."""
    engine = make_engine(db_url, null_pool=True)
    try:
        tokens = {role: await issue_token(engine, role, f"test {role}") for role in ROLES}
    finally:
        await engine.dispose()
    # Scheduled jobs stay off unless a test turns them on: they would act on their own.
    env = {"SCAMBIO_RUN_JOBS": "off", "SCAMBIO_PASSWORD_HASH_COST": "minimal", **env}
    app = create_app(make_settings(db_url, tmp_path, **env), clock=clock)
    async with AsyncTestClient(app=app) as client:
        yield Api(app, client, tokens)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


# -- listings and matching (offers, requests, the manager's queue) -------------------------

#: A valid listing body; tests override what they care about.
LISTING = {
    "kind": "offer",
    "title": "Homework help",
    "area": "training_empowerment",
    "zone": "municipio-6",
}


async def post_listing(api: Api, role: str, **fields: Any) -> dict[str, Any]:
    """Post a listing as `role` (a member key or a staff role) and return it."""
    response = await api.post("/api/v1/listings", {**LISTING, **fields}, role=role)
    assert response.status_code == 201, response.text
    listing: dict[str, Any] = response.json()
    return listing


def in_app(api: Api, fn: Any, *args: Any) -> Any:
    """Run the coroutine function `fn(timebank, *args)` in the app's event loop, as the
    scheduled jobs will (the app runs in the test client's thread)."""
    return api.client.blocking_portal.call(fn, api.app.state.timebank, *args)


# -- exchanges -------------------------------------------------------------------------------

#: The moves that bring a new exchange (proposed by its provider) to each state, with who
#: makes each: "p" the provider, "r" the receiver, or a staff role.
EXCHANGE_PATHS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "proposed": [],
    "accepted": [("accept", "r", None)],
    "done": [("accept", "r", None), ("done", "p", None)],
    "confirmed": [("accept", "r", None), ("done", "p", None), ("confirm", "r", None)],
    "disputed": [("accept", "r", None), ("done", "p", None), ("dispute", "r", {"reason": "?"})],
    "cancelled": [("accept", "r", None), ("cancel", "p", None)],
}


async def exchange_in(
    api: Api,
    provider: Person,
    receiver: Person,
    state: str = "proposed",
    *,
    minutes: int = 2,
    title: str = "Homework help",
) -> str:
    """Propose an exchange as `provider` and drive it to `state` through the API."""
    body = {
        "id": new_uuid(),
        "provider": provider.account,
        "receiver": receiver.account,
        "minutes": minutes,
        "title": title,
    }
    proposed = await api.post("/api/v1/exchanges", body, role=provider.key)
    assert proposed.status_code == 201, proposed.text
    exchange_id = str(proposed.json()["id"])
    for action, by, move in EXCHANGE_PATHS[state]:
        role = {"p": provider.key, "r": receiver.key}.get(by, by)
        response = await api.post(f"/api/v1/exchanges/{exchange_id}/{action}", move, role=role)
        assert response.status_code == 200, response.text
    return exchange_id
