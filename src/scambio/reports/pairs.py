"""The report's projection of the ledger: each pair of accounts' first exchange entry.

"New connections" need to know, for every pair that exchanged in a month, whether they
had ever exchanged before; scanning the whole log for that would make a monthly report
cost as much as the ledger is long. `report_pairs` keeps, for every pair of accounts that
were payer and payee of an exchange (any account kinds; reports keep the participants),
the index of their first exchange entry. It is filled strictly in index order, up to
`report_state.pairs_size`, in chunks, each in one write transaction that holds the
state row's lock, so two workers never fill it out of order; and it is re-derivable from
the log at any time (delete both tables' rows and fill again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import KIND_HOLD, Entry, decode_entry
from scambio.reports.coproduction import Pair, classify, hold_ref, pair_of
from scambio.store.db import WRITER
from scambio.store.jobs_tables import report_pairs, report_state
from scambio.store.tables import entries, ledger_head

#: Entries read and projected per transaction.
CHUNK: Final = 20_000
_IN_CHUNK: Final = 500


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


async def _ensure_state(conn: AsyncConnection) -> int:
    """Create the state row if missing and return `pairs_size`, locked for this transaction
    (PostgreSQL row lock; on SQLite the transaction already holds the write lock)."""
    await conn.execute(
        _insert(conn)(report_state).values(id=1, pairs_size=0).on_conflict_do_nothing()
    )
    query = select(report_state.c.pairs_size).where(report_state.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return int((await conn.execute(query)).scalar_one())


async def pairs_size(conn: AsyncConnection) -> int:
    value = (
        await conn.execute(select(report_state.c.pairs_size).where(report_state.c.id == 1))
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


async def load_entries(conn: AsyncConnection, first: int, end: int) -> list[Entry]:
    rows = await conn.execute(
        select(entries.c.canonical)
        .where(entries.c.idx >= first, entries.c.idx < end)
        .order_by(entries.c.idx)
    )
    return [decode_entry(bytes(row.canonical)) for row in rows]


async def load_by_index(conn: AsyncConnection, indexes: Iterable[int]) -> dict[int, Entry]:
    wanted = sorted(set(indexes))
    found: dict[int, Entry] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = await conn.execute(
            select(entries.c.canonical).where(entries.c.idx.in_(wanted[start : start + _IN_CHUNK]))
        )
        for row in rows:
            entry = decode_entry(bytes(row.canonical))
            found[entry.index] = entry
    return found


async def holds_for(conn: AsyncConnection, batch: Sequence[Entry]) -> dict[int, Entry]:
    """The holds the posts in `batch` carry out: from the batch itself or the database."""
    held = {e.index: e for e in batch if e.kind == KIND_HOLD}
    missing = {h for e in batch if (h := hold_ref(e)) is not None and h not in held}
    held.update(await load_by_index(conn, missing))
    return held


def first_pairs(batch: Sequence[Entry], holds: dict[int, Entry]) -> dict[Pair, int]:
    """Each pair's first exchange entry in `batch` (entries in index order)."""
    first: dict[Pair, int] = {}
    for entry in batch:
        hold = holds.get(h) if (h := hold_ref(entry)) is not None else None
        event = classify(entry, hold)
        if event is not None and event.kind == "exchange":
            first.setdefault(pair_of(event), entry.index)
    return first


async def ingest_pairs(engine: AsyncEngine, *, upto: int | None = None, chunk: int = CHUNK) -> int:
    """Bring `report_pairs` up to the ledger head (or `upto`); return the size it covers."""
    while True:
        async with engine.connect() as plain:
            conn = await plain.execution_options(**{WRITER: True})
            async with conn.begin():
                done = await _ensure_state(conn)
                head = int(
                    (await conn.execute(select(ledger_head.c.size))).scalar_one_or_none() or 0
                )
                target = min(head, done + chunk, head if upto is None else upto)
                if target <= done:
                    return done
                batch = await load_entries(conn, done, target)
                first = first_pairs(batch, await holds_for(conn, batch))
                await _record(conn, first)
                await conn.execute(
                    update(report_state).where(report_state.c.id == 1).values(pairs_size=target)
                )


async def _record(conn: AsyncConnection, first: dict[Pair, int]) -> None:
    """Insert pairs not recorded yet (in one statement on PostgreSQL: arrays unnested)."""
    if not first:
        return
    if conn.dialect.name == "postgresql":
        pairs = list(first.items())
        await conn.execute(
            text(
                "INSERT INTO report_pairs (account_a, account_b, first_idx) "
                "SELECT * FROM unnest(CAST(:a AS varchar[]), CAST(:b AS varchar[]), "
                "CAST(:i AS bigint[])) ON CONFLICT DO NOTHING"
            ),
            {
                "a": [a for (a, _), _ in pairs],
                "b": [b for (_, b), _ in pairs],
                "i": [i for _, i in pairs],
            },
        )
        return
    rows = [{"account_a": a, "account_b": b, "first_idx": i} for (a, b), i in first.items()]
    await conn.execute(sqlite_insert(report_pairs).on_conflict_do_nothing(), rows)


async def pairs_first_within(conn: AsyncConnection, first: int, end: int) -> set[Pair]:
    """Pairs whose first exchange entry is in [first, end)."""
    rows = await conn.execute(
        select(report_pairs.c.account_a, report_pairs.c.account_b).where(
            report_pairs.c.first_idx >= first, report_pairs.c.first_idx < end
        )
    )
    return {(row.account_a, row.account_b) for row in rows}


async def first_indexes(conn: AsyncConnection, pairs: Iterable[Pair]) -> dict[Pair, int]:
    """The recorded first exchange of each of these pairs (absent: none recorded)."""
    wanted = sorted(set(pairs))
    found: dict[Pair, int] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = await conn.execute(
            select(report_pairs).where(
                tuple_(report_pairs.c.account_a, report_pairs.c.account_b).in_(
                    wanted[start : start + _IN_CHUNK]
                )
            )
        )
        for row in rows:
            found[(row.account_a, row.account_b)] = int(row.first_idx)
    return found


__all__ = [
    "CHUNK",
    "first_indexes",
    "first_pairs",
    "holds_for",
    "ingest_pairs",
    "load_by_index",
    "load_entries",
    "pairs_first_within",
    "pairs_size",
]
