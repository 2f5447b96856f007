"""Two real Scambio nodes exchange hours both ways, then with faults between them.

Every scenario ends the same way: both nodes settle (recovery until nothing is pending),
then `balanced` checks that no minute was lost or created across the two ledgers (each
clearing account mirrors the other, and every member's balance is what the outcome says),
that every cross transfer has the same outcome on both sides, and that both ledgers
verify (`scambio ledger verify`: entries, tree, checkpoints, cached balances).

The nodes are started once per database kind (module scope) and the scenarios run in
order; the last one makes node b rewrite its history.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scambio.federation import httpsig
from scambio.federation.protocol import Statement, check_step
from scambio.ledger.note import Signer, Verifier
from scambio.store.keyfile import load_key

from .conftest import REQUIRE_POSTGRES, Postgres
from .federation_harness import (
    DEADLINE,
    Node,
    Pair,
    copy_sqlite,
    send_raw,
    start_pair,
    status_of,
)

pytestmark = pytest.mark.slow
PROBLEM = "urn:scambio:problem:"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def pair(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp(f"nodes-{request.param}")
    if request.param == "sqlite":
        urls = (
            copy_sqlite(f"sqlite+aiosqlite:///{sqlite_template}", tmp / "a.db"),
            copy_sqlite(f"sqlite+aiosqlite:///{sqlite_template}", tmp / "b.db"),
        )
        made: list[str] = []
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        if pg.error:
            if REQUIRE_POSTGRES:
                pytest.fail(pg.error + " (SCAMBIO_REQUIRE_POSTGRES=1)")
            pytest.skip(pg.error)
        made = [pg.create(), pg.create()]
        urls = (made[0], made[1])
    try:
        yield from start_pair(tmp, urls, request.param)
    finally:
        if request.param == "postgres":
            pg = request.getfixturevalue("postgres")
            for url in made:
                pg.drop(url)


@pytest.fixture(scope="module")
def people(pair: Pair) -> dict[str, str]:
    """Members on each node: a1..a4 at a, b1..b4 at b."""
    found = {f"a{i}": pair.a.add_member(f"anna{i}") for i in range(1, 5)}
    found.update({f"b{i}": pair.b.add_member(f"bruno{i}") for i in range(1, 5)})
    return found


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug, body
    return body


def balanced(pair: Pair) -> None:
    """No minute lost or created; the same outcome on both sides; both ledgers verify."""
    pair.settle()
    a_pos, a_pending = pair.a.balance("clearing.beta")
    b_pos, b_pending = pair.b.balance("clearing.alfa")
    assert (a_pending, b_pending) == (0, 0)
    assert a_pos == -b_pos, (a_pos, b_pos)
    a_rows = {
        r["id"]: r for r in pair.a.get("/api/v1/federation/transfers", limit=500).json()["items"]
    }
    b_rows = {
        r["id"]: r for r in pair.b.get("/api/v1/federation/transfers", limit=500).json()["items"]
    }
    for transfer_id in a_rows.keys() | b_rows.keys():
        mine, theirs = a_rows.get(transfer_id), b_rows.get(transfer_id)
        committed = [r is not None and r["state"] == "committed" for r in (mine, theirs)]
        assert committed[0] == committed[1], (mine, theirs)
    # The committed transfers move exactly the clearing positions.
    out_a = sum(
        r["minutes"]
        for r in a_rows.values()
        if r["state"] == "committed" and r["direction"] == "out"
    )
    in_a = sum(
        r["minutes"]
        for r in a_rows.values()
        if r["state"] == "committed" and r["direction"] == "in"
    )
    assert a_pos == out_a - in_a
    for node in (pair.a, pair.b):
        assert node.verify().startswith("OK")


# -- hours both ways --------------------------------------------------------------------------


def test_hours_both_ways(pair: Pair, people: dict[str, str]) -> None:
    a1, b1, a2, b2 = people["a1"], people["b1"], people["a2"], people["b2"]
    sent = pair.a.pay(a1, f"{b1}@beta", 90, "Spesa per la signora Rina")
    assert sent.status_code == 201, sent.text
    assert sent.json()["state"] == "committed"
    back = pair.b.pay(b2, f"{a2}@alfa", 30, "Ripetizioni di matematica")
    assert back.status_code == 201, back.text
    assert pair.a.balance(a1) == (-90, 0)
    assert pair.b.balance(b1) == (90, 0)
    assert pair.b.balance(b2) == (-30, 0)
    assert pair.a.balance(a2) == (30, 0)
    assert pair.a.balance("clearing.beta") == (60, 0)
    assert pair.b.balance("clearing.alfa") == (-60, 0)
    # A repeated request is answered, not repeated.
    again = pair.a.post("/api/v1/federation/transfers", {**_body(sent), "payer": a1})
    assert again.status_code == 201 and again.json()["id"] == sent.json()["id"]
    assert pair.a.balance(a1) == (-90, 0)
    balanced(pair)


def _body(response: httpx.Response) -> dict[str, Any]:
    row = response.json()
    return {
        "id": row["id"],
        "payee": f"{row['remote_account']}@beta",
        "minutes": row["minutes"],
        "memo": row["memo"],
    }


def test_each_ledger_proves_the_other_agreed(pair: Pair, people: dict[str, str]) -> None:
    """The committed entry on each side carries the other node's signature over the
    transfer, which anyone can check with the other node's published key."""
    sent = pair.a.pay(people["a3"], f"{people['b3']}@beta", 15, "Passeggiata al parco")
    assert sent.status_code == 201, sent.text
    transfer_id = sent.json()["id"]
    for node, other, step in ((pair.a, pair.b, "accept"), (pair.b, pair.a, "commit")):
        entries = node.get("/api/v1/ledger/entries", start=0, limit=1000).json()
        commit = next(
            e["entry"] for e in entries if e["entry"]["id"] == f"fed.{transfer_id}.commit"
        )
        refs = commit["refs"]
        assert refs["peer_transfer"] == transfer_id
        payer_side = node is pair.a
        local = commit["postings"][0 if payer_side else 1]["account"]
        statement = Statement(
            id=transfer_id,
            payer_ledger=pair.a.origin,
            payer=local if payer_side else refs["peer_account"],
            payee_ledger=pair.b.origin,
            payee=refs["peer_account"] if payer_side else local,
            minutes=15,
            payee_minutes=15,
            memo=commit["memo"],
        )
        verifier = Verifier.from_string(other.vkey)
        assert check_step(verifier, step, statement, refs["peer_sig"])
        tampered = Statement(
            id=statement.id,
            payer_ledger=statement.payer_ledger,
            payer=statement.payer,
            payee_ledger=statement.payee_ledger,
            payee=statement.payee,
            minutes=16,
            payee_minutes=16,
            memo=statement.memo,
        )
        assert not check_step(verifier, step, tampered, refs["peer_sig"])
    balanced(pair)


