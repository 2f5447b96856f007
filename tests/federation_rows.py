"""The federation routes' rows of the authorisation matrix (tests/test_authz_matrix.py).

Peers are managed by admins only (managers are refused); staff read them. Members send
cross-timebank transfers from accounts they hold. Node-to-node routes take no bearer
token at all: without a signature every caller gets 401 `signature-required`, before
anything is written. Peer names are 16 hex digits, so the matrix can template them.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from scambio.ledger.note import Signer

from .api_helpers import new_uuid

World = Any
Request = tuple[str, str, Any]
Make = Callable[[World], Awaitable[Request]]
Expect = Callable[..., dict[str | None, int | None]]
#: Nothing listens there: calls to this peer fail at once (unreachable).
NOWHERE = "http://127.0.0.1:9"


def peer_body() -> dict[str, Any]:
    name = secrets.token_hex(8)
    vkey = Signer.generate(f"{name}.peer.test/ledger").verifier().to_string()
    return {"name": name, "base_url": NOWHERE, "vkey": vkey}


async def new_peer(w: World) -> str:
    body = peer_body()
    response = await w.api.post("/api/v1/federation/peers", body)
    assert response.status_code == 201, response.text
    return str(body["name"])


def on_peer(method: str, suffix: str = "", body: Any = None) -> Make:
    async def make(w: World) -> Request:
        return method, f"/api/v1/federation/peers/{await new_peer(w)}{suffix}", body

    return make


async def add_peer(_w: World) -> Request:
    return "POST", "/api/v1/federation/peers", peer_body()


async def _send_body(w: World) -> dict[str, Any]:
    return {
        "id": new_uuid(),
        "payer": w.marco.account,
        "payee": f"m-0000000000000000@{await new_peer(w)}",
        "minutes": 1,
    }


async def send(w: World) -> Request:
    return "POST", "/api/v1/federation/transfers", await _send_body(w)


async def view_sent(w: World) -> Request:
    body = await _send_body(w)
    response = await w.api.post("/api/v1/federation/transfers", body)
    assert response.status_code == 202, response.text
    return "GET", f"/api/v1/federation/transfers/{body['id']}", None


def fixed(method: str, path: str, body: Any = None) -> Make:
    async def make(_w: World) -> Request:
        return method, path, body

    return make


def federation_rows(expect: Expect) -> list[tuple[str, Make, dict[str | None, int | None]]]:
    staff_read = expect(403, manager=200, auditor=200, admin=200)
    admin_only = expect(403, admin=200)
    unsigned = expect(401, anon=401)
    return [
        ("list peers", fixed("GET", "/api/v1/federation/peers"), staff_read),
        ("add peer", add_peer, expect(403, admin=201)),
        ("view peer", on_peer("GET"), staff_read),
        ("change peer", on_peer("PATCH", body={"max_we_owe": 60, "reason": "r"}), admin_only),
        ("reconcile peer", on_peer("POST", "/reconcile"), admin_only),
        ("reconciliations", fixed("GET", "/api/v1/federation/reconciliations"), staff_read),
        ("recover transfers", fixed("POST", "/api/v1/federation/recover"), admin_only),
        ("send cross transfer", send, expect(403, marco=202, manager=202, admin=202)),
        ("list cross transfers", fixed("GET", "/api/v1/federation/transfers"), staff_read),
        (
            "view cross transfer",
            view_sent,
            expect(404, marco=200, manager=200, auditor=200, admin=200),
        ),
        ("node prepare", fixed("POST", "/api/v1/federation/prepare", {}), unsigned),
        ("node commit", fixed("POST", "/api/v1/federation/commit", {}), unsigned),
        ("node abort", fixed("POST", "/api/v1/federation/abort", {}), unsigned),
        ("node status", fixed("POST", "/api/v1/federation/status", {"ids": []}), unsigned),
        ("node statement", fixed("GET", "/api/v1/federation/statement"), unsigned),
    ]
