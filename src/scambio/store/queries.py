"""Read queries: accounts, statements, entries, checkpoints and Merkle proofs.

Proofs read only the O(log n) stored subtree hashes they need (see `ledger.merkle`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger import merkle
from scambio.ledger.entry import decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.store.appender import load_nodes
from scambio.store.tables import accounts, checkpoints, entries, ledger_head, postings


@dataclass(frozen=True, slots=True)
class Head:
    origin: str
    size: int
    root: bytes
    checkpoint: str


@dataclass(frozen=True, slots=True)
class AccountView:
    id: str
    kind: str
    posted: int
    debits_pending: int
    credits_pending: int
    min_balance: int | None
    max_balance: int | None

    @property
    def available(self) -> int:
        return self.posted - self.debits_pending

    @property
    def pending(self) -> int:
        return self.credits_pending - self.debits_pending


@dataclass(frozen=True, slots=True)
class StatementLine:
    index: int
    entry_id: str
    kind: str
    time: str
    minutes: int
    pending: bool
    balance: int
    memo: str


@dataclass(frozen=True, slots=True)
class StoredEntry:
    index: int
    canonical: bytes
    leaf_hash: bytes


async def head(conn: AsyncConnection) -> Head:
    row = (await conn.execute(select(ledger_head).where(ledger_head.c.id == 1))).one()
    return Head(row.origin, int(row.size), bytes(row.root), row.checkpoint)


async def account(conn: AsyncConnection, account_id: str) -> AccountView:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).one_or_none()
    if row is None:
        raise RuleViolation(
            "unknown-account", f"account {account_id!r} does not exist", account=account_id
        )
    return AccountView(
        row.id,
        row.kind,
        int(row.posted),
        int(row.debits_pending),
        int(row.credits_pending),
        row.min_balance,
        row.max_balance,
    )


async def statement(
    conn: AsyncConnection, account_id: str, *, after: int | None, limit: int
) -> list[StatementLine]:
    """An account's postings in ledger order after entry `after`, with running balance."""
    await account(conn, account_id)
    query = (
        select(
            postings.c.entry_idx,
            postings.c.minutes,
            postings.c.pending,
            postings.c.balance_after,
            entries.c.id,
            entries.c.kind,
            entries.c.time,
            entries.c.canonical,
        )
        .join(entries, entries.c.idx == postings.c.entry_idx)
        .where(postings.c.account_id == account_id)
        .order_by(postings.c.entry_idx)
        .limit(limit)
    )
    if after is not None:
        query = query.where(postings.c.entry_idx > after)
    lines = []
    for row in await conn.execute(query):
        lines.append(
            StatementLine(
                int(row.entry_idx),
                row.id,
                row.kind,
                row.time,
                int(row.minutes),
                bool(row.pending),
                int(row.balance_after),
                decode_entry(bytes(row.canonical)).memo,
            )
        )
    return lines


async def entry_range(conn: AsyncConnection, start: int, limit: int) -> list[StoredEntry]:
    rows = await conn.execute(
        select(entries.c.idx, entries.c.canonical, entries.c.leaf_hash)
        .where(entries.c.idx >= start)
        .order_by(entries.c.idx)
        .limit(limit)
    )
    return [StoredEntry(int(r.idx), bytes(r.canonical), bytes(r.leaf_hash)) for r in rows]


async def stream_entries(
    conn: AsyncConnection, start: int = 0, end: int | None = None, chunk: int = 5000
) -> AsyncIterator[StoredEntry]:
    """Every entry from `start` (to `end`), read in index-ordered chunks."""
    position = start
    while end is None or position < end:
        limit = chunk if end is None else min(chunk, end - position)
        page = await entry_range(conn, position, limit)
        if not page:
            return
        for item in page:
            yield item
        position = page[-1].index + 1


async def checkpoint_at(conn: AsyncConnection, size: int) -> str | None:
    row = (
        await conn.execute(select(checkpoints.c.note).where(checkpoints.c.size == size))
    ).one_or_none()
    return None if row is None else str(row.note)


async def checkpoint_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(checkpoints))).scalar_one())


async def _tree_size(conn: AsyncConnection) -> int:
    """The head's size alone: proofs need no more, and a plain statement skips compiling."""
    return int((await conn.exec_driver_sql(_TREE_SIZE)).scalar_one())


_TREE_SIZE = "SELECT size FROM ledger_head WHERE id = 1"


def _check_size(size: int, tree_size: int, name: str) -> None:
    if size > tree_size:
        raise RuleViolation(
            "beyond-tree",
            f"{name} {size} is beyond the tree, which has {tree_size} entries",
            tree_size=tree_size,
        )


async def inclusion_proof(
    conn: AsyncConnection, index: int, size: int
) -> tuple[bytes, list[bytes]]:
    """Leaf hash of `index` and its inclusion proof in the tree of `size` entries."""
    tree_size = await _tree_size(conn)
    _check_size(size, tree_size, "size")
    if not 0 <= index < size:
        raise RuleViolation(
            "invalid-proof-request", f"index {index} is not in a tree of size {size}"
        )
    ranges = merkle.inclusion_ranges(index, size)
    lookup = await load_nodes(conn, [*merkle.nodes_for(ranges), (0, index)])
    return lookup[(0, index)], merkle.assemble(ranges, lookup)


async def consistency_proof(conn: AsyncConnection, size1: int, size2: int) -> list[bytes]:
    tree_size = await _tree_size(conn)
    _check_size(size2, tree_size, "to")
    if size1 < 1:
        raise RuleViolation(
            "invalid-proof-request",
            "consistency proofs start from a tree of at least one entry (from >= 1)",
        )
    if size1 > size2:
        raise RuleViolation(
            "invalid-proof-request",
            f"from ({size1}) must not be larger than to ({size2})",
        )
    ranges = merkle.consistency_ranges(size1, size2)
    return merkle.assemble(ranges, await load_nodes(conn, merkle.nodes_for(ranges)))


async def root_at(conn: AsyncConnection, size: int) -> bytes:
    ranges = merkle.root_ranges(size)
    return (
        merkle.assemble(ranges, await load_nodes(conn, merkle.nodes_for(ranges)))[0]
        if (ranges)
        else merkle.EMPTY_ROOT
    )
