"""Scambio's appender side by side with the same rows written by raw psycopg.

    python bench/raw_pg.py [--batch-sizes 1,10,100,1000] [--transfers N] [--accounts K]
                           [--variants commit,executemany,unnest,copy,scambio]

Every variant writes, per batch, what the appender writes: it locks the ledger head
(`SELECT ... FOR UPDATE`), reads the batch's entry ids (the idempotency check) and its
accounts, inserts the postings, entries and completed tree nodes, updates the balances,
inserts one signed checkpoint, updates the head and commits, on a fresh database migrated
with the real schema (append-only and zero-sum triggers included), over async psycopg as
the service uses. The rows (canonical entry bytes, leaf hashes, tree nodes, balances,
checkpoint signatures) are computed before the clock starts, so the raw variants measure
the database and the driver only:

- commit:      lock, checkpoint, head update and commit, no entry rows: the floor set by
               round trips and the WAL flush (fsync) of one commit.
- executemany: rows sent with executemany, one statement per table (psycopg pipelines it).
- unnest:      one `INSERT ... SELECT FROM unnest(arrays)` per table, reads and writes each
               sent as one pipeline: the fewest round trips.
- copy:        COPY (binary) for postings, entries and tree nodes, unnest for balances.
- scambio:     the real LedgerService, as bench/append.py runs it.

Then the pure Python work per transfer that the raw variants skip (building the entry,
checking the rules, canonical encoding, hashing, the tree) and the signature per batch are
timed alone, to show where the appender's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from append import open_accounts, run_one
from common import (
    ORIGIN,
    SIGNER,
    cpu_seconds,
    fix_trigger,
    fresh_database,
    libpq,
    parse_ints,
    postgres_cpu_seconds,
    print_facts,
)
from scambio.ledger import merkle
from scambio.ledger.entry import FORMAT_VERSION, KIND_TRANSFER, Entry, encode_entry, format_time
from scambio.ledger.note import Checkpoint, sign_checkpoint
from scambio.ledger.rules import AccountState, LedgerState, apply_entry, legs

TIME = "2026-11-25T09:00:00.000000Z"


@dataclass
class Row:
    """One transfer's rows, as the appender would write them."""

    entry: tuple[Any, ...]  # idx, id, kind, time, canonical, leaf_hash (tree_size added later)
    postings: list[tuple[Any, ...]]  # entry_idx, seq, account_id, minutes, pending, after
    nodes: list[tuple[int, int, bytes]]
    accounts: tuple[str, str]


@dataclass
class Plan:
    """Precomputed rows and, per batch, the checkpoint, balances and head to write."""

    rows: list[Row]
    batches: list[
        tuple[int, int, bytes, str, list[tuple[Any, ...]]]
    ]  # start, end, root, note, balances


def make_rows(
    n: int, ids: Sequence[str], first_index: int, seed: int = 7
) -> tuple[list[Row], list[bytes], dict[str, list[int]]]:
    """n transfers between random accounts, with the tree state after each one."""
    rng = random.Random(seed)
    frontier = merkle.CompactRange()
    # The account entries come first in the log (as in the service); only their leaves
    # matter here, so that indexes and tree nodes line up with a real ledger.
    for i in range(first_index):
        frontier.append(merkle.leaf_hash(b"account %d" % i))
    roots: list[bytes] = []
    balances: dict[str, list[int]] = {a: [] for a in ids}
    posted = dict.fromkeys(ids, 0)
    rows: list[Row] = []
    for k in range(n):
        index = first_index + k
        payer, payee = rng.sample(list(ids), 2) if len(ids) < 64 else _two(rng, ids)
        minutes = rng.randint(1, 120)
        entry = Entry(
            v=FORMAT_VERSION,
            ledger=ORIGIN,
            index=index,
            id=f"raw-{k}",
            time=TIME,
            kind=KIND_TRANSFER,
            postings=legs(payer, payee, minutes),
            memo="bench",
            refs={},
        )
        data = encode_entry(entry)
        leaf = merkle.leaf_hash(data)
        nodes = [(lv, i, h) for (lv, i), h in frontier.append(leaf) if lv]
        posted[payer] -= minutes
        posted[payee] += minutes
        rows.append(
            Row(
                (index, entry.id, KIND_TRANSFER, TIME, data, leaf),
                [
                    (index, 0, payer, -minutes, False, posted[payer]),
                    (index, 1, payee, minutes, False, posted[payee]),
                ],
                nodes,
                (payer, payee),
            )
        )
        roots.append(frontier.root())
    return rows, roots, balances


