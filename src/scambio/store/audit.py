"""Audit the live database: replay the log and check every stored projection against it.

`verify_database` runs the offline verifier's engine (`ledger.verify.LogReplayer`) over the
entries table, in index order and in pages, inside one read snapshot, and adds the checks
only the database allows:

- each entry's stored `leaf_hash` equals the hash of its canonical bytes, so an entry whose
  bytes (or leaf hash) alone were altered is named exactly, not just its batch;
- the projected columns (id, kind, time, hold, reversal, expiry) match the entry;
- its `postings` rows are the entry's postings: account, minutes, pending (hold legs), and
  `balance_after` equal to the account's replayed posted balance;
- every tree node in `tree_nodes` equals the one the replay computes, as it completes;
- each entry's `tree_size` names its batch's checkpoint, every stored checkpoint verifies,
  falls on a batch boundary and matches the replayed root at its size;
- the ledger head is the last checkpoint, and nothing (entries, postings, tree nodes,
  checkpoints) is stored beyond it;
- the cached balances and limits in `accounts` equal the replayed ones.

It raises `VerificationError` at the first problem (the cached balances are compared last
and all their differences reported together).

Incremental use: pass `resume=` a `LogReplayer` kept from an earlier audit that stopped at
a checkpoint; only entries from its size on are read (plus the head and the accounts).
The replayer may have forgotten its history (`LogReplayer.from_snapshot`, or
`forget_history`): then, before each page, the audit loads from the database what the
page's entries refer to below `history_start` (ids they must not reuse, the holds they
post or void, the entries they reverse, with how those were resolved), found through the
page's projected columns (checked against each entry's bytes as it is met) and read from
rows that were verified when they were first audited. `forget_every` makes a long audit
forget its history at checkpoints every so many entries, so that its memory stays bounded.
`check_cache=False` leaves the cached balances out (`reconcile-balances` compares them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger import merkle
from scambio.ledger.entry import (
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    KIND_VOID,
    Entry,
    decode_entry,
)
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Verifier, open_checkpoint
from scambio.ledger.rules import AccountState, HoldState, MovedState
from scambio.ledger.verify import LogReplayer
from scambio.store import queries
from scambio.store.db import read_snapshot
from scambio.store.tables import accounts, checkpoints, entries, postings, tree_nodes

__all__ = ["AuditReport", "verify_database"]

#: Entries per database page.
PAGE: Final = 2000
#: Entries checked between two yields to the event loop.
_YIELD_EVERY: Final = 250

#: (seq, account_id, minutes, pending, balance_after) of one postings row.
_PostingRow = tuple[int, str, int, bool, int]


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a successful database audit established."""

    origin: str
    size: int
    root: bytes
    #: Entries replayed by this audit (fewer than `size` when resumed).
    entries: int
    checkpoints: int
    postings: int
    tree_nodes: int
    accounts: dict[str, AccountState]
    holds_open: int
    #: The replayer at the head: pass it as `resume=` to audit only later entries next time.
    replayer: LogReplayer

    def describe(self) -> str:
        """One human line, e.g. for the CLI."""
        return (
            f"OK: {self.origin}: {self.size} entries (replayed {self.entries}), "
            f"{self.checkpoints} checkpoints, {self.postings} postings and "
            f"{self.tree_nodes} tree nodes checked, root {self.root.hex()}, "
            f"{len(self.accounts)} accounts match their cached balances, "
            f"{self.holds_open} open holds"
        )


