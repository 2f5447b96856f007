"""The manager's queue leaves out requests that an exchange already serves, on SQLite and
PostgreSQL.

Marco, Ines and Luca each ask for help. Giulia offers to help Marco from his request:
while that exchange is alive (proposed, accepted, done, disputed, confirmed, resolved)
the request is served and leaves Sara's queue; if Marco declines, or it is cancelled or
lapses, it comes back, because Marco still needs someone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .api_helpers import Api, Person, new_uuid, post_listing, running_api


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


async def queue(api: Api) -> list[str]:
    page = (await api.get("/api/v1/manager/queue", role="manager", suggestions=0)).json()
    return [item["request"]["title"] for item in page["items"]]


async def offer_help(api: Api, giulia: Person, person: Person, request_id: str) -> str:
    body = {
        "id": new_uuid(),
        "provider": giulia.account,
        "receiver": person.account,
        "minutes": 30,
        "title": "I can help",
        "listing_id": request_id,
    }
    response = await api.post("/api/v1/exchanges", body, role=giulia.key)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def move(api: Api, exchange_id: str, action: str, who: str) -> None:
    response = await api.post(f"/api/v1/exchanges/{exchange_id}/{action}", role=who)
    assert response.status_code == 200, response.text


async def test_requests_an_exchange_serves_leave_the_queue(api: Api) -> None:
    giulia = await api.add_member("giulia")
    people = {key: await api.add_member(key) for key in ("marco", "ines", "luca")}
    requests = {
        key: (await post_listing(api, key, kind="request", title=f"{key.title()} needs help"))["id"]
        for key in people
    }
    assert await queue(api) == ["Marco needs help", "Ines needs help", "Luca needs help"]

    # Giulia offers to help Marco: his request is served while the exchange is alive.
    first = await offer_help(api, giulia, people["marco"], requests["marco"])
    assert await queue(api) == ["Ines needs help", "Luca needs help"]
    # Marco declines: he still needs someone, and is back in the queue.
    await move(api, first, "decline", "marco")
    assert await queue(api) == ["Marco needs help", "Ines needs help", "Luca needs help"]

    # Ines's is accepted, then cancelled: out, then back.
    second = await offer_help(api, giulia, people["ines"], requests["ines"])
    await move(api, second, "accept", "ines")
    assert await queue(api) == ["Marco needs help", "Luca needs help"]
    await move(api, second, "cancel", "giulia")
    assert "Ines needs help" in await queue(api)

    # Luca's goes all the way to confirmed: it stays out.
    third = await offer_help(api, giulia, people["luca"], requests["luca"])
    await move(api, third, "accept", "luca")
    await move(api, third, "done", "giulia")
    await move(api, third, "confirm", "luca")
    assert await queue(api) == ["Marco needs help", "Ines needs help"]