def _two(rng: random.Random, ids: Sequence[str]) -> tuple[str, str]:
    a = rng.randrange(len(ids))
    b = rng.randrange(len(ids) - 1)
    return ids[a], ids[b + 1 if b >= a else b]


def plan_batches(rows: list[Row], roots: list[bytes], batch: int, first_index: int) -> Plan:
    posted: dict[str, int] = {}
    batches = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        for r in chunk:
            for p in r.postings:
                posted[p[2]] = p[5]
        end = first_index + start + len(chunk)
        root = roots[start + len(chunk) - 1]
        note = sign_checkpoint(Checkpoint(ORIGIN, end, root), SIGNER)
        touched = sorted({a for r in chunk for a in r.accounts})
        balances = [(a, posted[a]) for a in touched]
        batches.append((first_index + start, end, root, note, balances))
    return Plan(rows, batches)


# -- the variants -------------------------------------------------------------------------

HEAD_LOCK = "SELECT size, root FROM ledger_head WHERE id = 1 FOR UPDATE"
BY_ID = "SELECT canonical, leaf_hash, tree_size FROM entries WHERE id = ANY(%s)"
ACCOUNTS = (
    "SELECT id, kind, min_balance, max_balance, posted, debits_pending, credits_pending "
    "FROM accounts WHERE id = ANY(%s)"
)
CHECKPOINT = "INSERT INTO checkpoints (size, root, note, created_at) VALUES (%s, %b, %s, %s)"
HEAD = "UPDATE ledger_head SET size = %s, root = %b, checkpoint = %s WHERE id = 1"
UPDATE_ACCOUNTS = (
    "UPDATE accounts AS a SET posted = u.posted, updated_idx = %s "
    "FROM unnest(%s::text[], %s::int8[]) AS u(id, posted) WHERE a.id = u.id"
)
POSTINGS_MANY = (
    "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, balance_after) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
ENTRIES_MANY = (
    "INSERT INTO entries (idx, id, kind, time, canonical, leaf_hash, tree_size) "
    "VALUES (%s, %s, %s, %s, %b, %b, %s)"
)
NODES_MANY = "INSERT INTO tree_nodes (level, idx, hash) VALUES (%s, %s, %b)"
POSTINGS_UNNEST = (
    "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, balance_after) "
    "SELECT * FROM unnest(%s::int8[], %s::int2[], %s::text[], %s::int8[], %s::bool[], "
    "%s::int8[])"
)
ENTRIES_UNNEST = (
    "INSERT INTO entries (idx, id, kind, time, canonical, leaf_hash, tree_size) "
    "SELECT * FROM unnest(%s::int8[], %s::text[], %s::text[], %s::text[], %b::bytea[], "
    "%b::bytea[], %s::int8[])"
)
NODES_UNNEST = (
    "INSERT INTO tree_nodes (level, idx, hash) "
    "SELECT * FROM unnest(%s::int2[], %s::int8[], %b::bytea[])"
)

Writer = Callable[
    [psycopg.AsyncConnection[Any], list[Row], tuple[Any, ...]], Coroutine[Any, Any, None]
]


async def _reads(conn: psycopg.AsyncConnection[Any], rows: list[Row]) -> None:
    ids = [r.entry[1] for r in rows]
    accounts = sorted({a for r in rows for a in r.accounts})
    async with conn.pipeline():
        c1, c2, c3 = conn.cursor(), conn.cursor(), conn.cursor()
        await c1.execute(HEAD_LOCK)
        await c2.execute(BY_ID, [ids])
        await c3.execute(ACCOUNTS, [accounts])
    await c1.fetchall()
    await c2.fetchall()
    await c3.fetchall()


async def _finish(conn: psycopg.AsyncConnection[Any], batch: tuple[Any, ...]) -> None:
    _start, end, root, note, balances = batch
    async with conn.pipeline():
        if balances:
            await conn.execute(
                UPDATE_ACCOUNTS, [end - 1, [a for a, _ in balances], [b for _, b in balances]]
            )
        await conn.execute(CHECKPOINT, [end, root, note, TIME])
        await conn.execute(HEAD, [end, root, note])
    await conn.commit()


async def write_commit(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], batch: tuple[Any, ...]
) -> None:
    async with conn.pipeline():
        await conn.execute(HEAD_LOCK)
    _start, end, root, note, _ = batch
    async with conn.pipeline():
        await conn.execute(CHECKPOINT, [end, root, note, TIME])
        await conn.execute(HEAD, [end, root, note])
    await conn.commit()