async def verify_database(
    engine: AsyncEngine,
    verifier: Verifier,
    origin: str,
    *,
    resume: LogReplayer | None = None,
    page: int = PAGE,
    check_cache: bool = True,
    forget_every: int | None = None,
) -> AuditReport:
    """Check the whole stored ledger (see the module docstring); raise VerificationError."""
    replayer = resume if resume is not None else LogReplayer(origin, verifier)
    if replayer.origin != origin or replayer.covered != replayer.size:
        raise ValueError("resume needs a replayer of this ledger stopped at a checkpoint")
    start = replayer.size
    async with read_snapshot(engine) as conn:
        audit = _Audit(conn, replayer, forget_every)
        if start == 0:
            zero = (
                await conn.execute(
                    select(checkpoints.c.note, checkpoints.c.root).where(checkpoints.c.size == 0)
                )
            ).one_or_none()
            if zero is not None:
                await audit.checkpoint(0, str(zero.note), bytes(zero.root))
        await audit.run(page)
        replayer.finish()
        await _check_head(conn, replayer, origin)
        await _check_nothing_beyond(conn, replayer.size)
        if check_cache:
            await _check_accounts(conn, replayer)
    return AuditReport(
        origin=origin,
        size=replayer.size,
        root=replayer.root(),
        entries=replayer.size - start,
        checkpoints=audit.checkpoints,
        postings=audit.postings,
        tree_nodes=audit.nodes,
        accounts=replayer.state.accounts,
        holds_open=replayer.holds_open(),
        replayer=replayer,
    )


