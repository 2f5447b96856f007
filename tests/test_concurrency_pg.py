"""Several processes appending to one PostgreSQL ledger at once (PostgreSQL only).

Two OS processes (`pg_worker.py`), each with its own LedgerService and appender, run many
concurrent tasks that make transfers and holds (then posted or voided) among five hot
accounts with finite limits. The head row lock must serialise their batches so that,
afterwards:

- minutes are conserved (posted balances sum to zero, pending legs balance);
- no account is outside its limits;
- every acknowledged entry is stored exactly once, at the index it was acknowledged with,
  and nothing unacknowledged is stored; every entry's postings sum to zero;
- entry indexes are contiguous from 0, the log replays cleanly through `rules.apply_entry`
  to the cached balances, and its recomputed root equals the signed head checkpoint's (and
  every stored checkpoint's root equals the replayed root at its size);
- a transfer id both processes submitted was created by exactly one of them;
- the database audit (`store.audit.verify_database`) passes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scambio.ledger import merkle
from scambio.ledger.entry import decode_entry, encode_entry
from scambio.ledger.note import open_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.tables import accounts, checkpoints, entries, postings

from .conftest import ORIGIN, SIGNER, make_settings

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).with_name("pg_worker.py")
HOT = ["ada", "bea", "cai", "dan", "eva"]
WORKERS = 2
OPERATIONS = 1500
SHARED = 50
TIMEOUT = 120.0


async def _run_workers(url: str, tmp_path: Path) -> list[dict[str, Any]]:
    procs = []
    for worker in range(WORKERS):
        config = tmp_path / f"worker{worker}.json"
        config.write_text(
            json.dumps(
                {
                    "url": url,
                    "skey": SIGNER.to_string(),
                    "origin": ORIGIN,
                    "accounts": HOT,
                    "operations": OPERATIONS,
                    "tasks": 40,
                    "worker": worker,
                    "shared": SHARED,
                    "out": str(tmp_path / f"result{worker}.json"),
                }
            )
        )
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                str(config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    try:
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), timeout=TIMEOUT
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    for worker, (p, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"worker {worker} failed:\n{err.decode()[-3000:]}"
    return [
        json.loads((tmp_path / f"result{worker}.json").read_text()) for worker in range(WORKERS)
    ]


async def test_two_processes_append_to_one_ledger_without_losing_or_breaking_anything(
    pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_url, null_pool=True)
    service = LedgerService(engine, SIGNER, make_settings(pg_url, tmp_path))
    await service.start()
    limits = {"ada": (-300, 300), "bea": (-300, 300), "cai": (-60, 120), "dan": (0, 600),
              "eva": (-600, 200)}  # fmt: skip
    for name, (low, high) in limits.items():
        await service.open_account(name, "member", low, high)
    await service.open_account("acme", "sponsor", None, None)  # for the shared transfers
    await service.open_account("fund", "pool", 0, None)
    opened = {f"account:{name}" for name in (*limits, "acme", "fund")}
    await service.stop()

    results = await _run_workers(pg_url, tmp_path)

    for worker, result in enumerate(results):
        assert result["errors"] == [], f"worker {worker}: {result['errors'][:5]}"
    acks = [a for r in results for a in r["acks"]]
    refused = sum((Counter(r["refused"]) for r in results), Counter())
    # The run must have contended for real: many commits, limits actually reached.
    assert len(acks) > OPERATIONS
    assert refused["limit-exceeded"] > 0
    assert set(refused) <= {"limit-exceeded"}, refused
    spans = [
        (min(a["index"] for a in r["acks"]), max(a["index"] for a in r["acks"])) for r in results
    ]
    assert max(lo for lo, _ in spans) < min(hi for _, hi in spans), f"no overlap: {spans}"
    # Both ways of building a batch ran: ahead of the previous commit, and again under the
    # lock when the other process had appended in between.
    assert sum(r["built_ahead"] for r in results) > 0, results[0]["batches"]
    assert sum(r["rebuilt"] for r in results) > 0

    async with service.read() as conn:
        head = await queries.head(conn)
        stored = [e async for e in queries.stream_entries(conn)]
        rows = {r.id: r for r in await conn.execute(select(accounts))}
        unbalanced = list(
            await conn.execute(
                select(postings.c.entry_idx, func.sum(postings.c.minutes))
                .group_by(postings.c.entry_idx)
                .having(func.sum(postings.c.minutes) != 0)
            )
        )
        posting_rows = (await conn.execute(select(func.count()).select_from(postings))).scalar()
        signed = {int(r.size): r.note for r in await conn.execute(select(checkpoints))}
        batch_sizes = {int(s) for s in await conn.scalars(select(entries.c.tree_size).distinct())}

    # Indexes are contiguous; every entry is canonical, hashed right, and replays cleanly.
    assert [e.index for e in stored] == list(range(head.size))
    state = LedgerState()
    frontier = merkle.CompactRange()
    roots = {0: merkle.EMPTY_ROOT}
    ids: dict[str, int] = {}
    legs = 0
    for item in stored:
        entry = decode_entry(item.canonical)
        assert encode_entry(entry) == item.canonical
        assert merkle.leaf_hash(item.canonical) == item.leaf_hash
        assert sum(p.minutes for p in entry.postings) == 0
        apply_entry(state, entry)
        frontier.append(item.leaf_hash)
        roots[frontier.size] = frontier.root()
        assert entry.id not in ids, f"id {entry.id} stored twice"
        ids[entry.id] = entry.index
        legs += len(entry.postings)
    assert unbalanced == []
    assert posting_rows == legs

    # The signed head is the replayed root; every checkpoint matches the log at its size.
    head_cp = open_checkpoint(head.checkpoint, SIGNER.verifier(), ORIGIN)
    assert (head_cp.size, head_cp.root) == (head.size, frontier.root())
    for size, note in signed.items():
        assert open_checkpoint(note, SIGNER.verifier(), ORIGIN).root == roots[size], size
    # One checkpoint per committed batch: exactly the tree sizes the entries were given.
    assert set(signed) == {0} | batch_sizes
    assert len(batch_sizes) <= len(opened) + sum(r["batches"] for r in results)

    # Minutes are conserved, limits hold, the cached balances are the replayed ones.
    assert sum(a.posted for a in state.accounts.values()) == 0
    assert sum(a.debits_pending for a in state.accounts.values()) == sum(
        a.credits_pending for a in state.accounts.values()
    )
    for name, a in state.accounts.items():
        low, high = limits.get(name, (a.min_balance, a.max_balance))
        assert low is None or a.available >= low, a
        assert high is None or a.posted + a.credits_pending <= high, a
        row = rows[name]
        assert (row.posted, row.debits_pending, row.credits_pending) == (
            a.posted,
            a.debits_pending,
            a.credits_pending,
        )

    # Every acknowledgement is in the log exactly once, at its index; nothing else is.
    created = [a for a in acks if a["created"]]
    assert len({a["id"] for a in created}) == len(created), "an id was created twice"
    for ack in acks:
        assert ids.get(ack["id"]) == ack["index"], ack
    assert set(ids) - opened == {a["id"] for a in acks}
    # A transfer both processes sent was created once; the other process got the original.
    for k in range(SHARED):
        seen = [a for a in acks if a["id"] == f"shared-{k}"]
        assert len(seen) == WORKERS, seen
        assert sorted(a["created"] for a in seen) == [False] * (WORKERS - 1) + [True], seen

    # The store's own audit agrees (cached balances, postings rows, tree nodes, checkpoints).
    report = await verify_database(engine, SIGNER.verifier(), ORIGIN)
    assert report.size == head.size and report.root == head_cp.root
    await engine.dispose()