# -- refusals reach the payer ---------------------------------------------------------------


def test_refusals_reach_the_payer_and_change_nothing(pair: Pair, people: dict[str, str]) -> None:
    a4 = people["a4"]
    before = pair.a.balance(a4)
    unknown = pair.a.pay(a4, "m-0000000000000000@beta", 10)
    body = _problem(unknown, 422, "unknown-payee")
    assert "beta refused" in body["detail"]
    _problem(pair.a.pay(a4, f"{people['b4']}@nowhere", 10), 422, "unknown-peer")
    _problem(pair.a.pay(a4, "not an address", 10), 422, "invalid-address")
    # Beyond the net position b allows (b's limit: what alfa may owe it).
    limited = pair.b.request(
        "PATCH",
        "/api/v1/federation/peers/alfa",
        {"max_they_owe": 100, "reason": "a trial period"},
    )
    assert limited.status_code == 200, limited.text
    position = pair.b.balance("clearing.alfa")[0]
    too_much = 100 + position + 1
    body = _problem(pair.a.pay(a4, f"{people['b4']}@beta", too_much), 422, "net-position-exceeded")
    assert "beta refused" in body["detail"]
    # ...and beyond our own limit (what we may owe beta): refused before asking.
    ours = pair.a.request(
        "PATCH", "/api/v1/federation/peers/beta", {"max_we_owe": 200, "reason": "trial"}
    )
    assert ours.status_code == 200, ours.text
    mine = _problem(pair.a.pay(a4, f"{people['b4']}@beta", 201), 422, "net-position-exceeded")
    assert "beta refused" not in mine["detail"]
    assert pair.a.balance(a4) == before
    for node, name in ((pair.a, "beta"), (pair.b, "alfa")):
        restored = node.request(
            "PATCH",
            f"/api/v1/federation/peers/{name}",
            {"max_we_owe": 600, "max_they_owe": 600, "reason": "trial over"},
        )
        assert restored.status_code == 200, restored.text
    balanced(pair)


