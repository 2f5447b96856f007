"""Peers and cross-timebank transfers through one node's API: every error path by its
problem type and message, the audit trail, and recovery against an unreachable peer with
a controlled clock. (Two real nodes talking: tests/test_federation_nodes.py.)"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from scambio.federation import protocol
from scambio.federation.protocol import Statement
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer

from .api_helpers import Api, assert_problem, new_uuid, running_api
from .conftest import ORIGIN, Clock

NOWHERE = "http://127.0.0.1:9"
PEER_KEY = Signer.generate("zona6.example.org/ledger")


def peer_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "zona6",
        "base_url": NOWHERE,
        "vkey": PEER_KEY.verifier().to_string(),
        **extra,
    }


async def _api_with_peer(api: Api, **extra: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/federation/peers", peer_body(**extra))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- pure parts ----------------------------------------------------------------------------


def test_addresses() -> None:
    assert protocol.parse_address("m-1a2b@zona6") == protocol.Address("m-1a2b", "zona6")
    assert str(protocol.parse_address("org.acme@bt-zona-6")) == "org.acme@bt-zona-6"
    for bad in (
        "zona6",
        "@zona6",
        "m-1@",
        "M-1@zona6",
        "m-1@Zona6",
        "m 1@zona6",
        "m-1@" + "z" * 33,
    ):
        with pytest.raises(RuleViolation) as refused:
            protocol.parse_address(bad)
        assert refused.value.code == "invalid-address"


def test_exchange_rates_never_round() -> None:
    assert protocol.to_theirs(90, 1, 1) == 90
    assert protocol.to_theirs(90, 2, 1) == 45
    assert protocol.to_theirs(30, 1, 3) == 90
    with pytest.raises(RuleViolation) as inexact:
        protocol.to_theirs(91, 2, 1)
    assert inexact.value.code == "inexact-amount"
    assert "multiple of 2 minutes" in inexact.value.detail
    assert protocol.rate_matches(45, 90, 1, 2) and not protocol.rate_matches(45, 91, 1, 2)


def test_signatures_over_a_statement() -> None:
    statement = Statement(
        id=str(uuid.uuid4()),
        payer_ledger="a.example/ledger",
        payer="m-1",
        payee_ledger="b.example/ledger",
        payee="m-2",
        minutes=60,
        payee_minutes=60,
        memo="Spesa",
    )
    signer = Signer.generate("a.example/ledger")
    verifier = signer.verifier()
    for step in protocol.STEPS:
        signature = protocol.sign_step(signer, step, statement)
        assert protocol.check_step(verifier, step, statement, signature)
        others = [s for s in protocol.STEPS if s != step]
        assert not any(protocol.check_step(verifier, s, statement, signature) for s in others)
    other_memo = Statement(**{**_fields(statement), "memo": "Spesa!"})
    accept = protocol.sign_step(signer, "accept", statement)
    assert not protocol.check_step(verifier, "accept", other_memo, accept)
    # An abort of a transfer the payer's node never had is signed over no statement.
    unknown = protocol.sign_unknown_abort(signer, statement.id)
    assert protocol.check_step(verifier, "abort", statement, unknown)
    assert not protocol.check_step(verifier, "commit", statement, unknown)
    assert not protocol.check_step(verifier, "accept", statement, "not base64!")
    assert not protocol.check_step(
        Signer.generate("x.example/l").verifier(), "accept", statement, accept
    )


def _fields(statement: Statement) -> dict[str, Any]:
    return {f: getattr(statement, f) for f in statement.__struct_fields__}


# -- peers ---------------------------------------------------------------------------------


async def test_peer_management_and_its_audit_trail(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        peer = await _api_with_peer(
            api, max_we_owe=120, max_they_owe=60, rate_ours=1, rate_theirs=1
        )
        assert peer["clearing_account"] == "clearing.zona6"
        assert peer["origin"] == "zona6.example.org/ledger"
        account = (await api.get("/api/v1/accounts/clearing.zona6")).json()
        assert (account["kind"], account["min_balance"], account["max_balance"]) == (
            "clearing",
            -60,
            120,
        )
        changed = await api.request(
            "PATCH",
            "/api/v1/federation/peers/zona6",
            json={"max_they_owe": 90, "status": "suspended", "reason": "a pause for the audit"},
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["max_they_owe"], changed.json()["status"]) == (90, "suspended")
        assert (await api.get("/api/v1/accounts/clearing.zona6")).json()["min_balance"] == -90
        log = (await api.get("/api/v1/audit", subject_type="peer")).json()["items"]
        assert [(e["action"], e["subject_id"]) for e in log] == [
            ("peer.added", "zona6"),
            ("peer.changed", "zona6"),
        ]
        assert log[1]["reason"] == "a pause for the audit"
        assert log[1]["details"]["max_they_owe"] == 90
        listed = (await api.get("/api/v1/federation/peers", role="auditor")).json()["items"]
        assert [p["name"] for p in listed] == ["zona6"]


async def test_peer_errors(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        post = api.post
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(name="Zona 6")), 422, "invalid-field"
        )
        assert body["field"] == "name"
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(vkey="nope")), 422, "invalid-field"
        )
        assert body["field"] == "vkey" and "malformed verifier key" in body["detail"]
        own = Signer.generate(ORIGIN).verifier().to_string()
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(vkey=own)), 422, "invalid-field"
        )
        assert "this node's own ledger origin" in body["detail"]
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(base_url="ftp://x")),
            422,
            "invalid-field",
        )
        assert body["field"] == "base_url"
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(max_we_owe=-1)), 422, "invalid-field"
        )
        assert body["field"] == "max_we_owe"
        assert_problem(
            await post("/api/v1/federation/peers", peer_body(rate_ours=1.0)), 400, "invalid-request"
        )
        assert_problem(
            await post("/api/v1/federation/peers", peer_body(colour="red")), 400, "invalid-request"
        )
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(), role="manager"), 403, "forbidden"
        )
        assert "only an admin" in body["detail"]
        await _api_with_peer(api)
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body()), 409, "peer-exists"
        )
        assert "exists already" in body["detail"]
        body = assert_problem(
            await post("/api/v1/federation/peers", peer_body(name="other")), 409, "peer-exists"
        )
        assert "is already the peer 'zona6'" in body["detail"]
        patch = api.request
        body = assert_problem(
            await patch("PATCH", "/api/v1/federation/peers/zona6", json={"status": "suspended"}),
            400,
            "invalid-request",
        )
        body = assert_problem(
            await patch("PATCH", "/api/v1/federation/peers/zona6", json={"reason": "  "}),
            422,
            "invalid-field",
        )
        assert "say why" in body["detail"]
        body = assert_problem(
            await patch("PATCH", "/api/v1/federation/peers/nobody", json={"reason": "x"}),
            404,
            "peer-not-found",
        )
        body = assert_problem(
            await api.get("/api/v1/federation/peers/nobody"), 404, "peer-not-found"
        )
        other_key = Signer.generate("elsewhere.example/ledger").verifier().to_string()
        body = assert_problem(
            await patch(
                "PATCH", "/api/v1/federation/peers/zona6", json={"vkey": other_key, "reason": "r"}
            ),
            422,
            "invalid-field",
        )
        assert "this peer is 'zona6.example.org/ledger'" in body["detail"]


# -- sending -------------------------------------------------------------------------------


async def test_send_errors(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        marco = await api.add_member("marco")
        giulia = await api.add_member("giulia")
        await _api_with_peer(api, rate_ours=2, rate_theirs=1, max_we_owe=100)

        async def send(role: str = "marco", **fields: Any) -> Any:
            body = {"id": new_uuid(), "payer": marco.account, "payee": "m-1@zona6", "minutes": 10}
            return await api.post("/api/v1/federation/transfers", {**body, **fields}, role=role)

        body = assert_problem(await send(payee="zona6"), 422, "invalid-address")
        assert "account@peer" in body["detail"]
        body = assert_problem(await send(payee="m-1@nowhere"), 422, "unknown-peer")
        assert "no peer named 'nowhere'" in body["detail"]
        body = assert_problem(await send(minutes=11), 422, "inexact-amount")
        assert "multiple of 2 minutes" in body["detail"]
        assert_problem(await send(minutes=0), 422, "invalid-amount")
        assert_problem(await send(minutes="10"), 400, "invalid-request")
        assert_problem(await send(id="not-a-uuid"), 422, "invalid-id")
        body = assert_problem(await send(role="giulia"), 403, "forbidden")
        assert "may not spend from" in body["detail"]
        # Beyond what we may owe the peer: refused here, before asking it.
        body = assert_problem(await send(minutes=102), 422, "net-position-exceeded")
        assert "net position with zona6" in body["detail"]
        # The peer cannot be reached: held, 202, the hold cannot be touched by hand.
        held_id = new_uuid()
        held = await send(id=held_id, minutes=20)
        assert held.status_code == 202, held.text
        assert (held.json()["state"], held.json()["peer_minutes"]) == ("held", 10)
        assert "zona6: ConnectError" in held.json()["last_error"]
        body = assert_problem(await send(id=held_id, minutes=40), 409, "idempotency-conflict")
        again = await send(id=held_id, minutes=20)
        assert again.status_code == 202 and again.json()["id"] == held_id
        for action in ("void", "post"):
            refused = await api.post(f"/api/v1/transfers/fed.{held_id}/{action}", {})
            body = assert_problem(refused, 403, "forbidden")
            assert "only the federation protocol" in body["detail"]
        assert (
            await api.get(f"/api/v1/federation/transfers/{held_id}", role="marco")
        ).status_code == 200
        assert_problem(
            await api.get(f"/api/v1/federation/transfers/{held_id}", role="giulia"),
            404,
            "transfer-unknown",
        )
        assert_problem(
            await api.get(f"/api/v1/federation/transfers/{new_uuid()}"), 404, "transfer-unknown"
        )
        # A suspended peer takes no new transfers.
        paused = await api.request(
            "PATCH", "/api/v1/federation/peers/zona6", json={"status": "suspended", "reason": "r"}
        )
        assert paused.status_code == 200
        body = assert_problem(await send(), 403, "peer-suspended")
        del giulia


async def test_node_routes_need_a_signature(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        for path in ("prepare", "commit", "abort", "status"):
            response = await api.post(f"/api/v1/federation/{path}", {}, role=None)
            body = assert_problem(response, 401, "signature-required")
            assert "Signature-Input" in body["detail"]
        body = assert_problem(
            await api.get("/api/v1/federation/statement", role=None), 401, "signature-required"
        )
        # A bearer token is no substitute.
        body = assert_problem(
            await api.post("/api/v1/federation/prepare", {}), 401, "signature-required"
        )


async def test_recovery_aborts_past_the_deadline(db_url: str, tmp_path: Path) -> None:
    """The payer's node decides: when the peer never answers, recovery aborts the transfer
    after the prepare deadline and the payer gets the minutes back."""
    clock = Clock()
    async with running_api(db_url, tmp_path, clock=clock) as api:
        marco = await api.add_member("marco")
        await _api_with_peer(api)
        held = await api.post(
            "/api/v1/federation/transfers",
            {"id": new_uuid(), "payer": marco.account, "payee": "m-1@zona6", "minutes": 30},
        )
        assert held.status_code == 202, held.text
        account = (await api.get(f"/api/v1/accounts/{marco.account}")).json()
        assert (account["posted"], account["pending"]) == (0, -30)
        early = (await api.post("/api/v1/federation/recover")).json()
        assert early["pending"] == [held.json()["id"]] and early["aborted"] == []
        clock.advance(seconds=901)
        late = (await api.post("/api/v1/federation/recover")).json()
        assert late["aborted"] == [held.json()["id"]]
        row = (await api.get(f"/api/v1/federation/transfers/{held.json()['id']}")).json()
        assert (row["state"], row["reason_code"]) == ("aborted", "peer-unreachable")
        # The peer never got the prepare's answer through, so it must be told: pending.
        assert not row["peer_acked"]
        account = (await api.get(f"/api/v1/accounts/{marco.account}")).json()
        assert (account["posted"], account["pending"]) == (0, 0)
        clearing = (await api.get("/api/v1/accounts/clearing.zona6")).json()
        assert (clearing["posted"], clearing["pending"]) == (0, 0)


# -- the command line ----------------------------------------------------------------------


def test_peer_commands_and_exports(db_url: str, tmp_path: Path) -> None:
    """`scambio peer add/change/list`, `federation recover`, `import` and `ledger export`
    on one database (each change audited, errors as messages, not tracebacks)."""
    from click.testing import CliRunner

    from scambio.cli import main

    env = {
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }
    runner = CliRunner()
    vkey = PEER_KEY.verifier().to_string()
    added = runner.invoke(
        main,
        ["peer", "add", "zona6", "--url", NOWHERE, "--vkey", vkey, "--rate", "1:2"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "zona6" in added.output and "rate 1:2" in added.output
    twice = runner.invoke(main, ["peer", "add", "zona6", "--url", NOWHERE, "--vkey", vkey], env=env)
    assert twice.exit_code == 1 and "exists already" in twice.output
    bad_rate = runner.invoke(
        main, ["peer", "add", "x", "--url", NOWHERE, "--vkey", vkey, "--rate", "2"], env=env
    )
    assert bad_rate.exit_code == 2 and "OURS:THEIRS" in bad_rate.output
    changed = runner.invoke(
        main, ["peer", "change", "zona6", "--max-we-owe", "30", "--reason", "trial"], env=env
    )
    assert changed.exit_code == 0, changed.output
    assert "we may owe 30" in changed.output
    listed = runner.invoke(main, ["peer", "list"], env=env)
    assert listed.output.startswith("zona6") and "clearing.zona6" in listed.output
    recovered = runner.invoke(main, ["federation", "recover"], env=env)
    assert recovered.exit_code == 0 and recovered.output.startswith("examined 0")
    unknown = runner.invoke(main, ["federation", "reconcile", "--peer", "nobody"], env=env)
    assert unknown.exit_code == 1 and "no peer named 'nobody'" in unknown.output
    data = Path(__file__).parent / "data" / "ces"
    imported = runner.invoke(
        main, ["import", "ces", str(data / "users.csv"), str(data / "trades.csv")], env=env
    )
    assert imported.exit_code == 0, imported.output
    assert "4 members, 3 transfers" in imported.output
    assert "skipped trades.csv:5: 'ZA01-0099' is not in the export's people" in imported.output
    journal = tmp_path / "out.journal"
    exported = runner.invoke(
        main, ["ledger", "export", "--format", "hledger", "--out", str(journal)], env=env
    )
    assert exported.exit_code == 0, exported.output
    assert "member:m-" in journal.read_text()
    tables = runner.invoke(
        main, ["ledger", "export", "--format", "csv", "--out", str(tmp_path / "csv")], env=env
    )
    assert tables.exit_code == 0, tables.output
    assert "4 members" in tables.output