class _Audit:
    """The page-by-page walk over entries with their postings, nodes and checkpoints."""

    def __init__(
        self, conn: AsyncConnection, replayer: LogReplayer, forget_every: int | None = None
    ) -> None:
        self.conn = conn
        self.replayer = replayer
        self.forget_every = forget_every
        #: The tree size the current batch's entries name, until its checkpoint is met.
        self.batch_end: int | None = None
        self.checkpoints = 0
        self.postings = 0
        self.nodes = 0

    async def run(self, page: int) -> None:
        conn = self.conn
        while True:
            first = self.replayer.size
            rows = (
                await conn.execute(
                    select(entries)
                    .where(entries.c.idx >= first)
                    .order_by(entries.c.idx)
                    .limit(page)
                )
            ).all()
            if not rows:
                return
            last = first + len(rows) - 1
            stored_postings = await _postings(conn, first, last)
            stored_nodes = await _nodes(conn, first, last)
            notes = {
                int(r.size): (str(r.note), bytes(r.root))
                for r in await conn.execute(
                    select(checkpoints).where(
                        checkpoints.c.size > first, checkpoints.c.size <= last + 1
                    )
                )
            }
            if self.replayer.history_start:
                await _load_history(conn, self.replayer, rows)
            for position, row in enumerate(rows):
                if position % _YIELD_EVERY == _YIELD_EVERY - 1:
                    # Long audits run inside the service (verify-ledger): let requests in.
                    await asyncio.sleep(0)
                self.entry(row, stored_postings.get(self.replayer.size, []), stored_nodes)
                size = self.replayer.size
                note = notes.get(size)
                if size == self.batch_end:
                    if note is None:
                        raise VerificationError(
                            f"not covered by a signed checkpoint: its batch ends at size {size}, "
                            "whose checkpoint is missing",
                            index=self.replayer.covered,
                        )
                    self.batch_end = None
                if note is not None:
                    if self.batch_end is not None:
                        raise VerificationError(
                            f"a checkpoint at size {size} falls inside the batch of entries "
                            f"[{self.replayer.covered}, {self.batch_end})",
                            index=self.replayer.covered,
                        )
                    await self.checkpoint(size, *note)
                    if (
                        self.forget_every
                        and size - self.replayer.history_start >= self.forget_every
                        and self.replayer.pending is None
                    ):
                        self.replayer.forget_history()
                        await _load_history(conn, self.replayer, rows[position + 1 :])

    def entry(
        self, row: Any, rows: list[_PostingRow], stored_nodes: dict[merkle.NodeId, bytes]
    ) -> None:
        """Check one stored entry; a rule violation held back from an earlier entry (see
        `LogReplayer`) is reported first, as it names the first bad index."""
        try:
            self._entry(row, rows, stored_nodes)
        except VerificationError as exc:
            held = self.replayer.pending
            if (
                held is not None
                and held is not exc
                and held.index is not None
                and (exc.index is None or held.index < exc.index)
            ):
                raise held from None
            raise

    def _entry(
        self, row: Any, rows: list[_PostingRow], stored_nodes: dict[merkle.NodeId, bytes]
    ) -> None:
        replayer = self.replayer
        index = replayer.size
        if int(row.idx) != index:
            raise VerificationError(
                f"missing from the entries table (the next stored entry is {row.idx})",
                index=index,
            )
        produced: list[tuple[merkle.NodeId, bytes]] = []
        leaf = replayer.feed_entry(bytes(row.canonical), produced)
        stored_leaf = bytes(row.leaf_hash)
        if leaf != stored_leaf:
            raise VerificationError(
                f"leaf hash differs from the stored one: the entry's bytes hash to {leaf.hex()}, "
                f"the stored leaf hash is {stored_leaf.hex()} (the entry or its leaf hash "
                "was altered)",
                index=index,
            )
        entry = replayer.last_entry
        assert entry is not None
        _check_columns(row, entry)
        self._check_batch(row, index)
        self._check_postings(entry, rows)
        for (level, position), value in produced:
            if level == 0:
                continue
            stored = stored_nodes.get((level, position))
            begin, end = position << level, (position + 1) << level
            if stored is None:
                raise VerificationError(
                    f"tree node ({level}, {position}) over entries [{begin}, {end}) is missing "
                    "from tree_nodes",
                    index=begin,
                )
            if stored != value:
                raise VerificationError(
                    f"tree node ({level}, {position}) over entries [{begin}, {end}) is "
                    f"{stored.hex()} in tree_nodes but the entries give {value.hex()}",
                    index=begin,
                )
            self.nodes += 1

    def _check_batch(self, row: Any, index: int) -> None:
        tree_size = int(row.tree_size)
        if self.batch_end is None:
            if tree_size <= index:
                raise VerificationError(f"its tree_size {tree_size} does not cover it", index=index)
            self.batch_end = tree_size
        elif tree_size != self.batch_end:
            raise VerificationError(
                f"its tree_size is {tree_size} but its batch-mates name {self.batch_end}",
                index=index,
            )

    def _check_postings(self, entry: Entry, rows: list[_PostingRow]) -> None:
        index = entry.index
        legs = entry.postings
        if len(rows) != len(legs):
            raise VerificationError(
                f"has {len(legs)} postings but {len(rows)} rows in the postings table",
                index=index,
            )
        pending = entry.kind == KIND_HOLD
        accounts_state = self.replayer.state.accounts
        replaying = self.replayer.pending is None
        for position, (leg, row) in enumerate(zip(legs, rows, strict=True)):
            seq, account_id, minutes, is_pending, balance_after = row
            where = f"postings row {position}"
            if seq != position:
                raise VerificationError(f"{where} has seq {seq}", index=index)
            if account_id != leg.account:
                raise VerificationError(
                    f"{where} is for account {account_id!r}, the entry says {leg.account!r}",
                    index=index,
                )
            if minutes != leg.minutes:
                raise VerificationError(
                    f"{where} moves {minutes} minutes, the entry says {leg.minutes}",
                    index=index,
                )
            if bool(is_pending) != pending:
                raise VerificationError(
                    f"{where} has pending={bool(is_pending)}, expected {pending} for a "
                    f"{entry.kind}",
                    index=index,
                )
            account = accounts_state.get(leg.account)
            if replaying and account is not None and balance_after != account.posted:
                raise VerificationError(
                    f"{where} records balance_after {balance_after} for {leg.account!r}, "
                    f"replay gives {account.posted}",
                    index=index,
                )
        self.postings += len(rows)

    async def checkpoint(self, size: int, note: str, stored_root: bytes) -> None:
        cp = self.replayer.check_checkpoint(note)
        if stored_root != cp.root:
            raise VerificationError(
                f"checkpoint at size {size}: its root column {stored_root.hex()} differs from "
                f"the signed root {cp.root.hex()}"
            )
        self.checkpoints += 1


def _check_columns(row: Any, entry: Entry) -> None:
    """The columns the store projects out of an entry must say what the entry says."""
    refs = entry.refs
    expected = {
        "id": entry.id,
        "kind": entry.kind,
        "time": entry.time,
        "hold_idx": refs.get("hold") if entry.kind in (KIND_POST, KIND_VOID) else None,
        "reverses_idx": refs.get("reverses") if entry.kind == KIND_REVERSAL else None,
        "expires": refs.get("expires") if entry.kind == KIND_HOLD else None,
    }
    for name, value in expected.items():
        stored = getattr(row, name)
        if stored != value:
            raise VerificationError(
                f"stored {name} column is {stored!r}, the entry says {value!r}",
                index=entry.index,
            )