async def write_executemany(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], batch: tuple[Any, ...]
) -> None:
    await _reads(conn, rows)
    end = batch[1]
    async with conn.cursor() as cur:
        await cur.executemany(POSTINGS_MANY, [p for r in rows for p in r.postings])
        await cur.executemany(ENTRIES_MANY, [(*r.entry, end) for r in rows])
        nodes = [n for r in rows for n in r.nodes]
        if nodes:
            await cur.executemany(NODES_MANY, nodes)
    await _finish(conn, batch)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def write_unnest(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], batch: tuple[Any, ...]
) -> None:
    await _reads(conn, rows)
    _start, end, root, note, balances = batch
    nodes = [n for r in rows for n in r.nodes]
    async with conn.pipeline():
        await conn.execute(POSTINGS_UNNEST, _columns([p for r in rows for p in r.postings], 6))
        await conn.execute(
            ENTRIES_UNNEST, [*_columns([r.entry for r in rows], 6), [end] * len(rows)]
        )
        if nodes:
            await conn.execute(NODES_UNNEST, _columns(nodes, 3))
        await conn.execute(
            UPDATE_ACCOUNTS, [end - 1, [a for a, _ in balances], [b for _, b in balances]]
        )
        await conn.execute(CHECKPOINT, [end, root, note, TIME])
        await conn.execute(HEAD, [end, root, note])
    await conn.commit()


async def write_copy(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], batch: tuple[Any, ...]
) -> None:
    await _reads(conn, rows)
    end = batch[1]
    cur = conn.cursor()
    async with cur.copy(
        "COPY postings (entry_idx, seq, account_id, minutes, pending, "
        "balance_after) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int2", "text", "int8", "bool", "int8"])
        for r in rows:
            for p in r.postings:
                await copy.write_row(p)
    async with cur.copy(
        "COPY entries (idx, id, kind, time, canonical, leaf_hash, tree_size) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "text", "text", "text", "bytea", "bytea", "int8"])
        for r in rows:
            await copy.write_row((*r.entry, end))
    nodes = [n for r in rows for n in r.nodes]
    if nodes:
        async with cur.copy(
            "COPY tree_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int2", "int8", "bytea"])
            for n in nodes:
                await copy.write_row(n)
    await _finish(conn, batch)


WRITERS: dict[str, Writer] = {
    "commit": write_commit,
    "executemany": write_executemany,
    "unnest": write_unnest,
    "copy": write_copy,
}