# -- faults ----------------------------------------------------------------------------------


def test_peer_down_then_back(pair: Pair, people: dict[str, str]) -> None:
    """The prepare is lost: the payer's node cannot know, keeps the hold (202) and
    recovery re-sends the prepare once the peer answers again."""
    pair.to_b.plan("/federation/prepare", "drop")
    sent = pair.a.pay(people["a1"], f"{people['b1']}@beta", 20)
    assert sent.status_code == 202, sent.text
    assert sent.json()["state"] == "held"
    assert pair.a.balance(people["a1"])[1] == -20
    balanced(pair)
    assert pair.a.transfer(sent.json()["id"])["state"] == "committed"


def test_peer_times_out_after_it_prepared_and_after_it_committed(
    pair: Pair, people: dict[str, str]
) -> None:
    a1, b1 = people["a1"], people["b1"]
    b_before = pair.b.balance(b1)[0]
    # The peer holds, but its accept comes too late: the payer's node times out.
    pair.to_b.plan("/federation/prepare", "delay")
    slow = pair.a.pay(a1, f"{b1}@beta", 7)
    assert slow.status_code == 202, slow.text
    # The peer commits, but its answer to the commit is lost.
    pair.to_b.plan("/federation/commit", "lose-answer")
    lost = pair.a.pay(a1, f"{b1}@beta", 11)
    assert lost.status_code == 201, lost.text
    assert not pair.a.transfer(lost.json()["id"])["peer_acked"]
    assert pair.b.transfer(lost.json()["id"])["state"] == "committed"
    balanced(pair)
    for response in (slow, lost):
        assert pair.a.transfer(response.json()["id"])["state"] == "committed"
        assert pair.b.transfer(response.json()["id"])["state"] == "committed"
    assert pair.a.transfer(lost.json()["id"])["peer_acked"]
    assert pair.b.balance(b1)[0] == b_before + 18


def test_duplicate_and_replayed_requests(pair: Pair, people: dict[str, str]) -> None:
    """A message delivered twice at the HTTP level is a replay (refused); delivered twice
    by the protocol (recovery re-sending) it is answered as the first time."""
    a2, b2 = people["a2"], people["b2"]
    b_before = pair.b.balance(b2)[0]
    pair.to_b.plan("/federation/prepare", "twice")
    pair.to_b.plan("/federation/commit", "twice")
    sent = pair.a.pay(a2, f"{b2}@beta", 5)
    assert sent.status_code == 201, sent.text
    assert pair.b.balance(b2)[0] == b_before + 5
    # Replay the captured prepare and commit: refused as replays, nothing changes.
    for part in ("/federation/prepare", "/federation/commit"):
        raw = next(c.raw for c in reversed(pair.to_b.captured) if part in c.path)
        answer = send_raw(pair.b.port, raw)
        assert status_of(answer) == 401
        assert b"replayed-request" in answer
    # The protocol repeats the commit (a fresh signed request): answered, not re-applied.
    entries_before = len(pair.b.get("/api/v1/ledger/entries", start=0, limit=1000).json())
    row = pair.a.transfer(sent.json()["id"])
    assert row["peer_acked"]
    assert pair.b.balance(b2)[0] == b_before + 5
    assert len(pair.b.get("/api/v1/ledger/entries", start=0, limit=1000).json()) == entries_before
    balanced(pair)


def test_forged_signatures_are_refused(pair: Pair, people: dict[str, str]) -> None:
    url = f"{pair.to_b.url}/api/v1/federation/prepare"
    body = b'{"transfer":{},"signature":""}'
    a_key = f"{pair.a.origin}+" + Verifier.from_string(pair.a.vkey).key_hash.hex()
    impostor = Signer.generate(pair.a.origin)
    now = int(time.time())
    for key_id, signer, slug in (
        (a_key, impostor, "bad-signature"),
        ("unknown.example/ledger+00000000", impostor, "unknown-key"),
    ):
        headers = httpsig.sign_request(signer.sign, key_id, "POST", url, body, created=now)
        response = httpx.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        _problem(response, 401, slug)
    real = load_key(pair.a.data_dir / "node.key")
    stale = httpsig.sign_request(real.sign, a_key, "POST", url, body, created=now - 3600)
    _problem(httpx.post(url, content=body, headers=stale), 401, "stale-request")
    _problem(httpx.post(url, content=body), 401, "signature-required")
    # A forged accept on the way back: the payer's node never commits on it; it aborts,
    # and the payee's node, told so, releases its hold.
    b3 = people["b3"]
    before = pair.b.balance(b3)
    pair.to_b.plan("/federation/prepare", "tamper-accept")
    forged = pair.a.pay(people["a3"], f"{b3}@beta", 9)
    _problem(forged, 422, "peer-refused")
    balanced(pair)
    assert pair.b.balance(b3) == before