#: Values per IN list when loading history.
_IN_CHUNK: Final = 1000


async def _load_history(conn: AsyncConnection, replayer: LogReplayer, rows: Sequence[Any]) -> None:
    """Tell a replayer without history what `rows` refer to below its `history_start`.

    Read from the rows' projected columns (`id`, `hold_idx`, `reverses_idx`), which the
    audit compares with the canonical bytes as it meets each entry (a mismatch fails at
    that entry), and from history rows the audit checked when it first met them: the ids
    already used, the holds and reversed entries with how they were resolved or reversed.
    """
    if not rows:
        return
    start = replayer.history_start
    state = replayer.state
    first, last = int(rows[0].idx), int(rows[-1].idx)
    newer, older = entries.alias("newer"), entries.alias("older")
    reused = await conn.execute(
        select(older.c.id)
        .join(newer, newer.c.id == older.c.id)
        .where(newer.c.idx >= first, newer.c.idx <= last, older.c.idx < start)
    )
    replayer.remember_ids(str(r.id) for r in reused)
    holds = {
        int(r.hold_idx)
        for r in rows
        if r.hold_idx is not None and 0 <= r.hold_idx < start and r.hold_idx not in state.holds
    }
    targets = {
        int(r.reverses_idx)
        for r in rows
        if r.reverses_idx is not None
        and 0 <= r.reverses_idx < start
        and r.reverses_idx not in state.moved
    }
    if holds:
        resolved = await _history_links(conn, entries.c.hold_idx, holds, start)
        for entry in await _history_entries(conn, holds):
            if entry.kind == KIND_HOLD and len(entry.postings) == 2:
                debit, credit = entry.postings
                expires = entry.refs.get("expires")
                state.holds[entry.index] = HoldState(
                    entry.index,
                    entry.id,
                    debit.account,
                    credit.account,
                    credit.minutes,
                    expires if isinstance(expires, str) else None,
                    resolved.get(entry.index),
                )
    if targets:
        reversed_by = await _history_links(conn, entries.c.reverses_idx, targets, start)
        for entry in await _history_entries(conn, targets):
            if entry.kind in (KIND_TRANSFER, KIND_POST):
                state.moved[entry.index] = MovedState(
                    entry.index, entry.postings, reversed_by.get(entry.index)
                )


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = sorted(set(values))
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


async def _history_entries(conn: AsyncConnection, indexes: Iterable[int]) -> list[Entry]:
    found: list[Entry] = []
    for chunk in _chunks(indexes):
        rows = await conn.execute(select(entries.c.canonical).where(entries.c.idx.in_(chunk)))
        found.extend(decode_entry(bytes(r.canonical)) for r in rows)
    return found


async def _history_links(
    conn: AsyncConnection, column: Any, targets: Iterable[int], start: int
) -> dict[int, int]:
    """{target: index} of the entries below `start` whose `column` names a target."""
    links: dict[int, int] = {}
    for chunk in _chunks(targets):
        rows = await conn.execute(
            select(column, entries.c.idx).where(column.in_(chunk), entries.c.idx < start)
        )
        for target, index in rows:
            links[int(target)] = int(index)
    return links


async def _postings(conn: AsyncConnection, first: int, last: int) -> dict[int, list[_PostingRow]]:
    rows = (
        await conn.execute(
            select(
                postings.c.entry_idx,
                postings.c.seq,
                postings.c.account_id,
                postings.c.minutes,
                postings.c.pending,
                postings.c.balance_after,
            )
            .where(postings.c.entry_idx >= first, postings.c.entry_idx <= last)
            .order_by(postings.c.entry_idx, postings.c.seq)
        )
    ).all()
    grouped: dict[int, list[_PostingRow]] = {}
    for entry_idx, *row in rows:
        grouped.setdefault(entry_idx, []).append(tuple(row))
    return grouped