async def setup_raw(url: str, ids: Sequence[str]) -> None:
    """The head row and the accounts, as the service would have them after opening them."""
    async with await psycopg.AsyncConnection.connect(libpq(url)) as conn:
        note = sign_checkpoint(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT), SIGNER)
        await conn.execute(
            "INSERT INTO ledger_head (id, origin, size, root, checkpoint) "
            "VALUES (1, %s, 0, %b, %s)",
            [ORIGIN, merkle.EMPTY_ROOT, note],
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO accounts (id, kind, min_balance, max_balance, opened_idx, "
                "updated_idx) VALUES (%s, 'member', NULL, NULL, %s, %s)",
                [(a, i, i) for i, a in enumerate(ids)],
            )
        await conn.commit()


@dataclass
class RawResult:
    transfers: int
    seconds: float
    batch_latencies: list[float]
    cpu_client: float  # seconds of this process's CPU per transfer
    cpu_server: float  # seconds of PostgreSQL backend CPU per transfer


async def run_raw(
    variant: str, plan: Plan, max_seconds: float, ids: Sequence[str], fix: bool
) -> RawResult:
    """Run the plan's batches back to back on one connection."""
    writer = WRITERS[variant]
    async with fresh_database("postgres") as url:
        if fix:
            fix_trigger(url)
        await setup_raw(url, ids)
        async with await psycopg.AsyncConnection.connect(libpq(url)) as conn:
            # The appender's log starts after the account entries; so do these rows, but
            # the entries table has no account rows, which does not change any row's cost.
            lat: list[float] = []
            done = 0
            pg0, cpu0 = postgres_cpu_seconds(url), cpu_seconds()
            t0 = time.perf_counter()
            for batch in plan.batches:
                start, end = batch[0], batch[1]
                lo = start - plan.batches[0][0]
                rows = plan.rows[lo : lo + (end - start)]
                b0 = time.perf_counter()
                await writer(conn, rows, batch)
                lat.append(time.perf_counter() - b0)
                done += len(rows)
                if time.perf_counter() - t0 > max_seconds:
                    break
            seconds = time.perf_counter() - t0
            n = max(done, 1)
            return RawResult(
                done,
                seconds,
                lat,
                (cpu_seconds() - cpu0) / n,
                (postgres_cpu_seconds(url) - pg0) / n,
            )


# -- pure CPU, timed alone --------------------------------------------------------------------


def python_costs(n: int = 20_000) -> dict[str, float]:
    """Seconds per transfer of the pure work the appender does that raw SQL does not."""
    ids = [f"acct{i:06d}" for i in range(1000)]
    rng = random.Random(3)
    pairs = [_two(rng, ids) for _ in range(n)]
    state = LedgerState({a: AccountState(a, "member", None, None) for a in ids})
    t = time.perf_counter()
    built = []
    for k, (payer, payee) in enumerate(pairs):
        e = Entry(
            v=FORMAT_VERSION,
            ledger=ORIGIN,
            index=k,
            id=f"c-{k}",
            time=TIME,
            kind=KIND_TRANSFER,
            postings=legs(payer, payee, 5),
            memo="bench",
            refs={},
        )
        built.append(e)
    t_build = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for e in built:
        apply_entry(state, e)
    t_rules = (time.perf_counter() - t) / n
    t = time.perf_counter()
    datas = [encode_entry(e) for e in built]
    t_encode = (time.perf_counter() - t) / n
    t = time.perf_counter()
    leaves = [merkle.leaf_hash(d) for d in datas]
    t_hash = (time.perf_counter() - t) / n
    frontier = merkle.CompactRange()
    t = time.perf_counter()
    for leaf in leaves:
        frontier.append(leaf)
    t_tree = (time.perf_counter() - t) / n
    m = 2000
    t = time.perf_counter()
    for k in range(m):
        sign_checkpoint(Checkpoint(ORIGIN, k + 1, leaves[k]), SIGNER)
    t_sign = (time.perf_counter() - t) / m
    t = time.perf_counter()
    for _ in range(m):
        format_time(datetime_now())
    t_time = (time.perf_counter() - t) / m
    return {
        "build entry": t_build,
        "rules (apply_entry)": t_rules,
        "canonical encode": t_encode,
        "leaf hash": t_hash,
        "tree append": t_tree,
        "sign one checkpoint (per batch)": t_sign,
        "format batch time (per batch)": t_time,
    }


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- main ------------------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


async def main(args: argparse.Namespace) -> None:
    print_facts()
    ids = [f"acct{i:06d}" for i in range(args.accounts)]
    variants = args.variants.split(",")
    rows, roots, _ = make_rows(args.transfers, ids, first_index=len(ids))
    print(
        "| variant | batch | transfers | seconds | transfers/s | p50 | p99 "
        "| µs CPU/transfer client | µs CPU/transfer PostgreSQL |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    sys.stdout.flush()
    for batch_size in parse_ints(args.batch_sizes):
        plan = plan_batches(rows, roots, batch_size, len(ids))
        for variant in variants:
            if variant == "scambio":
                async with fresh_database("postgres") as url:
                    if args.fix_trigger:
                        fix_trigger(url)
                    opened = await open_accounts(url, args.accounts)
                    producers = max(4, 2 * batch_size)
                    r = await run_one(
                        "postgres",
                        url,
                        batch_size,
                        args.transfers,
                        producers,
                        opened,
                        args.max_seconds,
                    )
                print(
                    f"| Scambio appender (submit latency) | {batch_size} | {r.ok} | "
                    f"{r.seconds:.1f} | {r.rate:,.0f} | {r.latency.quantile(0.5) * 1000:.2f} ms "
                    f"| {r.latency.quantile(0.99) * 1000:.2f} ms | {r.cpu_per_transfer * 1e6:.0f} "
                    f"| {r.pg_cpu_per_transfer * 1e6:.0f} |"
                )
            else:
                raw = await run_raw(variant, plan, args.max_seconds, ids, args.fix_trigger)
                lat = sorted(raw.batch_latencies)
                p50 = lat[len(lat) // 2] if lat else float("nan")
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
                print(
                    f"| raw {variant} (batch latency) | {batch_size} | {raw.transfers} "
                    f"| {raw.seconds:.1f} | {raw.transfers / raw.seconds:,.0f} "
                    f"| {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms | {raw.cpu_client * 1e6:.0f} "
                    f"| {raw.cpu_server * 1e6:.0f} |"
                )
            sys.stdout.flush()
    print()
    print("| pure Python work (one core) | time |")
    print("|---|---|")
    for name, seconds in python_costs().items():
        print(f"| {name} | {us(seconds)} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,10,100,1000")
    parser.add_argument("--transfers", type=lambda s: parse_ints(s)[0], default=20_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--variants", default="commit,executemany,unnest,copy,scambio")
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument(
        "--fix-trigger",
        action="store_true",
        help="use the proposed zero-sum trigger (common.ZERO_SUM_BY_PROBE)",
    )
    asyncio.run(main(parser.parse_args()))