def test_a_late_prepare_after_the_abort_is_refused(pair: Pair, people: dict[str, str]) -> None:
    """Reordered delivery: the prepare is held back in the network, the payer's node gives
    up past its deadline and aborts (the abort reaches the peer first), then the prepare
    arrives: refused, nothing held."""
    a4, b4 = people["a4"], people["b4"]
    before = (pair.a.balance(a4), pair.b.balance(b4))
    pair.to_b.plan("/federation/prepare", "keep", times=5)
    sent = pair.a.pay(a4, f"{b4}@beta", 13)
    assert sent.status_code == 202, sent.text
    time.sleep(DEADLINE + 0.5)
    pair.a.recover()
    pair.to_b.clear()
    transfer_id = sent.json()["id"]
    assert pair.a.transfer(transfer_id)["state"] == "aborted"
    assert pair.b.transfer(transfer_id)["state"] == "aborted"
    late = pair.to_b.kept[0].raw
    answer = send_raw(pair.b.port, late)
    assert status_of(answer) in (401, 409), answer
    assert b"transfer-aborted" in answer or b"stale-request" in answer
    assert (pair.a.balance(a4), pair.b.balance(b4)) == before
    balanced(pair)


def test_reconciliation_agrees_then_catches_a_rewritten_history(
    pair: Pair, people: dict[str, str], tmp_path: Path
) -> None:
    report = pair.a.reconcile("beta")
    assert report["ok"], report
    assert report["position"] == -report["peer_position"]
    known = {
        r["id"]
        for node in (pair.a, pair.b)
        for r in node.get("/api/v1/federation/transfers", limit=500).json()["items"]
    }
    assert report["transfers_compared"] == len(known) >= 1
    assert pair.b.reconcile("alfa")["ok"]
    # The command line runs the same job.
    assert "beta: OK" in pair.a.cli("federation", "reconcile", "--peer", "beta").stdout
    # b stops, keeps a backup of its database, goes on (a sees the newer checkpoint)...
    b = pair.b
    b.stop()
    backup = _backup(b, tmp_path)
    b.start()
    assert pair.a.pay(people["a1"], f"{people['b1']}@beta", 3).status_code == 201
    assert pair.a.reconcile("beta")["ok"]
    seen = pair.a.reconcile("beta")["checkpoint_size"]
    # ...then restores the backup and writes another history in its place.
    b.stop()
    original = b.db_url
    b.db_url = backup
    b.start()
    try:
        for _ in range(3):
            local = b.post(
                "/api/v1/transfers",
                {
                    "id": str(uuid.uuid4()),
                    "payer": people["b2"],
                    "payee": people["b3"],
                    "minutes": 1,
                },
            )
            assert local.status_code == 201, local.text
        assert int(httpx.get(b.url + "/health").json()["tree_size"]) >= seen
        rewritten = pair.a.reconcile("beta")
        assert not rewritten["ok"]
        kinds = {f["kind"] for f in rewritten["findings"]}
        assert "history-rewritten" in kinds, rewritten
        loud = pair.a.cli("federation", "reconcile", "--peer", "beta", check=False)
        assert loud.returncode == 1 and "history-rewritten" in loud.stdout
        # a's own ledger is untouched and verifies.
        assert pair.a.verify().startswith("OK")
        # ...and the command line says the same.
        assert pair.a.cli("ledger", "verify", "--vkey", pair.a.vkey).stdout.startswith("OK")
        stored = pair.a.get("/api/v1/federation/reconciliations", peer="beta").json()["items"]
        assert stored[0]["findings"][0]["kind"] == "history-rewritten"
    finally:
        b.stop()
        b.db_url = original
        _drop_backup(backup)


def _drop_backup(url: str) -> None:
    if url.startswith("sqlite"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backup(node: Node, tmp_path: Path) -> str:
    if node.db_url.startswith("sqlite"):
        return copy_sqlite(node.db_url, tmp_path / "backup.db")
    import psycopg

    base, name = node.db_url.rsplit("/", 1)
    copy = f"{name}_backup"
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
    return f"{base}/{copy}"