async def _nodes(conn: AsyncConnection, first: int, last: int) -> dict[merkle.NodeId, bytes]:
    """The stored nodes that appending entries first..last completes.

    Node (level, k) completes with leaf ((k + 1) << level) - 1, so for each level the
    nodes completed in [first, last] form one range of k.
    """
    ranges = []
    level = 1
    while (1 << level) <= last + 1:
        low = (first + 1 + (1 << level) - 1) >> level  # ceil((first + 1) / 2**level)
        high = (last + 1) >> level
        if low <= high:
            ranges.append(
                and_(tree_nodes.c.level == level, tree_nodes.c.idx.between(low - 1, high - 1))
            )
        level += 1
    if not ranges:
        return {}
    rows = (
        await conn.execute(
            select(tree_nodes.c.level, tree_nodes.c.idx, tree_nodes.c.hash).where(or_(*ranges))
        )
    ).all()
    return {(level, idx): bytes(value) for level, idx, value in rows}


async def _check_head(conn: AsyncConnection, replayer: LogReplayer, origin: str) -> None:
    head = await queries.head(conn)
    if head.origin != origin:
        raise VerificationError(f"the ledger head is for origin {head.origin!r}, not {origin!r}")
    try:
        cp = open_checkpoint(head.checkpoint, replayer.verifier, origin)
    except VerificationError as exc:
        raise VerificationError(
            f"the ledger head's checkpoint does not verify: {exc.reason}"
        ) from None
    size = replayer.size
    last = await queries.checkpoint_at(conn, size)
    if head.size != size or cp.size != size or head.checkpoint != last:
        raise VerificationError(
            f"the ledger head (size {head.size}, checkpoint at size {cp.size}) is not the last "
            f"checkpoint: the entries end at size {size}"
        )
    root = replayer.root()
    if head.root != root:
        raise VerificationError(
            f"the ledger head's root column {head.root.hex()} differs from the root {root.hex()}"
        )


async def _check_nothing_beyond(conn: AsyncConnection, size: int) -> None:
    """No postings, checkpoints or tree nodes may exist for entries that do not."""
    orphans = (
        await conn.execute(
            select(func.min(postings.c.entry_idx)).where(postings.c.entry_idx >= size)
        )
    ).scalar_one()
    if orphans is not None:
        raise VerificationError(
            f"the postings table has rows for entry {orphans}, beyond the last entry",
            index=int(orphans),
        )
    late = (
        await conn.execute(select(func.min(checkpoints.c.size)).where(checkpoints.c.size > size))
    ).scalar_one()
    if late is not None:
        raise VerificationError(
            f"a checkpoint at size {late} is stored beyond the last entry (size {size})"
        )
    stored = (await conn.execute(select(func.count()).select_from(tree_nodes))).scalar_one()
    expected = size - size.bit_count()
    if stored != expected:
        raise VerificationError(
            f"tree_nodes holds {stored} nodes but a tree of {size} entries has {expected}"
        )


_CACHED = ("kind", "min_balance", "max_balance", "posted", "debits_pending", "credits_pending")
_WORDS = {
    "posted": "posted balance",
    "debits_pending": "pending debits",
    "credits_pending": "pending credits",
    "min_balance": "minimum balance",
    "max_balance": "maximum balance",
}


async def _check_accounts(conn: AsyncConnection, replayer: LogReplayer) -> None:
    """Every cached account row must equal the replayed account; report all differences."""
    replayed = replayer.state.accounts
    problems: list[str] = []
    seen: set[str] = set()
    for row in await conn.execute(select(accounts).order_by(accounts.c.id)):
        seen.add(row.id)
        account = replayed.get(row.id)
        if account is None:
            problems.append(f"cached account {row.id!r} was never opened by an entry")
            continue
        for name in _CACHED:
            cached = getattr(row, name)
            value = getattr(account, name)
            if cached != value:
                problems.append(
                    f"cached {_WORDS.get(name, name)} of {row.id!r} is {cached}, "
                    f"replay gives {value}"
                )
    for missing in sorted(set(replayed) - seen):
        problems.append(f"account {missing!r} is missing from the accounts table")
    if problems:
        raise VerificationError("; ".join(problems))
